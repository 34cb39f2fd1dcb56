"""``vkube create NAME --isolate`` on an embedded host, driven with the real kubectl: Pod
Security enforced when a pod is created and again by the syncer (violations named in the
refusal, events, ``describe``, nothing on the host),
the host objects at the issue's defaults, ``--cpu``/``--memory``, hard tenancy options."""

from __future__ import annotations

import json

from tests.conftest import kubectl

from .conftest import cleanup, eventually, make_user

PRIVILEGED = """
apiVersion: v1
kind: Pod
metadata: {name: priv}
spec:
  containers: [{name: c, image: nginx, securityContext: {privileged: true}}]
---
apiVersion: v1
kind: Pod
metadata: {name: hostpath}
spec:
  containers: [{name: c, image: nginx}]
  volumes: [{name: root, hostPath: {path: /}}]
---
apiVersion: v1
kind: Pod
metadata: {name: hostnet}
spec:
  hostNetwork: true
  containers: [{name: c, image: nginx}]
---
apiVersion: v1
kind: Pod
metadata: {name: netadmin}
spec:
  containers: [{name: c, image: nginx, securityContext: {capabilities: {add: [NET_ADMIN]}}}]
"""
EXPECTED = {
    "priv": 'privileged (container "c" must not set securityContext.privileged=true)',
    "hostpath": 'hostPath volumes (volume "root")',
    "hostnet": "host namespaces (hostNetwork=true)",
    "netadmin": 'non-default capabilities (container "c" must not include "NET_ADMIN" in '
                "securityContext.capabilities.add)",
}
GOOD = """
apiVersion: v1
kind: Pod
metadata: {name: good}
spec:
  runtimeClassName: tenant-picked
  containers: [{name: c, image: nginx}]
"""


def _host_pods(host_kc, ns: str) -> dict[str, dict]:
    out = kubectl(host_kc, "get", "pods", "-n", ns, "-o", "json").stdout
    return {p["metadata"]["name"]: p for p in json.loads(out)["items"]}


def test_isolate_enforces_pod_security_and_host_objects(shared_host, tmp_path):
    u = make_user(tmp_path / "u")
    values = tmp_path / "tenancy.yaml"
    values.write_text("isolation:\n  runtimeClassName: sandboxed\n"
                      "  tolerations: [{key: dedicated, value: tenants, effect: NoSchedule}]\n")
    try:
        u.vkube("create", "iso", "--isolate", "--cpu", "6", "--memory", "12Gi", "-f",
                str(values), "--host-kubeconfig", str(shared_host))
        # RuntimeClass admission refuses a class that does not exist, in the virtual cluster
        # (the tenant's) and on the host (the forced one) alike
        for kc, handler in ((u.kubeconfig, "tenant-picked"), (shared_host, "sandboxed")):
            kubectl(kc, "apply", "-f", "-", input=json.dumps(
                {"apiVersion": "node.k8s.io/v1", "kind": "RuntimeClass",
                 "metadata": {"name": handler}, "handler": handler}))
        # refused when created, by the virtual API server's PodSecurity at the isolation level
        # (its default), with upstream's message naming each violation
        bad = u.kubectl("apply", "-f", "-", input=PRIVILEGED + "---" + GOOD, check=False)
        assert bad.returncode != 0, bad.stdout
        for pod, words in EXPECTED.items():
            assert (f'pods "{pod}" is forbidden: violates PodSecurity "baseline:latest": '
                    f"{words}") in bad.stderr, (pod, bad.stderr)
        assert "pod/good created" in bad.stdout
        # a tenant may label its namespace otherwise; the syncer still keeps them off the host
        u.kubectl("label", "ns", "default", "pod-security.kubernetes.io/enforce=privileged")
        u.kubectl("apply", "-f", "-", input=PRIVILEGED)

        def refused() -> None:
            events = json.loads(u.kubectl("get", "events", "-o", "json").stdout)["items"]
            for pod, words in EXPECTED.items():
                msgs = [e["message"] for e in events if e["involvedObject"]["name"] == pod
                        and e["reason"] == "SyncRejected" and e["type"] == "Warning"]
                assert msgs and 'violates PodSecurity "baseline:latest"' in msgs[0], pod
                assert words in msgs[0], (pod, msgs)
        eventually(refused, timeout=90)
        describe = u.kubectl("describe", "pod", "priv").stdout
        assert "SyncRejected" in describe and "PodScheduled" in describe
        assert EXPECTED["priv"] in describe
        get = u.kubectl("get", "pod", "hostnet", "-o", "wide").stdout
        assert "SyncRejected" in get  # the STATUS column, as kubectl shows status.reason

        def good_runs() -> None:
            phase = u.kubectl("get", "pod", "good", "-o", "jsonpath={.status.phase}").stdout
            assert phase == "Running"
        eventually(good_runs, timeout=120)
        hpods = _host_pods(shared_host, "vkube-iso")
        assert list(hpods) == ["good-x-default-x-iso"]  # no violating pod reached the host
        spec = hpods["good-x-default-x-iso"]["spec"]
        assert spec["runtimeClassName"] == "sandboxed"  # the tenant's choice overridden
        assert {"key": "dedicated", "operator": "Equal", "value": "tenants",
                "effect": "NoSchedule"} in spec["tolerations"]

        quota = json.loads(kubectl(shared_host, "get", "resourcequota", "-n", "vkube-iso",
                                   "vkube-isolation-iso", "-o", "json").stdout)
        assert quota["spec"]["hard"] == {
            "count/configmaps": "100", "count/endpoints": "40",
            "count/persistentvolumeclaims": "20", "count/pods": "20", "count/secrets": "100",
            "count/services": "20", "limits.cpu": "6", "limits.ephemeral-storage": "160Gi",
            "limits.memory": "12Gi", "requests.cpu": "3", "requests.ephemeral-storage": "60Gi",
            "requests.memory": "6Gi", "requests.storage": "100Gi",
            "services.loadbalancers": "1", "services.nodeports": "0"}
        lr = json.loads(kubectl(shared_host, "get", "limitrange", "-n", "vkube-iso",
                                "vkube-isolation-iso", "-o", "json").stdout)
        assert lr["spec"]["limits"] == [{
            "type": "Container",
            "default": {"cpu": "1", "memory": "512Mi", "ephemeral-storage": "8Gi"},
            "defaultRequest": {"cpu": "100m", "memory": "128Mi", "ephemeral-storage": "3Gi"}}]
        nps = json.loads(kubectl(shared_host, "get", "networkpolicies", "-n", "vkube-iso",
                                 "-o", "json").stdout)["items"]
        assert sorted(n["metadata"]["name"] for n in nps) == [
            "vkube-isolation-iso", "vkube-isolation-iso-control-plane"]
        work = next(n for n in nps if n["metadata"]["name"] == "vkube-isolation-iso")
        assert work["spec"]["egress"][-1] == {"to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": [
            "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "127.0.0.0/8",
            "169.254.0.0/16", "168.63.129.16/32", "192.0.0.192/32"]}}]}
        ns = json.loads(kubectl(shared_host, "get", "namespace", "vkube-iso", "-o",
                                "json").stdout)
        assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "baseline"
        # its control plane reaches no address of this machine for it (webhooks, APIServices,
        # a pod's port-forward annotation): tests/webhooks/probes.py
        from tests.webhooks.probes import probe_loopback

        probe_loopback(u.kubectl)
    finally:
        cleanup(u)


def test_isolation_flags_refused_with_a_message(shared_host, tmp_path):
    u = make_user(tmp_path / "u")
    try:
        bad = u.vkube("create", "x", "--cpu", "4", "--host-kubeconfig", str(shared_host),
                      check=False)
        assert bad.returncode != 0 and "--cpu" in bad.stderr and "--isolate" in bad.stderr
        assert "Traceback" not in bad.stderr
        bad = u.vkube("create", "x", "--isolate", "--memory", "lots", "--host-kubeconfig",
                      str(shared_host), check=False)
        assert bad.returncode != 0 and "isolation.resourceQuota.memory" in bad.stderr
        assert "Traceback" not in bad.stderr
        bad = u.vkube("create", "x", "--isolate", "--pod-security", "strict", check=False)
        assert bad.returncode != 0 and "--pod-security" in bad.stderr
    finally:
        cleanup(u)


def test_scaling_past_the_host_quota_shows_the_refusal(shared_host, tmp_path):
    """The issue's line, through ``vkube create --isolate`` and kubectl: with ``--cpu 1`` the
    host quota holds one pod (the LimitRange gives each a 1-CPU limit); scaled to two, the
    second shows the host's refusal (``get``'s STATUS, ``describe``'s condition and event)
    and stays refused; scaled back, no refusal is left."""
    u = make_user(tmp_path / "u")
    try:
        u.vkube("create", "qt", "--isolate", "--cpu", "1", "--host-kubeconfig", str(shared_host))
        u.kubectl("create", "deployment", "web", "--image=nginx", "--replicas=2")

        def pods() -> dict[str, dict]:
            out = json.loads(u.kubectl("get", "pods", "-l", "app=web", "-o", "json").stdout)
            return {p["metadata"]["name"]: p for p in out["items"]
                    if not p["metadata"].get("deletionTimestamp")}

        def one_runs_one_refused() -> str:
            ps = pods()
            phases = sorted((p.get("status") or {}).get("phase", "") for p in ps.values())
            refused = [n for n, p in ps.items() if (p.get("status") or {}).get("reason") == "HostRefused"]
            assert len(ps) == 2 and "Running" in phases and len(refused) == 1, (phases, refused)
            return refused[0]
        name = eventually(one_runs_one_refused, timeout=180)
        assert "HostRefused" in u.kubectl("get", "pod", name).stdout  # the STATUS column
        describe = u.kubectl("describe", "pod", name).stdout
        assert "exceeded quota: vkube-isolation-qt" in describe and "limits.cpu" in describe
        assert "PodScheduled" in describe and "Warning  HostRefused" in describe
        assert len(_host_pods(shared_host, "vkube-qt")) == 1

        u.kubectl("scale", "deployment", "web", "--replicas=1")

        def settled() -> None:
            ps = pods()
            assert len(ps) == 1, list(ps)
            (p,) = ps.values()
            assert p["status"].get("phase") == "Running" and p["status"].get("reason") is None
        eventually(settled, timeout=120)
    finally:
        cleanup(u)
