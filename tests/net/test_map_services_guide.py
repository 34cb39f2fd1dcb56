"""The guide's mapServices scenario (JOURNEY.md §3) end to end, as a user follows it: `vkube
create net-vcluster`, then `vkube create net-vcluster --upgrade -f host-to-vcluster.yaml` and
`-f vcluster-to-host.yaml`, checked with kubectl on both sides — the host ClusterIP and
endpoints inside the virtual cluster, the mapped-out Service in the host namespace selecting
the synced pods, pods reaching the mapped services by name in both directions (``kubectl exec
… nc``: DNS through the pod's resolv.conf, Services to endpoints, on the embedded host), and a
removed mapping removing its object."""

from __future__ import annotations

import json

from tests.cli.conftest import User, eventually, user  # noqa: F401  (the fixture)
from tests.conftest import kubectl

HOST_APPS = """
apiVersion: v1
kind: Pod
metadata: {name: nettool-host, namespace: default, labels: {app: nettool-host}}
spec:
  containers: [{name: c, image: nginx, ports: [{containerPort: 80}]}]
---
apiVersion: v1
kind: Service
metadata: {name: nettool-host, namespace: default}
spec: {selector: {app: nettool-host}, ports: [{port: 80}]}
---
apiVersion: v1
kind: Pod
metadata: {name: host-client, namespace: default}
spec:
  containers: [{name: c, image: busybox, command: [sleep, "3600"]}]
"""

VIRTUAL_APPS = """
apiVersion: v1
kind: Pod
metadata: {name: nettool-virtual, namespace: default, labels: {app: nettool-virtual}}
spec:
  containers: [{name: c, image: nginx, ports: [{containerPort: 80}]}]
---
apiVersion: v1
kind: Service
metadata: {name: nettool-virtual, namespace: default}
spec: {selector: {app: nettool-virtual}, ports: [{port: 80}]}
---
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: default}
spec:
  containers: [{name: c, image: busybox, command: [sleep, "3600"]}]
"""

HOST_TO_VCLUSTER = """
mapServices:
  fromHost:
  - from: default/nettool-host
    to: default/nettool-host
"""

VCLUSTER_TO_HOST = """
mapServices:
  fromVirtual:
  - from: default/nettool-virtual
    to: nettool-virtual
"""


def test_the_guides_service_mapping(user: User, tmp_path) -> None:
    user.vkube("create", "net-vcluster")
    host = user.home / "host" / "kubeconfig"
    kubectl(host, "apply", "-f", "-", input=HOST_APPS)
    user.kubectl("apply", "-f", "-", input=VIRTUAL_APPS)
    for kc in (host, user.kubeconfig):
        kubectl(kc, "wait", "pod", "--all", "-n", "default", "--for=condition=Ready",
                "--timeout=120s", timeout=150)
    host_svc = json.loads(kubectl(host, "get", "svc", "nettool-host", "-o", "json").stdout)
    host_pod_ip = kubectl(host, "get", "pod", "nettool-host", "-o",
                          "jsonpath={.status.podIP}").stdout

    # host → virtual
    (tmp_path / "host-to-vcluster.yaml").write_text(HOST_TO_VCLUSTER)
    user.vkube("create", "net-vcluster", "--upgrade", "-f", str(tmp_path / "host-to-vcluster.yaml"))

    def mapped_in() -> dict:
        svc = json.loads(user.kubectl("get", "svc", "nettool-host", "-o", "json").stdout)
        assert svc["spec"]["clusterIP"] == host_svc["spec"]["clusterIP"]
        assert [p["port"] for p in svc["spec"]["ports"]] == [80]
        eps = user.kubectl("get", "endpoints", "nettool-host", "-o",
                           "jsonpath={.subsets[*].addresses[*].ip}").stdout.split()
        assert eps == [host_pod_ip], eps
        return svc
    eventually(mapped_in, timeout=90, delay=0.5)
    slices = user.kubectl("get", "endpointslices", "-l", "kubernetes.io/service-name=nettool-host",
                          "-o", "jsonpath={.items[*].endpoints[*].addresses[*]}").stdout.split()
    assert slices == [host_pod_ip]
    cip = host_svc["spec"]["clusterIP"]
    r = user.kubectl("exec", "client", "--", "nc", "-z", "-v", "-w", "2", "nettool-host", "80",
                     check=False, timeout=90)
    assert r.returncode == 0 and f"({cip}:80) open" in r.stderr, r

    # virtual → host; the fromHost mapping is gone from these values, so is its object
    (tmp_path / "vcluster-to-host.yaml").write_text(VCLUSTER_TO_HOST)
    user.vkube("create", "net-vcluster", "--upgrade", "-f", str(tmp_path / "vcluster-to-host.yaml"))
    hns = "vkube-net-vcluster"

    def mapped_out() -> dict:
        svc = json.loads(kubectl(host, "get", "svc", "-n", hns, "nettool-virtual", "-o",
                                 "json").stdout)
        selected = json.loads(kubectl(host, "get", "pods", "-n", hns, "-l", ",".join(
            f"{k}={v}" for k, v in svc["spec"]["selector"].items()), "-o", "json").stdout)["items"]
        assert [p["metadata"]["name"] for p in selected] == ["nettool-virtual-x-default-x-net-vcluster"]
        return svc
    eventually(mapped_out, timeout=90, delay=0.5)
    eventually(lambda: _gone(user.kubectl("get", "svc", "nettool-host", check=False)),
               timeout=90, delay=0.5)
    r = kubectl(host, "exec", "host-client", "--", "nc", "-z", "-v", "-w", "2",
                f"nettool-virtual.{hns}", "80", check=False, timeout=90)
    assert r.returncode == 0 and "open" in r.stderr, r
    # the virtual pod behind it, by the host service's endpoints
    vpod_ip = user.kubectl("get", "pod", "nettool-virtual", "-o", "jsonpath={.status.podIP}").stdout
    eps = kubectl(host, "get", "endpoints", "-n", hns, "nettool-virtual", "-o",
                  "jsonpath={.subsets[*].addresses[*].ip}").stdout.split()
    assert eps == [vpod_ip]

    # no mappings: the mapped-out service goes, the host's and the tenant's own stay
    (tmp_path / "none.yaml").write_text("mapServices: {}\n")
    user.vkube("create", "net-vcluster", "--upgrade", "-f", str(tmp_path / "none.yaml"))
    eventually(lambda: _gone(kubectl(host, "get", "svc", "-n", hns, "nettool-virtual",
                                     check=False)), timeout=90, delay=0.5)
    kubectl(host, "get", "svc", "nettool-host")
    user.kubectl("get", "svc", "nettool-virtual")


def _gone(proc) -> None:  # noqa: ANN001
    assert proc.returncode != 0 and "NotFound" in proc.stderr, proc
