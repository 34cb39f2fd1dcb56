"""The same chain on the embedded host and in a virtual cluster, through `vkube create`, the
real kubectl and `vkube logs --audit`: Pod Security, quota and LimitRange on a host namespace;
a virtual cluster's pod (with its kube-api-access volume) still syncs and runs."""

from __future__ import annotations

import json

from tests.cli.conftest import User, eventually, user  # noqa: F401 - the fixture
from tests.conftest import kubectl

PRIVILEGED = """
apiVersion: v1
kind: Pod
metadata: {name: priv}
spec:
  containers: [{name: c, image: nginx, securityContext: {privileged: true}}]
"""


def pod(name: str) -> str:
    return f"apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  containers: [{{name: c, image: nginx}}]\n"


def test_host_enforces_quota_limitrange_and_pod_security(user: User):  # noqa: F811
    user.vkube("create", "adm")
    host = user.home / "host" / "kubeconfig"

    def hk(*args: str, **kw):
        return kubectl(host, *args, **kw)

    # a virtual cluster's pod still reaches the host and runs (its token volume is rewritten)
    user.kubectl("run", "web", "--image=nginx")
    vpod = json.loads(user.kubectl("get", "pod", "web", "-o", "json").stdout)
    assert any(v["name"].startswith("kube-api-access-") for v in vpod["spec"]["volumes"])

    def running():
        phase = user.kubectl("get", "pod", "web", "-o", "jsonpath={.status.phase}").stdout
        assert phase == "Running", phase
    eventually(running, timeout=90)

    hk("create", "namespace", "tenant")
    hk("label", "namespace", "tenant", "pod-security.kubernetes.io/enforce=baseline")
    eventually(lambda: hk("get", "serviceaccount", "default", "-n", "tenant"), timeout=60)
    out = hk("apply", "-n", "tenant", "-f", "-", input=PRIVILEGED, check=False)
    assert ('pods "priv" is forbidden: violates PodSecurity "baseline:latest": privileged '
            '(container "c" must not set securityContext.privileged=true)') in out.stderr

    hk("create", "quota", "two", "--hard=pods=2", "-n", "tenant")
    hk("apply", "-n", "tenant", "-f", "-", input="""
apiVersion: v1
kind: LimitRange
metadata: {name: defaults}
spec:
  limits: [{type: Container, default: {cpu: 300m, memory: 200Mi}, defaultRequest: {cpu: 50m}}]
""")

    def quota_ready():
        q = json.loads(hk("get", "quota", "two", "-n", "tenant", "-o", "json").stdout)
        assert (q.get("status") or {}).get("hard") == {"pods": "2"}, q
    eventually(quota_ready, timeout=60)
    hk("apply", "-n", "tenant", "-f", "-", input=pod("a"))
    hk("apply", "-n", "tenant", "-f", "-", input=pod("b"))
    res = json.loads(hk("get", "pod", "a", "-n", "tenant", "-o", "json").stdout)["spec"]["containers"][0]["resources"]
    assert res == {"limits": {"cpu": "300m", "memory": "200Mi"}, "requests": {"cpu": "50m", "memory": "200Mi"}}
    out = hk("apply", "-n", "tenant", "-f", "-", input=pod("c"), check=False)
    assert ('pods "c" is forbidden: exceeded quota: two, requested: pods=1, used: pods=2, '
            'limited: pods=2') in out.stderr

    def described():
        lines = [ln.split() for ln in hk("describe", "quota", "two", "-n", "tenant").stdout.splitlines()]
        assert ["pods", "2", "2"] in lines, lines
    eventually(described, timeout=60)

    # the pods the embedded host runs for the tenant go Running under the chain
    def host_running():
        phase = hk("get", "pod", "a", "-n", "tenant", "-o", "jsonpath={.status.phase}").stdout
        assert phase == "Running", phase
    eventually(host_running, timeout=90)

    audit = [json.loads(line) for line in user.vkube("logs", "adm", "--audit").stdout.splitlines()]
    created = [e for e in audit if e["verb"] == "create" and (e.get("objectRef") or {}).get("name") == "web"]
    assert created and created[0]["objectRef"]["resource"] == "pods"
    assert created[0]["responseStatus"]["code"] == 201 and created[0]["level"] == "Metadata"
    tail = user.vkube("logs", "adm", "--audit", "--tail", "1").stdout.splitlines()
    assert len(tail) == 1 and json.loads(tail[0])["kind"] == "Event"
