"""Dynamic resource allocation in a virtual cluster (values ``sync.resourceclaims``).

The host's scheduler allocates devices, so what it needs goes down and what it decides comes
back up:

- ResourceClaims, virtual → host as ``NAME-x-NS-x-VC`` (spec unchanged: the device classes it
  names are the host's, shown inside). That covers claims the virtual resourceclaim
  controller makes from ResourceClaimTemplates: they are ordinary claims owned by the pod;
  templates stay virtual. A synced pod's ``resourceClaims`` then name the host claims
  directly (:func:`host_pod_claims`), so the host's own claim controller makes nothing. A
  host copy still reserved for a pod outlives its virtual claim until the pod lets go (as a
  claim's delete protection), so its devices are never handed on under a running pod.
- Claim status, host → virtual: ``allocation`` (devices, node selector) and ``devices`` as
  they are (pools and nodes keep their host names, as the synced nodes do), ``reservedFor``
  translated from host pods to the virtual pods behind them. A consumer that is not one of
  this cluster's live pods is left out, and a claim reserved for nobody shows no allocation
  — what the virtual resourceclaim controller would make of it anyway, so the two never
  fight over the status.
- DeviceClasses and ResourceSlices, host → virtual (:class:`HostDeviceSyncer`), under their
  host names with ``vkube.io/from-host``: tenants see the devices there are. They are the
  only ones: the host's scheduler allocates from nothing else, so a tenant's own class or
  slice is deleted with a Warning event, an edit is undone and a deleted copy comes back
  (as vcluster's device class sync allows only the host's classes). With a node selector
  (``sync.nodes.nodeSelector``, ``isolation.nodeSelector``) only the slices of the selected
  host nodes are shown.
"""

from __future__ import annotations

import copy

from vkube.api import errors
from vkube.api.meta import Obj, object_key, ref_key, rfc3339, split_key, utcnow
from vkube.client.client import Client, Resource
from vkube.client.resources import DEVICECLASSES, NODES, PODS, RESOURCECLAIMS, RESOURCESLICES
from vkube.syncer.base import DownSyncer, KindSyncer, SyncContext, copy_drifted, \
    delete_ignore_missing, deleting, update_status
from vkube.syncer.translate import ANN_UID, Translator


ANN_FROM_HOST = "vkube.io/from-host"


class ClaimsNotReady(Exception):
    """A synced pod's claims are not all there yet (the template's claim not made, a named
    claim missing): the pod waits, as it would for kube-scheduler. ``shown``: the tenant
    should see why (a claim it named is missing), not only a passing wait."""

    def __init__(self, message: str, *, shown: bool = False) -> None:
        super().__init__(message)
        self.shown = shown


def claim_names(vpod: Obj) -> dict[str, str | None]:
    """Per ``resourceClaims`` entry, the virtual claim it means (kube's ``resourceclaim.Name``):
    ``resourceClaimName``, or the one the resourceclaim controller recorded for a template in
    ``status.resourceClaimStatuses`` (None there: the template needs no claim).
    ``ClaimsNotReady`` while a template's claim is not recorded yet."""
    out: dict[str, str | None] = {}
    statuses = {s.get("name"): s for s in ((vpod.get("status") or {}).get("resourceClaimStatuses")) or ()}
    meta = vpod["metadata"]
    for entry in (vpod.get("spec") or {}).get("resourceClaims") or ():
        if entry.get("resourceClaimName"):
            out[entry["name"]] = entry["resourceClaimName"]
        elif entry.get("name") in statuses:
            out[entry["name"]] = statuses[entry["name"]].get("resourceClaimName")
        else:
            raise ClaimsNotReady(f'pod "{meta["namespace"]}/{meta["name"]}": ResourceClaim not created yet')
    return out


def host_pod_claims(tr: Translator, vpod: Obj) -> tuple[Obj, ...]:
    """The host pod's ``resourceClaims``: every entry names its host claim directly."""
    ns = vpod["metadata"]["namespace"]
    return tuple({"name": entry, "resourceClaimName": tr.host_name(name, ns)}
                 for entry, name in claim_names(vpod).items() if name)


def virtual_status(hstatus: Obj, consumer: "ConsumerMap") -> Obj:
    """A host claim's status as the virtual claim shows it (see the module docstring)."""
    out = copy.deepcopy(hstatus)
    reserved = []
    for ref in hstatus.get("reservedFor") or ():
        vref = consumer(ref)
        if vref is not None:
            reserved.append(vref)
    if reserved:
        out["reservedFor"] = reserved
    else:
        out.pop("reservedFor", None)
        out.pop("allocation", None)
    return out


class ConsumerMap:
    """Host consumer reference → the virtual pod behind it (None: not a live pod of ours)."""

    def __init__(self, tr: Translator, hpods: object, vpods: object) -> None:
        self.tr, self.hpods, self.vpods = tr, hpods, vpods

    def __call__(self, ref: Obj) -> Obj | None:
        if ref.get("resource") != "pods" or ref.get("apiGroup"):
            return None
        hpod = self.hpods.get(ref.get("name", ""), self.tr.host_namespace)  # type: ignore[attr-defined]
        if hpod is None or hpod["metadata"].get("uid") != ref.get("uid"):
            return None
        vref = self.tr.virtual_ref(hpod)
        if vref is None or vref[0] is None:
            return None
        vpod = self.vpods.get(vref[1], vref[0])  # type: ignore[attr-defined]
        vuid = (hpod["metadata"].get("annotations") or {}).get(ANN_UID)
        if vpod is None or deleting(vpod) or vpod["metadata"].get("uid") != vuid:
            return None
        return {"resource": "pods", "name": vref[1], "uid": vuid}


class ResourceClaimSyncer(DownSyncer):
    """ResourceClaims down, their status up (see the module docstring)."""

    kind = "resourceclaims"
    vres = hres = RESOURCECLAIMS

    def setup(self) -> None:
        super().setup()
        self.hpods = self.ctx.informers.host(PODS)
        self.vpods = self.ctx.informers.virtual(PODS)
        self.vnodes = self.ctx.informers.virtual(NODES)  # the nodes the tenant sees
        self.consumer = ConsumerMap(self.tr, self.hpods, self.vpods)
        # a reservation names a pod: its arrival on either side can complete the translation
        self.hinf.add_index("consumer", lambda c: [r.get("name", "") for r in
                                                   (c.get("status") or {}).get("reservedFor") or ()])
        self.hpods.add_handler(self._on_host_pod)
        # a pod waiting for a claim goes on as soon as the claim is there
        self.vpods.add_index("vkube-claims", _pod_claim_keys)
        self.vinf.add_handler(self._on_virtual_claim)

    def _on_virtual_claim(self, typ: str, claim: Obj, old: Obj | None) -> None:
        pods = self.ctx.syncers.get("pods")
        if typ == "ADDED" and pods is not None:
            for pod in self.vpods.by_index("vkube-claims", object_key(claim)):
                pods.enqueue(object_key(pod))

    def _on_host_pod(self, typ: str, hpod: Obj, old: Obj | None) -> None:
        for claim in self.hinf.by_index("consumer", hpod["metadata"]["name"]):
            self.enqueue(self.host_key(claim))

    async def reconcile(self, key: str) -> None:
        ns, name = split_key(key)
        vobj = self.vinf.get(name, ns or "")
        hname = self.host_name(name, ns or "")
        hobj = self.hinf.get(hname, self.ctx.host_namespace)
        # a claim made again under the name of one whose host copy is still there: that copy
        # is the old claim's (its spec cannot change), so it goes before the new one is made
        stale = vobj is not None and hobj is not None and \
            (hobj["metadata"].get("annotations") or {}).get(ANN_UID) != vobj["metadata"].get("uid")
        if vobj is None or deleting(vobj) or stale:
            if hobj is not None and (hobj.get("status") or {}).get("reservedFor"):
                # in use on the host: kept until its pods let go (the host's claim event
                # brings it back), as a claim's delete protection keeps it while in use
                return
            if stale and self.tr.owns(hobj or {}, ns, name):
                await delete_ignore_missing(self.ctx.host, RESOURCECLAIMS, hname, self.ctx.host_namespace)
                return  # its deletion event brings the new claim down
        await super().reconcile(key)

    def desired(self, vobj: Obj) -> Obj:
        return {"apiVersion": RESOURCECLAIMS.api_version, "kind": "ResourceClaim",
                "metadata": self.tr.host_metadata(vobj, limit=self.limit),
                "spec": copy.deepcopy(vobj.get("spec") or {})}

    async def sync_up(self, vobj: Obj, hobj: Obj) -> None:
        want = virtual_status(hobj.get("status") or {}, self.consumer)
        if want != (vobj.get("status") or {}):
            try:
                await update_status(self.ctx.virtual, RESOURCECLAIMS, vobj, want)
            except errors.NotFound:
                pass

    async def for_pod(self, vpod: Obj) -> tuple[Obj, ...]:
        """The host pod's ``resourceClaims``, once every claim it names is on the host."""
        ns = vpod["metadata"]["namespace"]
        named = {e.get("resourceClaimName") for e in (vpod.get("spec") or {}).get("resourceClaims") or ()}
        for name in claim_names(vpod).values():
            if not name:
                continue
            vclaim = self.vinf.get(name, ns)
            if vclaim is None:  # a template's claim our cache does not show yet: a passing wait
                raise ClaimsNotReady(f'resourceclaim.resource.k8s.io "{name}" not found', shown=name in named)
            if deleting(vclaim):
                raise ClaimsNotReady(f'resourceclaim "{name}" is being deleted', shown=True)
            await self.reconcile(ref_key(ns, name))
        return host_pod_claims(self.tr, vpod)

    async def surface_wait(self, vpod: Obj, why: str) -> None:
        """The waiting pod says why, as kube-scheduler's PodScheduled condition would (the
        host's scheduler never saw it); nothing when it already does."""
        status = vpod.get("status") or {}
        cond = next((c for c in status.get("conditions") or () if c.get("type") == "PodScheduled"), None)
        message = f"0/{len(self.vnodes.list())} nodes are available: {why}."
        if cond is not None and cond.get("message") == message:
            return
        meta = vpod["metadata"]
        patch = {"status": {"conditions": [{
            "type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": message,
            "lastProbeTime": None, "lastTransitionTime": rfc3339(utcnow())}]}}
        try:
            await self.ctx.virtual.patch(PODS, meta["name"], patch, type="strategic",
                                         namespace=meta["namespace"], subresource="status")
        except (errors.NotFound, errors.Conflict):
            return
        self.ctx.recorder.event(vpod, "Warning", "FailedScheduling", message)


class HostDeviceSyncer(KindSyncer):
    """The host's DeviceClasses or ResourceSlices, shown read-only in the virtual cluster:
    level-based, so whatever a tenant changes, creates or deletes of the kind is put back to
    what the host shows (as vcluster's device class sync allows only the host's classes)."""

    res: Resource

    def __init__(self, ctx: SyncContext, res: Resource) -> None:
        super().__init__(ctx)
        self.res = res
        self.kind = res.plural

    def setup(self) -> None:
        self.vinf = self.ctx.informers.virtual(self.res)
        self.hinf = self.ctx.informers.host(self.res, owned=False)
        for inf in (self.vinf, self.hinf):
            inf.add_handler(lambda t, o, old: self.enqueue(object_key(o)))
        self.selector = self.ctx.values.node_selector()
        if self.selector and self.res is RESOURCESLICES:
            self.hnodes = self.ctx.informers.host(NODES, owned=False)
            self.hinf.add_index("node", lambda s: [(s.get("spec") or {}).get("nodeName") or ""])
            self.hnodes.add_handler(lambda t, n, old: [
                self.enqueue(object_key(s)) for s in self.hinf.by_index("node", n["metadata"]["name"])])

    def initial_keys(self) -> list[str]:
        return sorted({object_key(o) for o in self.vinf.list()} |
                      {object_key(o) for o in self.hinf.list()})

    def shown(self, hobj: Obj) -> bool:
        """Slices of host nodes outside the node selector are not the tenant's to see."""
        if not self.selector or self.res is not RESOURCESLICES:
            return True
        node = (hobj.get("spec") or {}).get("nodeName")
        if not node:
            return True  # a pool every node (or a node selector) reaches
        hnode = self.hnodes.get(node)
        labels = (hnode or {}).get("metadata", {}).get("labels") or {}
        return hnode is not None and all(labels.get(k) == v for k, v in self.selector.items())

    def foreign_message(self) -> str:
        return (f"{self.res.plural} in this virtual cluster are the host's (sync.resourceclaims): "
                f"the host's scheduler allocates only from those; ask the host's admin for one")

    def desired(self, hobj: Obj) -> Obj:
        meta = hobj["metadata"]
        return {"apiVersion": self.res.api_version, "kind": self.res.kind,
                "metadata": {"name": meta["name"], "labels": dict(meta.get("labels") or {}),
                             "annotations": {ANN_FROM_HOST: "true"}},
                "spec": copy.deepcopy(hobj.get("spec") or {})}

    async def reconcile(self, key: str) -> None:
        hobj, vobj = self.hinf.get(key), self.vinf.get(key)
        if hobj is None or not self.shown(hobj):
            if vobj is not None and not deleting(vobj):
                if ANN_FROM_HOST not in (vobj["metadata"].get("annotations") or {}):
                    self.ctx.recorder.event(vobj, "Warning", "SyncRejected", self.foreign_message())
                await delete_ignore_missing(self.ctx.virtual, self.res, key, None)
            return
        want = self.desired(hobj)
        if vobj is None:
            try:
                await self.ctx.virtual.create(self.res, want)
            except errors.AlreadyExists:
                pass
            return
        new = copy_drifted(vobj, want)
        if new is not None:
            await self.ctx.virtual.update(self.res, new)


async def host_lacks_dra(host: Client) -> bool:
    """Does the host not serve ``resource.k8s.io/v1``? (Its informers would never sync.) Only
    a 404 says so; a refusal to list is the host's RBAC, not a missing API."""
    try:
        await host.list(DEVICECLASSES, limit=1)
    except errors.NotFound:
        return True
    except errors.StatusError:
        pass
    return False


def _pod_claim_keys(pod: Obj) -> list[str]:
    """``NS/CLAIM`` of every claim a pod names (directly or through its recorded statuses)."""
    ns = pod["metadata"].get("namespace", "")
    names = [e.get("resourceClaimName") for e in (pod.get("spec") or {}).get("resourceClaims") or ()]
    names += [s.get("resourceClaimName") for s in ((pod.get("status") or {}).get("resourceClaimStatuses")) or ()]
    return [f"{ns}/{n}" for n in names if n]


def device_syncers(ctx: SyncContext) -> list[KindSyncer]:
    """What ``sync.resourceclaims`` turns on."""
    return [ResourceClaimSyncer(ctx), HostDeviceSyncer(ctx, DEVICECLASSES),
            HostDeviceSyncer(ctx, RESOURCESLICES)]
