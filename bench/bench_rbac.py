"""RBAC benchmark (issue 12): authorization decisions per second with 1,000 Roles and 1,000
RoleBindings (plus the bootstrap policy) spread over 100 namespaces, 200 users and 20 groups: random
requests (mostly denied), a service account allowed through the aggregated ``edit`` role, the
snapshot build time, and escalation checks (role create) per second.

Prints JSON lines. Usage: python bench/bench_rbac.py [DECISIONS]   (default 200000)
"""

from __future__ import annotations

import json
import random
import sys
import time

from vkube.api.rbac import Attributes, RBACAuthorizer, UserInfo, check_role_write
from vkube.api.rbac.bootstrap import bootstrap_policy

N = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
RBAC = "rbac.authorization.k8s.io"
RESOURCES = ["pods", "services", "configmaps", "secrets", "deployments", "jobs", "leases", "events"]


def objects(rng: random.Random) -> dict[str, list[dict]]:
    roles, bindings = [], []
    for i in range(1000):
        ns = f"ns{i % 100}"
        res = rng.sample(RESOURCES, 3)
        roles.append({"metadata": {"name": f"role{i}", "namespace": ns}, "rules": [
            {"verbs": ["get", "list", "watch"], "apiGroups": ["", "apps", "batch"], "resources": res},
            {"verbs": ["update"], "apiGroups": [""], "resources": ["configmaps"], "resourceNames": [f"cm{i}"]}]})
        subject = ({"kind": "User", "apiGroup": RBAC, "name": f"user{rng.randrange(200)}"} if i % 3
                   else {"kind": "Group", "apiGroup": RBAC, "name": f"team{rng.randrange(20)}"})
        bindings.append({"metadata": {"name": f"rb{i}", "namespace": ns}, "subjects": [subject],
                         "roleRef": {"apiGroup": RBAC, "kind": "Role", "name": f"role{i}"}})
    return {"roles": roles, "role_bindings": bindings}


def build(objs: dict[str, list[dict]], policy: dict[str, list[dict]]) -> RBACAuthorizer:
    return RBACAuthorizer(roles=objs["roles"], role_bindings=objs["role_bindings"],
                          cluster_roles=policy["clusterRoles"],
                          cluster_role_bindings=policy["clusterRoleBindings"])


def requests(rng: random.Random, n: int) -> list[tuple[UserInfo, Attributes]]:
    out = []
    for _ in range(n):
        user = UserInfo(f"user{rng.randrange(200)}", groups=(f"team{rng.randrange(20)}", "system:authenticated"))
        out.append((user, Attributes(rng.choice(["get", "list", "create", "update"]),
                                     namespace=f"ns{rng.randrange(100)}", resource=rng.choice(RESOURCES),
                                     name=f"cm{rng.randrange(1000)}")))
    return out


def main() -> None:
    rng = random.Random(12)
    objs, policy = objects(rng), bootstrap_policy()
    t0 = time.perf_counter()
    authz = build(objs, policy)
    build_s = time.perf_counter() - t0
    print(json.dumps({"bench": "rbac_snapshot_build", "roles": 1000, "bindings": 1000,
                      "cluster_roles": len(policy["clusterRoles"]), "ms": round(build_s * 1000, 2)}))
    reqs = requests(rng, N)
    t0 = time.perf_counter()
    allowed = sum(authz.authorize(u, a).allowed for u, a in reqs)
    warm = time.perf_counter() - t0
    print(json.dumps({"bench": "rbac_decisions_mixed", "decisions": N, "allowed": allowed,
                      "per_s": round(N / warm), "us_per_decision": round(warm / N * 1e6, 2)}))
    sa = UserInfo("system:serviceaccount:ns1:deployer", groups=("system:serviceaccounts", "system:serviceaccounts:ns1",
                                                        "system:authenticated"))
    objs["role_bindings"].append({"metadata": {"name": "deployer-edit", "namespace": "ns1"},
                                  "subjects": [{"kind": "ServiceAccount", "name": "deployer"}],
                                  "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": "edit"}})
    authz = build(objs, policy)
    attrs = Attributes("create", namespace="ns1", api_group="apps", resource="deployments")
    t0 = time.perf_counter()
    ok = sum(authz.authorize(sa, attrs).allowed for _ in range(N))
    elapsed = time.perf_counter() - t0
    print(json.dumps({"bench": "rbac_decisions_allowed_via_aggregated_edit", "decisions": N, "allowed": ok,
                      "per_s": round(N / elapsed), "us_per_decision": round(elapsed / N * 1e6, 2)}))
    user = UserInfo("user1", groups=("system:authenticated",))
    role = {"metadata": {"name": "new", "namespace": "ns1"}, "rules": [
        {"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods", "secrets"]}]}
    esc_n = 20_000
    t0 = time.perf_counter()
    for _ in range(esc_n):
        check_role_write(authz, user, role, cluster=False)
    esc = time.perf_counter() - t0
    print(json.dumps({"bench": "rbac_escalation_checks", "checks": esc_n, "per_s": round(esc_n / esc)}))


if __name__ == "__main__":
    main()
