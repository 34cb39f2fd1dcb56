"""StorageClasses and PersistentVolumes (sync.storageclasses / sync.persistentvolumes)."""

from __future__ import annotations

from vkube.api import errors
from vkube.client.resources import EVENTS, NAMESPACES, PVCS, PVS, STORAGECLASSES
from vkube.syncer import load_values
from vkube.syncer.translate import Translator

from .conftest import HOST_NS, VC, eventually, getter, start_syncer, stop_syncer


async def test_storage_classes_and_volumes(planes):
    vcp, hcp = planes
    values = load_values("sync: {persistentvolumes: {enabled: true, allowedSources: [nfs]}, "
                         "storageclasses: {enabled: true}}")
    pair = await start_syncer(vcp, hcp, values)
    v, h = pair.virtual, pair.host
    try:
        await v.create(STORAGECLASSES, {"metadata": {"name": "fast", "annotations": {
            "storageclass.kubernetes.io/is-default-class": "true"}},
            "provisioner": "example.com/fast", "volumeBindingMode": "WaitForFirstConsumer"})
        hsc = await eventually(getter(h, STORAGECLASSES, f"fast-x-{VC}"))
        assert hsc["provisioner"] == "example.com/fast"
        assert "storageclass.kubernetes.io/is-default-class" not in \
            (hsc["metadata"].get("annotations") or {}), "never the host's default class"

        await v.create(NAMESPACES, {"metadata": {"name": "demo"}})
        await v.create(PVCS, {"metadata": {"name": "data", "namespace": "demo"}, "spec": {
            "storageClassName": "fast", "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": "1Gi"}}}}, namespace="demo")
        hpvc = await eventually(getter(h, PVCS, f"data-x-demo-x-{VC}", HOST_NS))
        assert hpvc["spec"]["storageClassName"] == f"fast-x-{VC}"

        # the host provisions and binds a volume: it shows up in the virtual cluster
        await h.create(PVS, {"metadata": {"name": "pvc-123"}, "spec": {
            "capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
            "storageClassName": f"fast-x-{VC}", "csi": {"driver": "x", "volumeHandle": "h"},
            "claimRef": {"namespace": HOST_NS, "name": f"data-x-demo-x-{VC}"}}})
        hpvc["spec"]["volumeName"] = "pvc-123"
        await h.update(PVCS, hpvc)
        # static provisioning (class ""): bound only to this cluster's PVs on the host
        await v.create(PVCS, {"metadata": {"name": "static", "namespace": "demo"}, "spec": {
            "storageClassName": "", "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": "1Gi"}}}}, namespace="demo")
        hstatic = await eventually(getter(h, PVCS, f"static-x-demo-x-{VC}", HOST_NS))
        assert hstatic["spec"]["selector"] == {"matchLabels": {"vkube.io/managed-by": VC}}
        # a host claim made before that (no selector; immutable) is kept and still synced
        claim = {"metadata": {"name": "old", "namespace": "demo"}, "spec": {
            "storageClassName": "", "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": "1Gi"}}}}
        await h.create(PVCS, {"metadata": Translator(VC, HOST_NS).host_metadata(claim),
                              "spec": claim["spec"]}, namespace=HOST_NS)
        await v.create(PVCS, {**claim, "metadata": {**claim["metadata"], "labels": {"a": "b"}}},
                       namespace="demo")

        async def relabelled() -> dict:
            got = await h.get(PVCS, f"old-x-demo-x-{VC}", namespace=HOST_NS)
            assert got["metadata"]["labels"].get("a") == "b"
            return got
        assert "selector" not in (await eventually(relabelled))["spec"]
        vpv = await eventually(getter(v, PVS, "pvc-123"))
        assert vpv["spec"]["claimRef"]["namespace"] == "demo"
        assert vpv["spec"]["claimRef"]["name"] == "data"
        assert vpv["spec"]["storageClassName"] == "fast"

        async def volume_name_up():
            got = await v.get(PVCS, "data", namespace="demo")
            assert got["spec"].get("volumeName") == "pvc-123"
        await eventually(volume_name_up)

        # a static PV made in the virtual cluster goes down under a unique name
        await v.create(PVS, {"metadata": {"name": "static"}, "spec": {
            "capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
            "nfs": {"server": "nfs.example", "path": "/x"}}})
        await eventually(getter(h, PVS, f"static-x-{VC}"))
        await v.create(PVS, {"metadata": {"name": "hp"}, "spec": {
            "capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
            "hostPath": {"path": "/etc"}}})
        # a PV's secret references name their own namespace: any host Secret
        await v.create(PVS, {"metadata": {"name": "sec"}, "spec": {
            "capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
            "csi": {"driver": "d.example.com", "volumeHandle": "v", "nodePublishSecretRef": {
                "name": "vkube-syncer-token", "namespace": "kube-system"}}}})
        await v.delete(STORAGECLASSES, "fast")

        async def sc_gone():
            try:
                await h.get(STORAGECLASSES, f"fast-x-{VC}")
            except errors.NotFound:
                return
            raise AssertionError("still there")
        await eventually(sc_gone)
        # only the listed source: csi without a Secret, rbd stay off the host
        await v.create(PVS, {"metadata": {"name": "ebs"}, "spec": {
            "capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
            "csi": {"driver": "ebs.csi.aws.com", "volumeHandle": "vol-of-team-a"}}})
        await v.create(PVS, {"metadata": {"name": "ceph"}, "spec": {
            "capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
            "rbd": {"monitors": ["10.0.0.1:6789"], "image": "team-a-img"}}})

        async def refused() -> None:
            said = {(e["involvedObject"]["name"], e["message"].split(":", 2)[1].strip())
                    for e in (await v.list(EVENTS, namespace="default"))["items"]
                    if e["reason"] == "SyncError"}
            assert {("ebs", "spec.csi"), ("ceph", "spec.rbd"), ("hp", "spec.hostPath")} <= said, said
        await eventually(refused)
        for pv in ("hp", "sec", "ebs", "ceph"):
            try:
                await h.get(PVS, f"{pv}-x-{VC}")
                raise AssertionError(f"PV {pv} reached the host")
            except errors.NotFound:
                pass
    finally:
        await stop_syncer(pair)
