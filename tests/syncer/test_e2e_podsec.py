"""What a pod or claim names that would reach the host (a data source in another namespace, a
kubelet-minted certificate, a cluster-scoped name someone else holds) is refused and said;
what ``hostAccess: strip`` removes is said. Driven with the real kubectl."""

from __future__ import annotations

import hashlib
import json

from vkube.client.resources import NAMESPACES, PODS, PRIORITYCLASSES, PVCS, PVS, STORAGECLASSES
from vkube.syncer import load_values
from vkube.syncer.podrewrite import host_pod_name
from vkube.syncer.translate import Translator

from .conftest import HOST_NS, VC, eventually, getter, gone, start_syncer, stop_syncer
from .test_e2e_syncersec import kubectl

TR = Translator(VC, HOST_NS)
CERT = {"podCertificate": {"signerName": "kubernetes.io/kube-apiserver-client-pod",
                           "keyType": "ED25519", "credentialBundlePath": "creds.pem"}}


def _docs(*docs: dict) -> str:
    return "\n---\n".join(json.dumps(d) for d in docs)


def _pod(name: str, volumes: list, **spec: object) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "demo"},
            "spec": {"containers": [{"name": "c", "image": "x"}], "volumes": volumes, **spec}}


def _claim(name: str, **spec: object) -> dict:
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": name, "namespace": "demo"},
            "spec": {"accessModes": ["ReadWriteOnce"],
                     "resources": {"requests": {"storage": "1Gi"}}, **spec}}


def _volume(name: str, **source: object) -> dict:
    return {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": name},
            "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"], **source}}


async def _events(kubeconfig, name: str, *where: str) -> str:
    rc, out = await kubectl(kubeconfig, "get", "events", *(where or ("-A",)), "--field-selector",
                            f"involvedObject.name={name}", "-o",
                            "jsonpath={range .items[*]}{.reason}: {.message}{'\\n'}{end}")
    assert rc == 0, out
    return out


async def test_refusals_name_the_field_and_taken_host_names_are_said(planes):
    vcp, hcp = planes
    kubeconfig = vcp.data_dir / "kubeconfig"
    values = load_values("sync: {persistentvolumes: {enabled: true}, storageclasses: "
                         "{enabled: true}, priorityclasses: {enabled: true}}")
    pair = await start_syncer(vcp, hcp, values)
    v, h = pair.virtual, pair.host
    try:
        await v.create(NAMESPACES, {"metadata": {"name": "demo"}})
        # cluster-scoped names the host already holds (its own, or another cluster's)
        await h.create(STORAGECLASSES, {"metadata": {"name": f"fast-x-{VC}"},
                                        "provisioner": "host.example/own"})
        await h.create(PRIORITYCLASSES, {"metadata": {"name": f"high-x-{VC}", "labels": {
            "vkube.io/managed-by": "other"}}, "value": 5})
        # the copy of "a-x-b" an earlier version made, under that version's host name
        earlier = "a-x-b-x-vc1-" + hashlib.sha256(b"a-x-b\0vc1").hexdigest()[:10]
        await h.create(STORAGECLASSES, {"metadata": {"name": earlier, "labels": {
            "vkube.io/managed-by": VC}, "annotations": {"vkube.io/object-name": "a-x-b"}},
            "provisioner": "tenant.example/ab"})
        docs = [
            {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
             "metadata": {"name": "fast"}, "provisioner": "tenant.example/fast"},
            {"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
             "metadata": {"name": "high"}, "value": 10},
            # a class whose host name is the opaque form: its PV's class must read back
            {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
             "metadata": {"name": "a-x-b"}, "provisioner": "tenant.example/ab"},
            _claim("data", storageClassName="a-x-b"),
            _claim("clone", dataSourceRef={"kind": "PersistentVolumeClaim", "name": "db",
                                           "namespace": "prod"}),
            _claim("picky", selector={"matchLabels": {"tier": "gold"}}),
            _claim("static", storageClassName=""),
            # parameters naming a Secret: the host's CSI sidecars would read that host Secret
            {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
             "metadata": {"name": "creds"}, "provisioner": "tenant.example/csi", "parameters": {
                 "csi.storage.k8s.io/provisioner-secret-name": "cloud-credentials",
                 "csi.storage.k8s.io/provisioner-secret-namespace": "kube-system",
                 "csi.storage.k8s.io/node-publish-secret-namespace": "${pvc.namespace}",
                 "type": "gp3"}},
            # above the owner's sync.priorityclasses.maxValue (default 0): capped, never preempts
            {"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
             "metadata": {"name": "top"}, "value": 1_000_000_000},
            _pod("ctb", [{"name": "ca", "projected": {"sources": [{"clusterTrustBundle": {
                "signerName": "example.com/signer", "path": "ca.pem"}}]}}]),
            _pod("cert", [{"name": "id", "projected": {"sources": [CERT]}}]),
            # volume sources the host's node would mount under hostAccess: reject (a pod's
            # inline nfs/rbd is refused alike): its network, another team's cloud volume
            _volume("meta", nfs={"server": "169.254.169.254", "path": "/"}),
            _volume("steal", csi={"driver": "ebs.csi.aws.com", "volumeHandle": "vol-of-team-a"}),
            _volume("ceph", rbd={"monitors": ["10.0.0.1:6789"], "image": "team-a-img"},
                    iscsi={"targetPortal": "10.0.0.2:3260", "iqn": "iqn.x:t", "lun": 0}),
            _pod("xns", [{"name": "s", "ephemeral": {"volumeClaimTemplate": {"spec": {
                "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}},
                "dataSourceRef": {"kind": "PersistentVolumeClaim", "name": "db",
                                  "namespace": "prod"}}}}}]),
        ]
        rc, out = await kubectl(kubeconfig, "apply", "-f", "-", stdin=_docs(*docs))
        assert rc == 0, out

        expect = {
            "cert": "SyncRejected: host access is not allowed: spec.volumes[0].projected."
                    "sources[0].podCertificate: a podCertificate projection has the host's "
                    "kubelet mint a client certificate for the host's API server",
            "ctb": "SyncRejected: host access is not allowed: spec.volumes[0].projected."
                   "sources[0].clusterTrustBundle: a clusterTrustBundle projection has the host's "
                   "kubelet read the host's ClusterTrustBundles, not this cluster's",
            "xns": "SyncRejected: spec.volumes[0].ephemeral.volumeClaimTemplate.spec."
                   "dataSourceRef.namespace: data source prod/db is in another namespace"}
        for name, message in expect.items():
            async def refused(name: str = name, message: str = message) -> None:
                rc, out = await kubectl(kubeconfig, "get", "pod", name, "-n", "demo", "-o",
                                        "jsonpath={.status.reason}: {.status.message}")
                assert rc == 0 and out.startswith(message), out
            await eventually(refused, attempts=200, delay=0.3)

        said = {
            ("clone", "-n", "demo"): "SyncRejected: spec.dataSourceRef.namespace: data source "
                                     "prod/db is in another namespace",
            ("fast",): f"SyncError: host object fast-x-{VC} exists and is not this object's "
                       "copy (not made by vkube); not synced",
            ("high",): f"SyncError: host object high-x-{VC} exists and is not this object's "
                       "copy (made by virtual cluster 'other'); not synced",
            ("creds",): "SyncRejected: parameters[csi.storage.k8s.io/node-publish-secret-namespace], "
                        "parameters[csi.storage.k8s.io/provisioner-secret-name], "
                        "parameters[csi.storage.k8s.io/provisioner-secret-namespace]: a "
                        "StorageClass whose parameters name a Secret is not synced to the host",
            ("top",): "PriorityCapped: value 1000000000 is above sync.priorityclasses.maxValue "
                      "(0): the host copy has 0",
            **{(pv,): f"SyncError: host access is not allowed: {fields}: the host's node would "
                      "mount it" for pv, fields in (("meta", "spec.nfs"), ("steal", "spec.csi"),
                                                    ("ceph", "spec.iscsi, spec.rbd"))}}
        for (name, *where), message in said.items():
            async def event(name: str = name, where: list = where, message: str = message) -> None:
                assert message in await _events(kubeconfig, name, *where)
            await eventually(event, attempts=200, delay=0.3)

        hsel = await eventually(getter(h, PVCS, TR.host_name("picky", "demo")), attempts=600)
        assert hsel["spec"]["selector"] == {"matchLabels": {"tier": "gold",
                                                            "vkube.io/managed-by": VC}}
        hstatic = await eventually(getter(h, PVCS, TR.host_name("static", "demo")))
        assert hstatic["spec"]["selector"] == {"matchLabels": {"vkube.io/managed-by": VC}}
        htop = await eventually(getter(h, PRIORITYCLASSES, TR.host_cluster_name("top")))
        assert (htop["value"], htop["preemptionPolicy"]) == (0, "Never")
        # the host's copies are left as they were; nothing refused reached the host
        assert not [c for c in (await h.list(STORAGECLASSES))["items"]
                    if (c.get("parameters") or {}).get("type") == "gp3"]
        assert (await h.get(STORAGECLASSES, f"fast-x-{VC}"))["provisioner"] == "host.example/own"
        assert (await h.get(PRIORITYCLASSES, f"high-x-{VC}"))["value"] == 5
        assert not {TR.host_cluster_name(n) for n in ("meta", "steal", "ceph")} & {
            p["metadata"]["name"] for p in (await h.list(PVS))["items"]}
        hpvcs = {c["metadata"]["name"] for c in (await h.list(PVCS, namespace=HOST_NS))["items"]}
        assert TR.host_name("clone", "demo") not in hpvcs
        hpods = {p["metadata"]["name"] for p in (await h.list(PODS, namespace=HOST_NS))["items"]}
        assert not hpods & {host_pod_name(TR, n, "demo") for n in expect}, hpods

        # the host provisions a volume of the opaquely named class: it comes up as "a-x-b"
        hclass = TR.host_cluster_name("a-x-b")
        assert "-x-" not in hclass
        await eventually(getter(h, STORAGECLASSES, hclass), attempts=600)
        await eventually(gone(h, STORAGECLASSES, earlier), attempts=600)
        hdata = await eventually(getter(h, PVCS, TR.host_name("data", "demo")), attempts=600)
        assert hdata["spec"]["storageClassName"] == hclass
        await h.create(PVS, {"metadata": {"name": "pvc-777"}, "spec": {
            "capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
            "storageClassName": hclass, "csi": {"driver": "x", "volumeHandle": "h"},
            "claimRef": {"namespace": HOST_NS, "name": hdata["metadata"]["name"]}}})
        hdata["spec"]["volumeName"] = "pvc-777"
        await h.update(PVCS, hdata)
        async def volume_up() -> None:
            rc, out = await kubectl(kubeconfig, "get", "pv", "pvc-777", "-o",
                                    "jsonpath={.spec.storageClassName}")
            assert rc == 0 and out == "a-x-b", out
        await eventually(volume_up, attempts=200, delay=0.3)
    finally:
        await stop_syncer(pair)


async def test_strip_says_what_it_removed(planes):
    vcp, hcp = planes
    kubeconfig = vcp.data_dir / "kubeconfig"
    values = load_values("sync:\n  pods:\n    hostAccess: strip\n")
    pair = await start_syncer(vcp, hcp, values)
    v, h = pair.virtual, pair.host
    try:
        await v.create(NAMESPACES, {"metadata": {"name": "demo"}})
        ctb = {"clusterTrustBundle": {"name": "example.com:signer:abc", "path": "ca.pem"}}
        pod = _pod("wide", [{"name": "id", "projected": {"sources": [CERT, ctb]}},
                            {"name": "etc", "hostPath": {"path": "/etc"}}], hostNetwork=True)
        pod["spec"]["containers"][0]["securityContext"] = {"privileged": True}
        rc, out = await kubectl(kubeconfig, "apply", "-f", "-", stdin=_docs(pod))
        assert rc == 0, out
        hname = host_pod_name(TR, "wide", "demo")
        hpod = await eventually(getter(h, PODS, hname), attempts=600)
        spec = hpod["spec"]
        assert "hostNetwork" not in spec
        assert not (spec["containers"][0].get("securityContext") or {}).get("privileged")
        assert [sorted(vol) for vol in spec["volumes"] if vol["name"] in ("id", "etc")] == \
            [["emptyDir", "name"], ["emptyDir", "name"]]

        message = ("HostAccessStripped: sync.pods.hostAccess: strip removed from the host pod: "
                   "spec.containers[0].securityContext.privileged, spec.hostNetwork, "
                   "spec.volumes[1].hostPath, spec.volumes[0].projected.sources[0]."
                   "podCertificate, spec.volumes[0].projected.sources[1].clusterTrustBundle — "
                   "the pod runs without them; to keep them set "
                   f"sync.pods.hostAccess: allow in the values (vkube create {VC} --upgrade -f "
                   "values.yaml)")

        async def said() -> None:
            assert message in await _events(kubeconfig, "wide", "-n", "demo")
        await eventually(said, attempts=200, delay=0.3)

        # what strip removes stays removed when the pod changes later
        for args in (("annotate", "pod", "wide", "-n", "demo",
                      "vkube.io/port-forward-80=127.0.0.1:6443"),
                     ("label", "pod", "wide", "-n", "demo", "stage=two")):
            rc, out = await kubectl(kubeconfig, *args)
            assert rc == 0, out

        async def relabelled() -> dict:
            got = await h.get(PODS, hname, namespace=HOST_NS)
            assert got["metadata"]["labels"].get("vkube.io/l-stage") == "two"
            return got
        got = await eventually(relabelled, attempts=600)
        assert "vkube.io/port-forward-80" not in got["metadata"]["annotations"]
    finally:
        await stop_syncer(pair)
