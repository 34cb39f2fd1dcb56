"""Tenant A, as an attacker, with kubectl on its own isolated virtual cluster, against tenant B
on the same embedded host: nothing A writes makes the syncer act outside A's host namespace."""

from __future__ import annotations

import json

import pytest

from tests.conftest import kubectl

from .conftest import cleanup, eventually, make_user

B_APPS = """
apiVersion: v1
kind: Pod
metadata: {name: web, labels: {app: web}}
spec:
  containers: [{name: c, image: nginx}]
---
apiVersion: v1
kind: Secret
metadata: {name: db}
stringData: {password: b-secret}
"""

ATTACKS = """
apiVersion: v1
kind: Namespace
metadata: {name: b-x-c}
---
apiVersion: v1
kind: Namespace
metadata: {name: c}
---
apiVersion: v1
kind: Pod
metadata: {name: a, namespace: b-x-c}
spec: {containers: [{name: c, image: nginx}]}
---
apiVersion: v1
kind: Pod
metadata: {name: a-x-b, namespace: c}
spec: {containers: [{name: c, image: nginx}]}
---
# the host's service account name, made in A's own cluster (the ServiceAccount admission
# plugin refuses a pod naming an account that does not exist, as Kubernetes does)
apiVersion: v1
kind: ServiceAccount
metadata: {name: vc-workload-b}
---
apiVersion: v1
kind: Pod
metadata:
  name: claimer
  labels: {vkube.io/managed-by: b, vkube.io/namespace: default, app: web}
  ownerReferences: [{apiVersion: v1, kind: Namespace, name: default, uid: %(a_ns_uid)s}]
spec:
  serviceAccountName: vc-workload-b
  automountServiceAccountToken: false
  containers:
  - name: c
    image: nginx
    env: [{name: P, valueFrom: {secretKeyRef: {name: db, key: password}}}]
---
apiVersion: v1
kind: Service
metadata: {name: steal}
spec: {selector: {app: web}, ports: [{port: 80}]}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: open-b}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress: [{from: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: vkube-b}}}]}]
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: grab}
spec:
  accessModes: [ReadWriteOnce]
  volumeName: b-data
  resources: {requests: {storage: 1Gi}}
---
apiVersion: v1
kind: Service
metadata: {name: byip}
spec: {ports: [{port: 80}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: byip-1, labels: {kubernetes.io/service-name: byip}}
addressType: IPv4
endpoints: [{addresses: ["%(b_ip)s"]}, {addresses: ["8.8.8.8"]}]
ports: [{port: 80, protocol: TCP}]
"""


def _items(kc, *args) -> list[dict]:
    return json.loads(kubectl(kc, "get", *args, "-o", "json").stdout)["items"]


def _fingerprint(host_kc, ns: str) -> dict[str, str]:
    kinds = "pods,services,endpoints,configmaps,secrets,networkpolicies,persistentvolumeclaims"
    return {f'{o["kind"]}/{o["metadata"]["name"]}': o["metadata"]["resourceVersion"]
            for o in _items(host_kc, kinds, "-n", ns)
            if o["kind"] != "Pod"}  # pod status moves on its own; pods compared by uid below


@pytest.mark.timeout(600)
def test_tenant_a_cannot_make_the_syncer_act_outside_its_namespace(shared_host, tmp_path):
    u = make_user(tmp_path / "u")
    try:
        u.vkube("create", "b", "--isolate", "--host-kubeconfig", str(shared_host),
                "--connect=false")
        u.vkube("create", "a", "--isolate", "--host-kubeconfig", str(shared_host),
                "--connect=false")
        ka, kb = tmp_path / "a.yaml", tmp_path / "b.yaml"
        ka.write_text(u.vkube("connect", "a", "--print").stdout)
        kb.write_text(u.vkube("connect", "b", "--print").stdout)
        kubectl(kb, "apply", "-f", "-", input=B_APPS)
        kubectl(shared_host, "apply", "-f", "-", input=(
            "{apiVersion: v1, kind: PersistentVolume, metadata: {name: b-data}, spec: {"
            "capacity: {storage: 1Gi}, accessModes: [ReadWriteOnce], hostPath: {path: /b}}}"))

        def b_running() -> dict:
            pod = json.loads(kubectl(shared_host, "get", "pod", "-n", "vkube-b",
                                     "web-x-default-x-b", "-o", "json").stdout)
            assert pod["status"].get("podIP"), pod["status"]
            return pod
        b_pod = eventually(b_running, timeout=120)
        b_ip, b_uid = b_pod["status"]["podIP"], b_pod["metadata"]["uid"]
        before = _fingerprint(shared_host, "vkube-b")

        a_ns_uid = kubectl(ka, "get", "namespace", "default", "-o",
                           "jsonpath={.metadata.uid}").stdout
        kubectl(ka, "apply", "-f", "-", input=ATTACKS % {"b_ip": b_ip, "a_ns_uid": a_ns_uid})

        def a_synced() -> list[dict]:
            pods = _items(shared_host, "pods", "-n", "vkube-a")
            assert len(pods) == 3, [p["metadata"]["name"] for p in pods]
            return pods
        pods = {p["metadata"]["annotations"]["vkube.io/object-name"]: p
                for p in eventually(a_synced, timeout=120)}
        # names built to collide after translation: two distinct host pods
        assert set(pods) == {"a", "a-x-b", "claimer"}
        assert pods["a"]["metadata"]["name"] != pods["a-x-b"]["metadata"]["name"]
        # a label claiming another owner: the host pod is A's, not B's; no owner reference
        claimer = pods["claimer"]
        assert claimer["metadata"]["labels"]["vkube.io/managed-by"] == "a"
        assert not claimer["metadata"].get("ownerReferences")
        # another tenant's service account and secret: A's own, translated
        assert claimer["spec"]["serviceAccountName"] == "vc-workload-a"
        env = claimer["spec"]["containers"][0]["env"]
        ref = next(e for e in env if e["name"] == "P")["valueFrom"]["secretKeyRef"]
        assert ref["name"] == "db-x-default-x-a"
        assert not _items(shared_host, "secrets", "-n", "vkube-a",
                          "--field-selector", "metadata.name=db-x-default-x-a")  # A has none

        def a_objects() -> None:
            svc = json.loads(kubectl(shared_host, "get", "service", "-n", "vkube-a",
                                     "steal-x-default-x-a", "-o", "json").stdout)
            assert svc["spec"]["selector"].get("vkube.io/managed-by") == "a" or \
                any(v == "default" for k, v in svc["spec"]["selector"].items()
                    if k.startswith("vkube.io/"))
            assert svc["spec"]["selector"] != {"app": "web"}
            np = json.loads(kubectl(shared_host, "get", "networkpolicy", "-n", "vkube-a",
                                    "open-b-x-default-x-a", "-o", "json").stdout)
            assert "namespaceSelector" not in json.dumps(np["spec"])
            pvc = json.loads(kubectl(shared_host, "get", "pvc", "-n", "vkube-a",
                                     "grab-x-default-x-a", "-o", "json").stdout)
            assert pvc["spec"].get("volumeName") != "b-data"
            slices = _items(shared_host, "endpointslices", "-n", "vkube-a")
            mine = [s for s in slices if s["metadata"]["name"] == "byip-1-x-default-x-a"]
            assert mine, [s["metadata"]["name"] for s in slices]
            addrs = [a for ep in mine[0]["endpoints"] for a in ep["addresses"]]
            assert addrs == ["8.8.8.8"]
        eventually(a_objects, timeout=90)
        events = _items(ka, "events")
        assert any(e["reason"] == "AddressRefused" and b_ip in e["message"] for e in events)
        # every object in A's host namespace is A's; B's namespace and B's PV are untouched
        for o in _items(shared_host, "pods,services,networkpolicies,persistentvolumeclaims,"
                                     "endpointslices", "-n", "vkube-a"):
            labels = o["metadata"].get("labels") or {}
            if o["kind"] == "EndpointSlice" and labels.get(
                    "endpointslice.kubernetes.io/managed-by") == "endpointslice-controller.k8s.io":
                continue  # the host's own controller's slices for A's selector services
            assert labels.get("vkube.io/managed-by") == "a", o["metadata"]["name"]
        assert _fingerprint(shared_host, "vkube-b") == before
        b_now = json.loads(kubectl(shared_host, "get", "pod", "-n", "vkube-b",
                                   "web-x-default-x-b", "-o", "json").stdout)
        assert b_now["metadata"]["uid"] == b_uid and "deletionTimestamp" not in b_now["metadata"]
        pv = json.loads(kubectl(shared_host, "get", "pv", "b-data", "-o", "json").stdout)
        assert not pv["spec"].get("claimRef")
        # A's credential reaches A's API only: B's pod is not there to see
        assert kubectl(ka, "get", "pod", "web", check=False).returncode != 0
    finally:
        kubectl(shared_host, "delete", "pv", "b-data", "--ignore-not-found", check=False)
        cleanup(u)
