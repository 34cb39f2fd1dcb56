"""A PersistentVolume a tenant makes is bound on the host only to that tenant's claims.

With ``sync.storageclasses`` off both tenants name the host's class names, so without care the
host copy of team A's unbound PV (class ``manual``) would be Available to team B's claim of
class ``manual``: B would read A's data. Two virtual clusters on one embedded host, driven with
the real kubectl; the host's volume controller and scheduler bind as they do under `vkube host`.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass

from vkube.client import Client
from vkube.cluster.virtual import syncer_annotations
from vkube.client.resources import EVENTS, PVCS, PVS
from vkube.pki.cluster import SYNCER
from vkube.syncer import Syncer, load_values

from .conftest import eventually
from .test_acceptance import KUBECTL, VCluster, World, get, world  # noqa: F401 - the fixture

# storageclasses: off (the default); the owner lets tenants' nfs volumes reach the host
VALUES = "sync: {persistentvolumes: {enabled: true, allowedSources: [nfs]}}"


def pv(name: str, size: str = "1Gi", **spec: object) -> dict:
    return {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": name},
            "spec": {"capacity": {"storage": size}, "accessModes": ["ReadWriteOnce"],
                     "storageClassName": "manual",
                     "nfs": {"server": "nfs.example", "path": f"/{name}"}, **spec}}


def pvc(name: str, **spec: object) -> dict:
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"storageClassName": "manual", "accessModes": ["ReadWriteOnce"],
                     "resources": {"requests": {"storage": "1Gi"}}, **spec}}


@dataclass
class VolumeVCluster(VCluster):
    async def start_syncer(self) -> None:
        v = Client(self.cp.url, ssl=self.cp.client_ssl(*SYNCER), user_agent="syncer")
        h = Client(self.host_cp.url, ssl=self.host_cp.client_ssl(), user_agent="syncer")
        self._syncer_clients = [v, h]
        self.syncer = Syncer(name=self.name, virtual=v, host=h, virtual_pki=self.cp.pki,
                             host_namespace=self.host_namespace, values=load_values(VALUES))
        self._syncer_task = asyncio.create_task(self.syncer.run())
        await asyncio.wait_for(self.syncer.wait_ready(), 30)

    async def apply(self, *objs: dict) -> None:
        path = self.cp.data_dir / "apply.json"  # type: ignore[operator]
        path.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": list(objs)}))
        await self.kubectl("apply", "-f", str(path))


async def _vcluster(world: World, name: str) -> VolumeVCluster:  # noqa: F811
    from vkube.apiserver.server import ControlPlane

    vc = VolumeVCluster(name, ControlPlane(data_dir=world.tmp / name, name=name,
                                           allocate_service_ips=False,
                                           extra_admission=[syncer_annotations()]),
                        world.host_cp)
    await vc.start()
    world.clusters.append(vc)
    return vc


async def test_a_tenants_volume_is_never_bound_to_another_tenants_claim(world: World) -> None:  # noqa: F811
    a, b = await _vcluster(world, "team-a"), await _vcluster(world, "team-b")
    h = world.host
    # B's claim waits first: A's volume must not become its match when it arrives
    await b.apply(pvc("grab"))
    await eventually(lambda: get(h, PVCS, "grab-x-default-x-team-b", "vkube-team-b"),
                     attempts=600, delay=0.1)
    await a.apply(pv("a-data"), pv("a-named"), pv("a-spare", "5Gi"))

    async def kept_for_nobody() -> None:
        for name in ("a-data", "a-named", "a-spare"):
            hpv = await get(h, PVS, f"{name}-x-team-a")
            ref = hpv["spec"]["claimRef"]
            assert (ref["namespace"], ref["name"]) == ("vkube-team-a",
                                                       "vkube-unclaimed-x-team-a"), ref
            assert hpv["status"].get("phase") == "Available", hpv["status"]
    await eventually(kept_for_nobody, attempts=600, delay=0.1)

    # A's own claims: one matched by class and size, one naming its volume
    await a.apply(pvc("mine"), pvc("named", volumeName="a-named"))

    async def a_bound() -> dict[str, dict]:
        out = {}
        for claim, volume in (("mine", "a-data"), ("named", "a-named")):
            got = await a.virtual.get(PVCS, claim, namespace="default")
            assert got["status"].get("phase") == "Bound", (claim, got["status"])
            assert got["spec"].get("volumeName") == volume, (claim, got["spec"])
            out[claim] = got
        return out
    claims = await eventually(a_bound, attempts=1200, delay=0.1)
    # the virtual volume names its claim, as upstream's binder writes it
    vpv = json.loads(await a.kubectl("get", "pv", "a-data", "-o", "json"))
    assert vpv["spec"]["claimRef"]["name"] == "mine"
    assert vpv["spec"]["claimRef"]["uid"] == claims["mine"]["metadata"]["uid"]
    assert "default/mine" in await a.kubectl("get", "pv", "a-data")

    # B's claim never took any of A's volumes, the bigger spare one included
    hgrab = await h.get(PVCS, "grab-x-default-x-team-b", namespace="vkube-team-b")
    assert not hgrab["spec"].get("volumeName") and hgrab["status"].get("phase") != "Bound"
    spare = await h.get(PVS, "a-spare-x-team-a")
    assert spare["spec"]["claimRef"]["name"] == "vkube-unclaimed-x-team-a"
    assert "Pending" in await b.kubectl("get", "pvc", "grab")

    # B's own volume binds B's waiting claim
    await b.apply(pv("b-data"))

    async def b_bound() -> None:
        got = await b.virtual.get(PVCS, "grab", namespace="default")
        assert got["spec"].get("volumeName") == "b-data" and \
            got["status"].get("phase") == "Bound", got
    await eventually(b_bound, attempts=1200, delay=0.1)
    assert (await h.get(PVS, "a-spare-x-team-a"))["status"]["phase"] == "Available"


async def _refused(vc: VCluster, *args: str) -> str:
    """kubectl's stderr for a command the API server refuses."""
    proc = await asyncio.create_subprocess_exec(
        KUBECTL, "--kubeconfig", vc.kubeconfig, *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode != 0, out.decode()
    return err.decode()


async def test_a_tenant_cannot_point_its_claim_at_a_host_volume_by_annotation(world: World) -> None:  # noqa: F811
    """``vkube.io/host-pv`` marks a virtual PV mirroring a volume the host provisioned for one
    of the tenant's claims. Written by the tenant on its own PV, it must not redirect a claim
    naming that PV to the host owner's free volume or to another tenant's volume."""
    h = world.host
    await h.create(PVS, {"apiVersion": "v1", "kind": "PersistentVolume",
                         "metadata": {"name": "owner-data"},
                         "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
                                  "storageClassName": "manual",
                                  "persistentVolumeReclaimPolicy": "Retain",
                                  "hostPath": {"path": "/srv/owner-secrets"}}})
    a, b = await _vcluster(world, "team-a"), await _vcluster(world, "team-b")
    await a.apply(pv("a-data"))
    await eventually(lambda: get(h, PVS, "a-data-x-team-a"), attempts=600, delay=0.1)

    def decoy(name: str, host_pv: str) -> dict:
        body = pv(name)
        body["metadata"].update(annotations={"vkube.io/host-pv": host_pv},
                                finalizers=["example.com/keep"])  # outlives the syncer's delete
        return body
    decoys = [decoy("decoy", "owner-data"), decoy("owner-data", "owner-data"),
              decoy("a-data-x-team-a", "a-data-x-team-a")]
    # the annotation is the syncer's: the tenant's write is refused at once, naming it
    path = world.tmp / "decoy.json"
    path.write_text(json.dumps(decoys[0]))
    out = await _refused(b, "create", "-f", str(path))
    assert 'persistentvolumes "decoy" is forbidden: metadata.annotations[vkube.io/host-pv]: ' \
        "set only by the virtual cluster's syncer" in out, out
    await b.apply(pv("plain"))
    out = await _refused(b, "annotate", "pv", "plain", "vkube.io/host-pv=owner-data")
    assert 'persistentvolumes "plain" is forbidden: metadata.annotations[vkube.io/host-pv]' \
        in out, out
    # written all the same (before the check, by the syncer's identity): judged again below
    for body in decoys:
        await b.syncer.ctx.virtual.create(PVS, body)
    await b.apply(pvc("grab", volumeName="decoy"), pvc("grab-named", volumeName="owner-data"),
                  pvc("grab-a", volumeName="a-data-x-team-a"))

    async def refused() -> None:
        events = (await b.virtual.list(EVENTS, namespace="default"))["items"]
        why = {e["involvedObject"]["name"]: e["message"] for e in events
               if e["reason"] == "SyncError" and e["involvedObject"]["kind"] == "PersistentVolume"}
        for name in ("decoy", "owner-data", "a-data-x-team-a"):
            assert "metadata.annotations[vkube.io/host-pv]" in why.get(name, ""), (name, why)
        for claim, vol in (("grab", "decoy"), ("grab-named", "owner-data"),
                           ("grab-a", "a-data-x-team-a")):
            hpvc = await get(h, PVCS, f"{claim}-x-default-x-team-b", "vkube-team-b")
            # the claim names B's own copy of the PV (NAME-x-team-b), never made: it waits
            assert hpvc["spec"].get("volumeName") not in (None, vol, "owner-data"), hpvc["spec"]
    await eventually(refused, attempts=1200, delay=0.1)
    assert "claimRef" not in (await h.get(PVS, "owner-data"))["spec"]
    ref = (await h.get(PVS, "a-data-x-team-a"))["spec"]["claimRef"]
    assert ref["namespace"] == "vkube-team-a", ref
    for claim in ("grab", "grab-named", "grab-a"):
        got = await b.virtual.get(PVCS, claim, namespace="default")
        assert got["status"].get("phase") != "Bound", got["status"]
    assert "Pending" in await b.kubectl("get", "pvc", "grab")
    # the decoys stay (their finalizer is the tenant's) and are never copied down
    assert not [p for p in (await h.list(PVS))["items"]
                if p["metadata"]["name"].startswith(("decoy", "owner-data-x", "a-data-x-team-a-x"))]

    # the host's binder, as upstream's, binds a claim naming a free volume only if it fits
    await h.create(PVCS, {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                          "metadata": {"name": "named", "namespace": "default"},
                          "spec": {"storageClassName": "fast", "volumeName": "owner-data",
                                   "accessModes": ["ReadWriteOnce"],
                                   "resources": {"requests": {"storage": "1Gi"}}}})

    async def mismatch() -> None:
        events = (await h.list(EVENTS, namespace="default"))["items"]
        assert any(e["reason"] == "VolumeMismatch" and "storageClassName does not match"
                   in e["message"] and '"owner-data"' in e["message"] for e in events), events
        claim = await h.get(PVCS, "named", namespace="default")
        assert claim["status"].get("phase") == "Pending", claim["status"]
    await eventually(mismatch, attempts=600, delay=0.1)
    assert "claimRef" not in (await h.get(PVS, "owner-data"))["spec"]
