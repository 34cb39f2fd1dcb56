"""storage.k8s.io CSI kinds, ServiceCIDR/IPAddress and node.k8s.io RuntimeClass through
kubectl: defaults, validation, the simulated kubelet's CSINode per node, and RuntimeClass
admission (overhead, scheduling) honoured by the embedded host's scheduler."""

from __future__ import annotations

import json
from typing import Any

from tests.cli.conftest import User, eventually
from tests.conftest import kubectl


def host(user: User, *args: str, **kw: Any) -> Any:
    return kubectl(user.home / "host" / "kubeconfig", *args, **kw)


def test_csidriver_defaults_and_immutable_fields(vcluster: User) -> None:
    vcluster.kubectl("apply", "-f", "-", input="""
apiVersion: storage.k8s.io/v1
kind: CSIDriver
metadata: {name: hostpath.csi.example.com}
spec: {podInfoOnMount: true}
""")
    got = json.loads(vcluster.kubectl("get", "csidriver", "hostpath.csi.example.com", "-o", "json").stdout)["spec"]
    assert got == {"attachRequired": True, "podInfoOnMount": True, "storageCapacity": False,
                   "fsGroupPolicy": "ReadWriteOnceWithFSType", "requiresRepublish": False, "seLinuxMount": False,
                   "volumeLifecycleModes": ["Persistent"]}
    row = vcluster.kubectl("get", "csidriver", "hostpath.csi.example.com").stdout.splitlines()[1].split()
    assert row[:7] == ["hostpath.csi.example.com", "true", "true", "false", "<none>", "false", "Persistent"]
    proc = vcluster.kubectl("patch", "csidriver", "hostpath.csi.example.com", "--type", "merge",
                            "-p", '{"spec":{"attachRequired":false}}', check=False)
    # upstream's validation names the field "spec.attachedRequired" (sic)
    assert proc.returncode != 0 and "spec.attachedRequired: Invalid value: false: field is immutable" in proc.stderr
    proc = vcluster.kubectl("create", "-f", "-", check=False, input="""
apiVersion: storage.k8s.io/v1
kind: CSIDriver
metadata: {name: bad.example.com}
spec: {volumeLifecycleModes: [Sometimes], fsGroupPolicy: Maybe}
""")
    assert 'spec.volumeLifecycleModes: Unsupported value: "Sometimes": supported values: "Persistent", "Ephemeral"' in proc.stderr
    assert 'spec.fsGroupPolicy: Unsupported value: "Maybe"' in proc.stderr


def test_volume_attachment_status_and_validation(vcluster: User) -> None:
    proc = vcluster.kubectl("create", "-f", "-", check=False, input="""
apiVersion: storage.k8s.io/v1
kind: VolumeAttachment
metadata: {name: va-bad}
spec: {attacher: hostpath.csi.example.com, source: {}}
""")
    assert 'spec.nodeName: Invalid value: "": a lowercase RFC 1123 subdomain' in proc.stderr  # ValidateNodeName
    assert "spec.source: Required value: must specify exactly one of inlineVolumeSpec and persistentVolumeName" in proc.stderr
    vcluster.kubectl("create", "-f", "-", input="""
apiVersion: storage.k8s.io/v1
kind: VolumeAttachment
metadata: {name: va-1}
spec: {attacher: hostpath.csi.example.com, nodeName: n1, source: {persistentVolumeName: pv-1}}
status: {attached: true}
""")
    va = json.loads(vcluster.kubectl("get", "volumeattachment", "va-1", "-o", "json").stdout)
    assert "status" not in va  # only the attacher writes status, through /status
    vcluster.kubectl("patch", "volumeattachment", "va-1", "--subresource", "status", "--type", "merge",
                     "-p", '{"status":{"attached":true}}')
    row = vcluster.kubectl("get", "volumeattachment", "va-1").stdout.splitlines()[1].split()
    assert row[:5] == ["va-1", "hostpath.csi.example.com", "pv-1", "n1", "true"]
    proc = vcluster.kubectl("patch", "volumeattachment", "va-1", "--type", "merge",
                            "-p", '{"spec":{"nodeName":"n2"}}', check=False)
    assert "spec: Invalid value" in proc.stderr and "field is immutable" in proc.stderr


def test_storage_capacity_and_attributes_class(vcluster: User) -> None:
    vcluster.kubectl("apply", "-f", "-", input="""
apiVersion: storage.k8s.io/v1
kind: CSIStorageCapacity
metadata: {name: cap-1, namespace: default}
storageClassName: standard
capacity: 10Gi
---
apiVersion: storage.k8s.io/v1
kind: VolumeAttributesClass
metadata: {name: gold}
driverName: hostpath.csi.example.com
parameters: {iops: "1000"}
""")
    assert vcluster.kubectl("get", "csistoragecapacities", "-n", "default").stdout.splitlines()[1].split() == \
        ["cap-1", "standard", "10Gi"]
    assert vcluster.kubectl("get", "vac", "gold").stdout.splitlines()[1].split()[:2] == ["gold", "hostpath.csi.example.com"]
    proc = vcluster.kubectl("patch", "vac", "gold", "--type", "merge", "-p", '{"parameters":{"iops":"5"}}', check=False)
    assert "parameters: Forbidden: updates to parameters are forbidden." in proc.stderr
    proc = vcluster.kubectl("create", "-f", "-", check=False, input="""
apiVersion: storage.k8s.io/v1
kind: VolumeAttributesClass
metadata: {name: nodriver}
""")
    assert "driverName: Required value" in proc.stderr


def test_service_cidr_and_ip_address(vcluster: User) -> None:
    cidr = json.loads(vcluster.kubectl("get", "servicecidr", "kubernetes", "-o", "json").stdout)
    assert cidr["spec"]["cidrs"] and cidr["status"]["conditions"][0]["type"] == "Ready"
    proc = vcluster.kubectl("create", "-f", "-", check=False, input="""
apiVersion: networking.k8s.io/v1
kind: IPAddress
metadata: {name: 10.96.000.5}
spec: {parentRef: {resource: services, namespace: default, name: x}}
""")
    assert "metadata.name: Invalid value" in proc.stderr
    vcluster.kubectl("create", "-f", "-", input="""
apiVersion: networking.k8s.io/v1
kind: IPAddress
metadata: {name: 10.96.200.5}
spec: {parentRef: {group: "", resource: services, namespace: default, name: x}}
""")
    assert vcluster.kubectl("get", "ip", "10.96.200.5").stdout.splitlines()[1].split() == ["10.96.200.5", "services/default/x"]
    proc = vcluster.kubectl("create", "-f", "-", check=False, input="""
apiVersion: networking.k8s.io/v1
kind: ServiceCIDR
metadata: {name: two-v4}
spec: {cidrs: [10.0.0.0/24, 10.1.0.0/24]}
""")
    assert "may specify no more than one IP for each IP family" in proc.stderr


def test_every_host_node_has_a_csinode(vcluster: User) -> None:
    nodes = json.loads(host(vcluster, "get", "nodes", "-o", "json").stdout)["items"]
    csinodes = {o["metadata"]["name"]: o for o in json.loads(host(vcluster, "get", "csinodes", "-o", "json").stdout)["items"]}
    assert set(csinodes) == {n["metadata"]["name"] for n in nodes}
    for n in nodes:
        owner = csinodes[n["metadata"]["name"]]["metadata"]["ownerReferences"][0]
        assert owner["kind"] == "Node" and owner["uid"] == n["metadata"]["uid"]


RUNTIME_CLASS = """
apiVersion: node.k8s.io/v1
kind: RuntimeClass
metadata: {name: sandboxed}
handler: runsc
overhead: {podFixed: {cpu: 250m, memory: 64Mi}}
scheduling:
  nodeSelector: {apis.vkube.io/sandbox: "yes"}
  tolerations: [{key: apis.vkube.io/sandbox, operator: Exists, effect: NoSchedule}]
"""


def _pod(name: str, cpu: str, **spec: Any) -> str:
    return json.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default"},
                       "spec": {"containers": [{"name": "c", "image": "busybox",
                                                "resources": {"requests": {"cpu": cpu}}}], **spec}})


def test_runtime_class_overhead_and_scheduling(vcluster: User) -> None:
    nodes = sorted(n["metadata"]["name"] for n in json.loads(host(vcluster, "get", "nodes", "-o", "json").stdout)["items"])
    target = nodes[-1]
    host(vcluster, "label", "node", target, "apis.vkube.io/sandbox=yes", "--overwrite")
    host(vcluster, "apply", "-f", "-", input=RUNTIME_CLASS)
    try:
        host(vcluster, "create", "-f", "-", input=_pod("rc-ok", "100m", runtimeClassName="sandboxed",
                                                      tolerations=[{"key": "other", "operator": "Exists"}]))
        pod = json.loads(host(vcluster, "get", "pod", "rc-ok", "-o", "json").stdout)
        assert pod["spec"]["overhead"] == {"cpu": "250m", "memory": "64Mi"}
        assert pod["spec"]["nodeSelector"] == {"apis.vkube.io/sandbox": "yes"}
        assert {"key": "apis.vkube.io/sandbox", "operator": "Exists", "effect": "NoSchedule"} in pod["spec"]["tolerations"]
        assert {"key": "other", "operator": "Exists"} in pod["spec"]["tolerations"]

        def placed() -> None:
            got = json.loads(host(vcluster, "get", "pod", "rc-ok", "-o", "json").stdout)
            assert got["spec"].get("nodeName") == target
        eventually(placed, timeout=60)

        # the overhead counts: a pod that fits the node alone does not fit with its overhead
        free = _free_millicpu(vcluster, target)
        host(vcluster, "create", "-f", "-", input=_pod("rc-big", f"{free - 100}m", runtimeClassName="sandboxed"))

        def refused() -> None:
            got = json.loads(host(vcluster, "get", "pod", "rc-big", "-o", "json").stdout)
            cond = next((c for c in got["status"].get("conditions") or () if c["type"] == "PodScheduled"), None)
            assert cond is not None and cond["status"] == "False", got["status"]
            assert "Insufficient cpu" in cond["message"], cond["message"]
        eventually(refused, timeout=60)

        proc = host(vcluster, "create", "-f", "-", check=False,
                    input=_pod("rc-conflict", "10m", runtimeClassName="sandboxed",
                               nodeSelector={"apis.vkube.io/sandbox": "no"}))
        assert ('pods "rc-conflict" is forbidden: conflict: runtimeClass.scheduling.nodeSelector'
                "[apis.vkube.io/sandbox] = yes; pod.spec.nodeSelector[apis.vkube.io/sandbox] = no") in proc.stderr
        proc = host(vcluster, "create", "-f", "-", check=False, input=_pod("rc-unknown", "10m", runtimeClassName="nope"))
        assert 'pods "rc-unknown" is forbidden: pod rejected: RuntimeClass "nope" not found' in proc.stderr
        proc = host(vcluster, "create", "-f", "-", check=False, input=_pod("rc-own", "10m", overhead={"cpu": "1"}))
        assert "pod rejected: Pod Overhead set without corresponding RuntimeClass defined Overhead" in proc.stderr
    finally:
        host(vcluster, "delete", "pod", "rc-ok", "rc-big", "--ignore-not-found", "--wait=false")
        host(vcluster, "delete", "runtimeclass", "sandboxed", "--ignore-not-found")
        host(vcluster, "label", "node", target, "apis.vkube.io/sandbox-")


def _free_millicpu(user: User, node: str) -> int:
    """Allocatable cpu of ``node`` minus what the pods placed there request (plus overhead)."""
    from vkube.host.predicates import pod_requests, resource_value

    n = json.loads(host(user, "get", "node", node, "-o", "json").stdout)
    alloc = resource_value("cpu", n["status"]["allocatable"]["cpu"])
    pods = json.loads(host(user, "get", "pods", "-A", "--field-selector", f"spec.nodeName={node}", "-o", "json").stdout)["items"]
    used = sum(pod_requests(p["spec"]).get("cpu", 0) for p in pods
               if p["status"].get("phase") not in ("Succeeded", "Failed"))
    return alloc - used


def test_runtime_class_validation(vcluster: User) -> None:
    proc = vcluster.kubectl("create", "-f", "-", check=False, input="""
apiVersion: node.k8s.io/v1
kind: RuntimeClass
metadata: {name: bad}
handler: Not_A_Label
scheduling: {tolerations: [{key: k, operator: Sometimes}]}
""")
    assert 'handler: Invalid value: "Not_A_Label"' in proc.stderr
    assert 'scheduling.tolerations[0].operator: Unsupported value: "Sometimes"' in proc.stderr


def test_cluster_ips_have_ipaddress_objects(vcluster: User) -> None:
    vcluster.kubectl("create", "service", "clusterip", "ipa", "--tcp=80:80")

    def addressed() -> str:
        ip = vcluster.kubectl("get", "svc", "ipa", "-o", "jsonpath={.spec.clusterIP}").stdout
        assert ip, "no ClusterIP yet"
        got = json.loads(vcluster.kubectl("get", "ipaddress", ip, "-o", "json", check=False).stdout or "{}")
        assert got.get("spec", {}).get("parentRef") == {"group": "", "resource": "services",
                                                        "namespace": "default", "name": "ipa"}, got
        assert got["metadata"]["labels"]["ipaddress.kubernetes.io/managed-by"] == "ipallocator.k8s.io"
        return ip
    ip = eventually(addressed, timeout=60)
    vcluster.kubectl("delete", "svc", "ipa")

    def released() -> None:
        proc = vcluster.kubectl("get", "ipaddress", ip, check=False)
        assert proc.returncode != 0 and "NotFound" in proc.stderr
    eventually(released, timeout=60)
    assert vcluster.kubectl("get", "ipaddress", "10.96.200.5", "-o", "name").stdout.strip()  # not the allocator's: kept
