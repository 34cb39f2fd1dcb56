"""StorageClasses and PersistentVolumes (each only when enabled in values).

StorageClasses go down as ``NAME-x-VC`` (never as the host's default class; one whose parameters
name a Secret only under ``hostAccess: allow``). PersistentVolumes
go both ways: ones the tenant creates go down as ``NAME-x-VC`` with their claimRef translated
(hostPath/local volumes follow the host-access policy); ones the host provisions for a synced
claim come up under their host name, bound to the virtual claim.
"""

from __future__ import annotations

import copy

from vkube.api import errors
from vkube.api.meta import Obj
from vkube.client.resources import PVCS, PVS, STORAGECLASSES
from vkube.syncer.admission import REASON_REJECTED
from vkube.syncer.base import (ClusterScopedDownSyncer, KindSyncer, delete_ignore_missing, deleting,
                               update_status)
from vkube.syncer.pvreserve import claim_ref, pick_claim, unclaimed_name
from vkube.syncer.translate import ANN_NAME, ANN_UID
from vkube.syncer.values import PV_NODE_FILE_SOURCES

_SC_FIELDS = ("provisioner", "parameters", "reclaimPolicy", "volumeBindingMode",
              "allowVolumeExpansion", "mountOptions", "allowedTopologies")
_DEFAULT_CLASS = ("storageclass.kubernetes.io/is-default-class",
                  "storageclass.beta.kubernetes.io/is-default-class")
ANN_HOST_PV = "vkube.io/host-pv"
#: a PersistentVolume's spec fields that are no volume source (any other key is one)
PV_FIELDS = frozenset({"accessModes", "capacity", "claimRef", "mountOptions", "nodeAffinity",
                       "persistentVolumeReclaimPolicy", "storageClassName", "volumeMode",
                       "volumeAttributesClassName"})


def pv_secret_fields(spec: Obj) -> list[str]:
    """``spec.SOURCE.FIELD`` of every Secret a PersistentVolume source names (``csi``'s
    ``*SecretRef``, ``secretRef`` of cephfs/rbd/iscsi/flexVolume/scaleIO/storageos/cinder,
    ``azureFile.secretName``)."""
    out = []
    for source, body in spec.items():
        if not isinstance(body, dict):
            continue
        for key, value in body.items():
            if value and (key.lower().endswith("secretref") or key in ("secretName",
                                                                         "secretNamespace")):
                out.append(f"spec.{source}.{key}")
    return sorted(out)


def class_secret_parameters(params: Obj | None) -> list[str]:
    """``parameters[KEY]`` of every StorageClass (or VolumeSnapshotClass) parameter naming a
    Secret: the CSI sidecars' ``csi.storage.k8s.io/*-secret-{name,namespace}`` (templates
    such as ``${pvc.namespace}`` included), their old ``csi*Secret*`` spelling and the in-tree
    provisioners' ``secretName``/``adminSecretNamespace``/``secretRef``… — any key whose last
    segment says ``secret``. The host's provisioner reads such a Secret with its own rights."""
    return [f"parameters[{k}]" for k in sorted(params or {})
            if "secret" in str(k).rsplit("/", 1)[-1].lower()]


class StorageClassSyncer(ClusterScopedDownSyncer):
    kind = "storageclasses"
    res = STORAGECLASSES

    async def reconcile(self, key: str) -> None:
        vsc = self.vinf.get(key)
        secrets = class_secret_parameters((vsc or {}).get("parameters"))
        if vsc is None or deleting(vsc) or not secrets or self.ctx.values.host_access == "allow":
            await super().reconcile(key)
            return
        # the Secret it names would be the host's (any namespace: kube-system's cloud
        # credentials), read by the host's CSI sidecars — as pv_secret_fields refuses for PVs
        self.ctx.recorder.event(vsc, "Warning", REASON_REJECTED, (
            f"{', '.join(secrets)}: a StorageClass whose parameters name a Secret is not synced "
            "to the host (the host's provisioner would read a host Secret of any namespace); "
            "the host's operator may set sync.pods.hostAccess: allow"))
        hname = self.tr.host_cluster_name(key)
        hsc = self.hinf.get(hname)
        if hsc is not None and self.tr.owns(hsc, None, key):  # made before the check
            await delete_ignore_missing(self.ctx.host, STORAGECLASSES, hname, None)

    def desired(self, vsc: Obj) -> Obj:
        meta = self.tr.host_metadata(vsc)
        for k in _DEFAULT_CLASS:
            meta["annotations"].pop(k, None)
        out = {"apiVersion": STORAGECLASSES.api_version, "kind": "StorageClass", "metadata": meta}
        out.update({f: copy.deepcopy(vsc[f]) for f in _SC_FIELDS if f in vsc})
        return out

    def immutable_changed(self, want: Obj, hsc: Obj) -> bool:
        # provisioner and parameters (everything but allowVolumeExpansion) are immutable
        return any(hsc.get(f) != want.get(f) for f in _SC_FIELDS if f != "allowVolumeExpansion")

    async def update_host(self, want: Obj, hsc: Obj) -> None:
        if hsc.get("allowVolumeExpansion") != want.get("allowVolumeExpansion") or \
                (hsc["metadata"].get("labels") or {}) != want["metadata"]["labels"]:
            new = copy.deepcopy(hsc)
            new["allowVolumeExpansion"] = want.get("allowVolumeExpansion")
            new["metadata"]["labels"] = want["metadata"]["labels"]
            new["metadata"]["annotations"] = want["metadata"]["annotations"]
            await self.ctx.host.update(STORAGECLASSES, new)


class PersistentVolumeSyncer(KindSyncer):
    kind = "persistentvolumes"
    workers = 1  # which claim a volume is kept for is decided one volume at a time

    def setup(self) -> None:
        inf = self.ctx.informers
        self.vinf = inf.virtual(PVS)
        self.hinf = inf.host(PVS, owned=False)  # provisioners do not label what they make
        self.hpvcs = inf.host(PVCS)
        self.vpvcs = inf.virtual(PVCS)  # a host PV's class reads back through its claim's
        self.kept: dict[str, str] = {}  # host PV → host claim it was last kept for (pvreserve)
        self.vinf.add_handler(lambda t, o, old: self.enqueue(o["metadata"]["name"]))
        self.hinf.add_handler(lambda t, o, old: self.enqueue(self._key_for_host(o)))
        self.hpvcs.add_handler(lambda t, o, old: self._claims_changed())

    def _claims_changed(self) -> None:
        """A host claim came, went or was bound: volumes kept for no claim yet look again."""
        for vpv in self.vinf.list():
            ann = vpv["metadata"].get("annotations") or {}
            if not ann.get(ANN_HOST_PV) and not ((vpv.get("spec") or {}).get("claimRef") or {}
                                                 ).get("name"):
                self.enqueue(vpv["metadata"]["name"])

    def virtual_pv_name(self, hname: str) -> str:
        hpv = self.hinf.get(hname)
        if hpv is not None and self.tr.is_owned(hpv):
            return hpv["metadata"]["annotations"].get(ANN_NAME, hname)
        return hname

    def virtual_class_name(self, host_class: str, claim: tuple[str | None, str]) -> str:
        """The virtual StorageClass behind a host PV's class: the class of the virtual claim
        it is bound to when that is the one (the usual case), else the virtual class whose
        host copy it is; a class that is no copy of ours (the host's default) keeps its name."""
        if not self.ctx.values.sync.storageclasses.enabled:
            return host_class
        vclaim = self.vpvcs.get(claim[1], claim[0] or "")
        wanted = ((vclaim or {}).get("spec") or {}).get("storageClassName")
        if wanted and self.tr.host_cluster_name(wanted) == host_class:
            return str(wanted)
        classes = self.ctx.syncers.get("storageclasses")
        hsc = classes.hinf.get(host_class) if classes is not None else None  # type: ignore[attr-defined]
        ref = self.tr.virtual_ref(hsc) if hsc is not None else None
        if ref is not None and ref[0] is None and self.tr.host_cluster_name(ref[1]) == host_class:
            return ref[1]
        return host_class

    def host_pv_name(self, vname: str) -> str:
        """The host PV behind a virtual PV name: the one it mirrors only when that is bound
        to a live claim of ours (the annotation alone is the tenant's to write: followed, it
        would bind a claim to any free host volume), else this cluster's copy of it."""
        vpv = self.vinf.get(vname)
        host_pv = ((vpv or {}).get("metadata") or {}).get("annotations", {}).get(ANN_HOST_PV)
        if host_pv == vname and self._bound_to_us(self.hinf.get(host_pv)):
            return host_pv
        return self.tr.host_cluster_name(vname)

    def _bound_to_us(self, hpv: Obj | None) -> bool:
        """Host PV ``hpv`` is bound to (claimRef with its uid) a host claim of this cluster."""
        ref = ((hpv or {}).get("spec") or {}).get("claimRef") or {}
        hpvc = self._claim_of(hpv) if hpv is not None else None
        return hpvc is not None and bool(ref.get("uid")) and \
            hpvc["metadata"].get("uid") == ref["uid"] and self.tr.is_owned(hpvc)

    def _mirror_problem(self, name: str, vpv: Obj) -> str | None:
        """Why virtual PV ``name``'s ``vkube.io/host-pv`` is no mirror this syncer made (it
        names its own name, of a host volume bound — or last bound — to a claim of ours)."""
        ann = (vpv["metadata"].get("annotations") or {}).get(ANN_HOST_PV)
        hpv = self.hinf.get(name)
        if ann == name and (hpv is None or self._released_from_us(hpv)
                            and not self.tr.is_owned(hpv)):
            return None
        return (f"metadata.annotations[{ANN_HOST_PV}]: host PersistentVolume \"{ann}\" is not "
                "a volume of this cluster's claims; the annotation is the syncer's (it marks "
                "a volume the host provisioned for a claim): remove it to sync this volume")

    def _key_for_host(self, hpv: Obj) -> str | None:
        if self.tr.is_owned(hpv):
            return self.host_key(hpv)
        name = hpv["metadata"]["name"]
        # a volume already shown up stays followed once its claim is gone (Released, deleted)
        return name if self._claim_of(hpv) or self._shown(name) else None

    def _shown(self, hname: str) -> bool:
        """A virtual PV mirrors host PV ``hname``."""
        vpv = self.vinf.get(hname)
        return vpv is not None and (vpv["metadata"].get("annotations") or {}).get(ANN_HOST_PV) == hname

    def _claim_of(self, hpv: Obj) -> Obj | None:
        """The synced host PVC a host-provisioned PV is bound to."""
        ref = (hpv.get("spec") or {}).get("claimRef") or {}
        if ref.get("namespace") != self.ctx.host_namespace:
            return None
        return self.hpvcs.get(ref.get("name", ""), self.ctx.host_namespace)

    def _released_from_us(self, hpv: Obj) -> bool:
        """The host volume still names a claim of our host namespace, which is gone: the
        virtual volume keeps its claimRef (as kube keeps a Released volume's) and follows."""
        ref = (hpv.get("spec") or {}).get("claimRef") or {}
        return ref.get("namespace") == self.ctx.host_namespace and bool(ref.get("name"))

    def initial_keys(self) -> list[str]:
        keys = {o["metadata"]["name"] for o in self.vinf.list()}
        keys |= {k for o in self.hinf.list() if (k := self._key_for_host(o))}
        return sorted(keys)

    async def reconcile(self, key: str) -> None:
        vpv = self.vinf.get(key)
        if vpv is not None and (vpv["metadata"].get("annotations") or {}).get(ANN_HOST_PV):
            problem = self._mirror_problem(key, vpv)
            if problem:  # written by the tenant: neither mirrored nor synced down
                self.ctx.recorder.event(vpv, "Warning", "SyncError", problem)
                return
            await self._up(key, vpv)
            return
        if vpv is None and self.hinf.get(key) is not None and \
                not self.tr.is_owned(self.hinf.get(key) or {}):
            await self._up(key, vpv)
            return
        await self._down(key, vpv)

    async def _down(self, name: str, vpv: Obj | None) -> None:
        hname = self.tr.host_cluster_name(name)
        hpv = self.hinf.get(hname)
        if vpv is None or deleting(vpv):
            self.kept.pop(hname, None)
            if hpv is not None and self.tr.owns(hpv, None, name):
                await delete_ignore_missing(self.ctx.host, PVS, hname, None)
            return
        spec = copy.deepcopy(vpv.get("spec") or {})
        refused = self._host_sources(spec)
        if refused:
            self.ctx.recorder.event(vpv, "Warning", "SyncError", refused)
            return
        secrets = pv_secret_fields(spec)
        if secrets and self.ctx.values.host_access != "allow":
            # a PV's secret references carry their own namespace: any Secret of the host
            self.ctx.recorder.event(vpv, "Warning", "SyncError", (
                f"{', '.join(secrets)}: a PersistentVolume naming a Secret is not synced to "
                "the host (it would name a host Secret of any namespace)"))
            return
        if spec.get("storageClassName") and self.ctx.values.sync.storageclasses.enabled:
            spec["storageClassName"] = self.tr.host_cluster_name(spec["storageClassName"])
        meta = self.tr.host_metadata(vpv)
        ref = spec.get("claimRef")
        if ref and ref.get("name") and ref.get("namespace"):
            spec["claimRef"] = claim_ref(self.ctx.host_namespace,
                                         self.tr.host_name(ref["name"], ref["namespace"]))
        else:  # never Available to a claim of another tenant or of the host (pvreserve)
            spec["claimRef"] = self._kept_for(hname, spec, meta["labels"])
        if hpv is None:
            try:
                await self.ctx.host.create(PVS, {"apiVersion": "v1", "kind": "PersistentVolume",
                                                 "metadata": meta, "spec": spec})
            except errors.AlreadyExists:
                hpv = await self.ctx.host.get(PVS, hname)  # not in the cache yet
                if not self.tr.owns(hpv, None, name):
                    self.foreign(vpv, hname, hpv)
            return
        if not self.tr.owns(hpv, None, name):
            self.foreign(vpv, hname, hpv)  # same name, not ours: never touched
            return
        href = (hpv.get("spec") or {}).get("claimRef") or {}
        if not href.get("uid") and (href.get("namespace"), href.get("name")) != (
                spec["claimRef"]["namespace"], spec["claimRef"]["name"]):
            new = copy.deepcopy(hpv)  # not bound yet: kept for another claim of ours
            new["spec"]["claimRef"] = spec["claimRef"]
            hpv = await self.ctx.host.update(PVS, new)
        vpv = await self._bound_up(vpv, hpv)
        if (hpv.get("status") or {}) != (vpv.get("status") or {}) and hpv.get("status"):
            await update_status(self.ctx.virtual, PVS, vpv, copy.deepcopy(hpv["status"]))

    def _host_sources(self, spec: Obj) -> str | None:
        """Why a tenant PV's volume source may not reach the host (None: it may). Under
        hostAccess reject/strip (always with isolation) none may but those the owner lists in
        ``sync.persistentvolumes.allowedSources``: the node mounts any of them from its own
        network, files or cloud account (nfs of a metadata address, another team's csi
        volumeHandle or rbd image), as a pod's inline volume of that source is refused."""
        values = self.ctx.values
        if values.host_access == "allow":
            return None
        allowed = set(values.sync.persistentvolumes.allowed_sources) - set(PV_NODE_FILE_SOURCES)
        bad = sorted(k for k in spec if k not in PV_FIELDS and k not in allowed)
        if not bad:
            return None
        fields = ", ".join(f"spec.{k}" for k in bad)
        return (f"host access is not allowed: {fields}: the host's node would mount it from "
                "its network, its files or its cloud account; not synced to the host (the "
                "host's operator may list the source in "
                "sync.persistentvolumes.allowedSources, or hostPath/local under "
                "sync.pods.hostAccess: allow)")

    def _kept_for(self, hname: str, spec: Obj, labels: dict[str, str]) -> Obj:
        """The claimRef of a tenant volume made without one (:mod:`vkube.syncer.pvreserve`)."""
        hpv = self.hinf.get(hname)
        href = ((hpv or {}).get("spec") or {}).get("claimRef") or {}
        if href.get("uid"):
            return dict(href)  # bound by the host's controller: never changed
        ns = self.ctx.host_namespace
        taken = {c for h, c in self.kept.items() if h != hname}
        for other in self.hinf.list():
            oref = (other.get("spec") or {}).get("claimRef") or {}
            if other["metadata"]["name"] != hname and oref.get("namespace") == ns and \
                    other["metadata"]["name"] not in self.kept:
                taken.add(oref.get("name", ""))
        claim = pick_claim(hname, spec, labels, self.hpvcs.list(), taken)
        self.kept[hname] = claim or ""
        return claim_ref(ns, claim or unclaimed_name(self.tr.vc))

    async def _bound_up(self, vpv: Obj, hpv: Obj) -> Obj:
        """The host bound a volume the tenant made without a claimRef: the virtual volume
        names the virtual claim, as upstream's binder writes it."""
        href = (hpv.get("spec") or {}).get("claimRef") or {}
        if (vpv.get("spec") or {}).get("claimRef") or not href.get("uid") or \
                href.get("namespace") != self.ctx.host_namespace:
            return vpv
        hpvc = self.hpvcs.get(href.get("name", ""), self.ctx.host_namespace)
        vref = self.tr.virtual_ref(hpvc) if hpvc is not None else None
        if vref is None or hpvc is None or hpvc["metadata"].get("uid") != href["uid"]:
            return vpv
        vclaim = self.vpvcs.get(vref[1], vref[0] or "")
        if vclaim is None:
            return vpv
        body = copy.deepcopy(vpv)
        body["spec"]["claimRef"] = {**claim_ref(vref[0] or "", vref[1]),
                                    "uid": vclaim["metadata"]["uid"]}
        return await self.ctx.virtual.update(PVS, body)

    async def _up(self, name: str, vpv: Obj | None) -> None:
        """Mirror a host-provisioned volume's life: shown while bound to a synced claim, then
        Released with its claim (``Retain``: it stays, phase and all), deleted with the host's
        (``Delete``); the virtual pv-protection controller then drops its finalizer."""
        hpv = self.hinf.get(name)
        hpvc = self._claim_of(hpv) if hpv else None
        vref = self.tr.virtual_ref(hpvc) if hpvc else None
        if hpv is not None and vref is None and vpv is not None and self._released_from_us(hpv):
            if hpv.get("status") and (vpv.get("status") or {}) != hpv["status"]:
                await update_status(self.ctx.virtual, PVS, vpv, copy.deepcopy(hpv["status"]))
            return
        if hpv is None or vref is None:
            if vpv is not None and not deleting(vpv):
                await delete_ignore_missing(self.ctx.virtual, PVS, name, None)
            return
        spec = copy.deepcopy(hpv.get("spec") or {})
        spec["claimRef"] = {"kind": "PersistentVolumeClaim", "apiVersion": "v1",
                            "namespace": vref[0], "name": vref[1],
                            "uid": (hpvc or {})["metadata"].get("annotations", {}).get(ANN_UID)}
        if spec.get("storageClassName"):
            spec["storageClassName"] = self.virtual_class_name(spec["storageClassName"], vref)
        if vpv is None:
            try:
                vpv = await self.ctx.virtual.create(PVS, {
                    "apiVersion": "v1", "kind": "PersistentVolume",
                    "metadata": {"name": name, "annotations": {ANN_HOST_PV: name}},
                    "spec": spec})
            except errors.AlreadyExists:
                return
        if hpv.get("status") and (vpv.get("status") or {}) != hpv["status"]:
            await update_status(self.ctx.virtual, PVS, vpv, copy.deepcopy(hpv["status"]))
