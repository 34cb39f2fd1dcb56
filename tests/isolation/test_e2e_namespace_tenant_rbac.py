"""A namespace tenant's rights on the host, tried with kubectl and the tenant's own kubeconfig
(`vkube connect NAME --print`: its ServiceAccount's token, verified by the host's TLS):
everything of ``admin`` in its own namespace, nothing outside it, no change to its quota or
limits, no NetworkPolicy write (deleting the egress guard rail, or adding a policy that opens
the private ranges again), and no way around that through its own Roles and RoleBindings
(RBAC's escalation check)."""

from __future__ import annotations

import json

from tests.conftest import kubectl

from .conftest import cleanup, make_user

OPEN_POLICY = """
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: open, namespace: team}
spec:
  podSelector: {}
  policyTypes: [Egress]
  egress: [{to: [{ipBlock: {cidr: 10.0.0.0/8}}]}]
"""


def test_namespace_tenant_is_held_to_its_namespace(shared_host, tmp_path):
    u = make_user(tmp_path / "u")
    try:
        u.vkube("create", "team", "--tenancy", "namespace", "--host-kubeconfig",
                str(shared_host), "--connect=false")
        role = json.loads(kubectl(shared_host, "get", "role", "-n", "team", "vkube-tenant",
                                  "-o", "json").stdout)
        for rule in role["rules"]:
            if "networking.k8s.io" in rule["apiGroups"] and "networkpolicies" in rule["resources"]:
                assert set(rule["verbs"]) <= {"get", "list", "watch"}, rule
        rb = json.loads(kubectl(shared_host, "get", "rolebinding", "-n", "team",
                                "vkube-tenant-admin", "-o", "json").stdout)
        assert rb["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                 "name": "vkube-tenant"}

        # the tenant's own credential, as `vkube connect team --print` gives it
        kc = tmp_path / "team.yaml"
        kc.write_text(u.vkube("connect", "team", "--print").stdout)

        def tenant(*args: str, input: str | None = None, ok: bool = True):  # noqa: ANN202
            proc = kubectl(kc, *args, input=input, check=False)
            if ok:
                assert proc.returncode == 0, (args, proc.stderr)
            else:
                assert proc.returncode != 0 and "forbidden" in proc.stderr.lower(), (args, proc.stderr)
            return proc

        # its own namespace: admin's rights
        tenant("create", "deployment", "web", "--image=nginx", "-n", "team")
        tenant("create", "configmap", "c", "--from-literal=k=v", "-n", "team")
        tenant("create", "role", "reader", "--verb=get", "--resource=pods", "-n", "team")
        tenant("get", "networkpolicy", "vkube-tenant-egress", "-n", "team")
        tenant("get", "resourcequota", "vkube-tenant-quota", "-n", "team")
        # outside it
        tenant("get", "pods", "-n", "default", ok=False)
        tenant("get", "pods", "-A", ok=False)
        tenant("get", "namespaces", ok=False)
        tenant("get", "nodes", ok=False)
        tenant("create", "namespace", "team2", ok=False)
        tenant("create", "configmap", "x", "--from-literal=k=v", "-n", "default", ok=False)
        tenant("get", "secrets", "-n", "kube-system", ok=False)
        # its guard rails
        tenant("patch", "resourcequota", "vkube-tenant-quota", "-n", "team", "--type=merge",
               "-p", '{"spec":{"hard":{"count/pods":"1000"}}}', ok=False)
        tenant("delete", "resourcequota", "vkube-tenant-quota", "-n", "team", ok=False)
        tenant("create", "quota", "more", "--hard=pods=1000", "-n", "team", ok=False)
        tenant("delete", "limitrange", "vkube-tenant-limits", "-n", "team", ok=False)
        tenant("delete", "networkpolicy", "vkube-tenant-egress", "-n", "team", ok=False)
        tenant("patch", "networkpolicy", "vkube-tenant-egress", "-n", "team", "--type=merge",
               "-p", '{"spec":{"egress":[{}]}}', ok=False)
        tenant("apply", "-f", "-", input=OPEN_POLICY, ok=False)
        tenant("label", "namespace", "team", "pod-security.kubernetes.io/enforce=privileged",
               "--overwrite", ok=False)
        assert kubectl(kc, "auth", "can-i", "delete", "networkpolicies", "-n", "team",
                       check=False).stdout.strip() == "no"
        assert kubectl(kc, "auth", "can-i", "create", "deployments", "-n", "team",
                       check=False).stdout.strip() == "yes"
        # and no way around it: granting itself admin, or widening its own role
        tenant("create", "rolebinding", "more", "--clusterrole=admin",
               "--serviceaccount=team:vkube-tenant", "-n", "team", ok=False)
        tenant("create", "role", "np", "--verb=delete", "--resource=networkpolicies", "-n",
               "team", ok=False)
        tenant("patch", "role", "vkube-tenant", "-n", "team", "--type=json", "-p",
               '[{"op":"add","path":"/rules/-","value":{"apiGroups":["networking.k8s.io"],'
               '"resources":["networkpolicies"],"verbs":["*"]}}]', ok=False)
        kubectl(shared_host, "get", "networkpolicy", "vkube-tenant-egress", "-n", "team")
    finally:
        cleanup(u)
