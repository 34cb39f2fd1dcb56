"""RBAC benchmark (issue 12): authorization decisions per second with 1,000 Roles and 1,000
RoleBindings (plus the bootstrap policy) spread over 100 namespaces, 200 users and 20 groups: random
requests (mostly denied), a service account allowed through the aggregated ``edit`` role, the
snapshot build time, and escalation checks (role create) per second.

Then the same objects in a real control plane (its store, its watch-fed snapshot) and HTTP GETs
through the real request path: with authorization switched off, as the admin (system:masters,
short-circuited) and as the bound users (impersonation + RBAC), so the per-request cost of authz
shows as a ratio; plus the in-process cost of ``Authorization.check`` and of a snapshot rebuild.

Prints JSON lines. Usage: python bench/bench_rbac.py [DECISIONS [HTTP_REQUESTS]]
(defaults 200000 and 2000)
"""

from __future__ import annotations

import asyncio
import json
import random
import statistics
import sys
import tempfile
import time

from vkube.api.rbac import Attributes, RBACAuthorizer, UserInfo, check_role_write
from vkube.api.rbac.bootstrap import bootstrap_policy

N = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
HTTP_N = int(sys.argv[2]) if len(sys.argv) > 2 else 2_000
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
    asyncio.run(request_path(objects(random.Random(12))))


async def request_path(objs: dict[str, list[dict]]) -> None:
    """The real request path: a ControlPlane holding the 1,000 Roles and 1,000 RoleBindings."""
    import aiohttp

    from vkube.apiserver.request import RequestContext, internal_context
    from vkube.apiserver.requestinfo import parse
    from vkube.apiserver.server import ControlPlane

    with tempfile.TemporaryDirectory() as tmp:
        cp = ControlPlane(data_dir=tmp)
        await cp.start()
        try:
            assert cp.ctx is not None and cp.server is not None
            ns_storage = cp.ctx.storage_for("", "Namespace")
            await asyncio.gather(*(ns_storage.create(internal_context("create"), None, {
                "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": f"ns{i}"}}) for i in range(100)))
            for kind, key in (("Role", "roles"), ("RoleBinding", "role_bindings")):
                st = cp.ctx.storage_for(RBAC, kind)
                await asyncio.gather(*(st.create(internal_context("create"), o["metadata"]["namespace"], {
                    "apiVersion": f"{RBAC}/v1", "kind": kind, **o}) for o in objs[key]))
            authorization = cp.server.authorization
            t0 = time.perf_counter()
            snapshot = authorization.authorizer  # rebuilt from the watch-fed objects
            print(json.dumps({"bench": "rbac_snapshot_rebuild_in_server", "objects": len(authorization._objects),
                              "ms": round((time.perf_counter() - t0) * 1000, 2)}))
            # users allowed to list configmaps in some namespace (a User subject, so impersonation is enough)
            allowed = []
            for rb in objs["role_bindings"]:
                subject, ns = rb["subjects"][0], rb["metadata"]["namespace"]
                user = UserInfo(subject["name"], groups=("system:authenticated",))
                if subject["kind"] == "User" and snapshot.authorize(
                        user, Attributes("list", namespace=ns, resource="configmaps")).allowed:
                    allowed.append((user, ns))
            rcs = [RequestContext(user=u, info=parse("GET", f"/api/v1/namespaces/{ns}/configmaps"), audit_id="b")
                   for u, ns in allowed]
            n_check = 100_000
            t0 = time.perf_counter()
            for i in range(n_check):
                authorization.check(rcs[i % len(rcs)], ())
            check_us = (time.perf_counter() - t0) / n_check * 1e6
            print(json.dumps({"bench": "rbac_authorization_check_in_process", "checks": n_check,
                              "us_per_check": round(check_us, 2), "per_s": round(1e6 / check_us)}))

            async def run(session: aiohttp.ClientSession, mode: str) -> float:
                t0 = time.perf_counter()
                for i in range(HTTP_N):
                    user, ns = allowed[i % len(allowed)]
                    headers = {"Impersonate-User": user.name} if mode == "user" else {}
                    async with session.get(f"{cp.url}/api/v1/namespaces/{ns}/configmaps", headers=headers) as resp:
                        await resp.read()
                        assert resp.status == 200, (mode, resp.status)
                return (time.perf_counter() - t0) / HTTP_N * 1e6

            real_check = authorization.check
            times: dict[str, list[float]] = {"authz_off": [], "admin_system_masters": [], "user_impersonated_rbac": []}
            async with aiohttp.ClientSession() as session:
                await run(session, "admin")  # warm-up
                for _ in range(5):  # modes interleaved, medians kept: the machine is shared
                    authorization.check = lambda rc, headers: rc  # type: ignore[method-assign]
                    times["authz_off"].append(await run(session, "admin"))
                    authorization.check = real_check  # type: ignore[method-assign]
                    times["admin_system_masters"].append(await run(session, "admin"))
                    times["user_impersonated_rbac"].append(await run(session, "user"))
            off = statistics.median(times["authz_off"])
            for mode, samples in times.items():
                us = statistics.median(samples)
                print(json.dumps({"bench": "rbac_request_path_http", "mode": mode, "requests": HTTP_N * 5,
                                  "roles": len(objs["roles"]), "bindings": len(objs["role_bindings"]),
                                  "us_per_request": round(us, 1), "per_s": round(1e6 / us),
                                  "ratio_vs_authz_off": round(us / off, 3)}))
            print(json.dumps({"bench": "rbac_authz_share_of_request", "check_us": round(check_us, 2),
                              "request_us_authz_off": round(off, 1), "ratio": round((off + check_us) / off, 3)}))
        finally:
            await cp.stop()


if __name__ == "__main__":
    main()
