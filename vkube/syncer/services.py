"""Services: the host allocates, the virtual cluster shows what the host allocated.

The virtual API server (as a virtual cluster) leaves ``spec.clusterIP`` empty; the syncer
creates the host Service first and sets the virtual clusterIP once from the host's. From then
on the tenant's address never changes: a host Service re-created later (deleted by someone
else, or by a restarted syncer) asks the host for the address the tenant already sees — the
one the syncer itself wrote, even while its virtual cache does not show that write yet — and
while the host says it is still allocated (a host releases a deleted Service's address
asynchronously) the request is retried with backoff, never traded for another address. A host
copy found with another address is replaced. Only an address the host can never give (outside
its service range, e.g. after a move to another host) makes the virtual Service be re-created
with the host's address (clusterIP is immutable), so both always agree. Selectors
are translated so the host Service selects the synced pods; ``externalIPs`` never go down
(CVE-2020-8554: they would let a tenant intercept any address's traffic on the host).
"""

from __future__ import annotations

import copy
import logging
import re
from typing import Any

from vkube.api import errors, serviceannotations
from vkube.api.meta import Obj, split_key
from vkube.client.resources import SERVICES
from vkube.syncer.admission import REASON_REJECTED
from vkube.syncer.base import DownSyncer, delete_ignore_missing, is_subset, overlay, update_status
from vkube.syncer.externalname import host_external_name, needs_lookup, resolved_refusal
from vkube.syncer.translate import ANN_NAME, ANN_NAMESPACE, DNS_LABEL_MAX
from vkube.syncer.values import LOAD_BALANCER_IP

log = logging.getLogger(__name__)

# fields the host owns or must not get from a tenant
_HOST_OWNED = ("clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy", "externalIPs")
#: requested on the host when the Service is created (the host allocates by them)
# every other field the tenant sets is requested on the host; these are kept current there
_COMPARED = ("type", "selector", "ports", "sessionAffinity", "sessionAffinityConfig",
             "externalName", "publishNotReadyAddresses", "externalTrafficPolicy",
             "internalTrafficPolicy", "loadBalancerSourceRanges", "loadBalancerClass",
             "allocateLoadBalancerNodePorts", "trafficDistribution", "loadBalancerIP",
             "healthCheckNodePort")
_INVALID_VALUE = re.compile(r"Invalid value: \"?(\d+)")


class ServiceSyncer(DownSyncer):
    kind = "services"
    vres = hres = SERVICES
    limit = DNS_LABEL_MAX  # service names are DNS labels
    #: seconds between two lookups of an ExternalName's outside name: what it resolves to
    #: may change (DNS rebinding), and a name turned toward this machine loses its host copy
    recheck_after = 30.0

    def __init__(self, ctx: Any) -> None:
        super().__init__(ctx)
        # per virtual key, the ports the host refused ("NODEPORT" or "healthCheckNodePort"):
        # asked for no more, and said once in a Warning event on the virtual Service
        self._refused: dict[str, set[str]] = {}
        self._warned: set[tuple[str, str]] = set()
        # per virtual Service uid, the addresses the syncer wrote to it (clusterIP,
        # clusterIPs, ipFamilies), until the virtual cache shows them: a host copy made
        # meanwhile asks for these, not for new ones
        self._assigned: dict[str, tuple[str, list[str], list[str]]] = {}
        # per virtual key, a clusterIP the host can never give (outside its range)
        self._unobtainable: dict[str, str] = {}
        # per virtual key, the outside ExternalName last resolved and why its answer refuses
        # it ("" when it does not); judged on every reconcile, which wanted() reads
        self._resolved: dict[str, tuple[str, str]] = {}

    def setup(self) -> None:
        super().setup()
        self.vinf.add_handler(self._forget)

    def _forget(self, typ: str, vobj: Obj, old: Obj | None) -> None:
        uid = vobj["metadata"].get("uid", "")
        if typ == "DELETED" or (vobj.get("spec") or {}).get("clusterIP"):
            self._assigned.pop(uid, None)
        if typ == "DELETED":
            self._unobtainable.pop(_vkey(vobj), None)
            self._resolved.pop(_vkey(vobj), None)

    def wanted(self, vobj: Obj) -> bool:
        # a host service mapped in (mapServices.fromHost) already is a host service
        ann = vobj["metadata"].get("annotations") or {}
        if "vkube.io/mapped-from-host" in ann:
            return False
        _, why = self._external_name(vobj)
        if why:
            self._warn(vobj, "externalName:" + why, REASON_REJECTED,
                       why + "; not synced to the host")
            return False
        return True

    def _external_name(self, vobj: Obj) -> tuple[str | None, str]:
        external, why = self._static_external_name(vobj)
        if external is not None and needs_lookup(external):
            name, refusal = self._resolved.get(_vkey(vobj), ("", ""))
            if name == external and refusal:
                return None, refusal
        return external, why

    def _static_external_name(self, vobj: Obj) -> tuple[str | None, str]:
        spec = vobj.get("spec") or {}
        if spec.get("type") != "ExternalName" or not spec.get("externalName"):
            return None, ""
        return host_external_name(
            str(spec["externalName"]),
            lambda name, ns: self.tr.host_name(name, ns, limit=DNS_LABEL_MAX),
            self.tr.host_namespace)

    async def reconcile(self, key: str) -> None:
        """An outside ExternalName is resolved first (what ``wanted`` judges) and looked up
        again every ``recheck_after`` seconds while the Service names it."""
        ns, name = split_key(key)
        vobj = self.vinf.get(name, ns or "")
        external = self._static_external_name(vobj)[0] if vobj is not None else None
        if external is None or not needs_lookup(external):
            self._resolved.pop(key, None)
            await super().reconcile(key)
            return
        self._resolved[key] = (external, await resolved_refusal(external, self.ctx.lookup))
        try:
            await super().reconcile(key)
        finally:
            self.queue.add_after(key, self.recheck_after)

    def desired(self, vobj: Obj) -> Obj:
        ns = vobj["metadata"]["namespace"]
        vspec = vobj.get("spec") or {}
        spec = {k: copy.deepcopy(v) for k, v in vspec.items() if k not in _HOST_OWNED}
        if vspec.get("ipFamilyPolicy") and vspec.get("clusterIP") != "None":
            # the families the tenant asks for (the host allocates by them)
            spec["ipFamilyPolicy"] = vspec["ipFamilyPolicy"]
            if vspec.get("ipFamilies"):
                spec["ipFamilies"] = list(vspec["ipFamilies"])
        if vspec.get("clusterIP") == "None":
            spec["clusterIP"] = "None"  # headless stays headless
        elif vspec.get("clusterIP"):
            spec["clusterIP"] = vspec["clusterIP"]  # keep the address the tenant sees
            if vspec.get("clusterIPs"):
                spec["clusterIPs"] = list(vspec["clusterIPs"])
        elif (assigned := self._assigned.get(vobj["metadata"].get("uid", ""))) is not None:
            # we gave the tenant an address the cache does not show yet: keep that one
            spec["clusterIP"], spec["clusterIPs"] = assigned[0], list(assigned[1])
            if assigned[2]:
                spec["ipFamilies"] = list(assigned[2])
                spec.setdefault("ipFamilyPolicy", "SingleStack" if len(assigned[2]) == 1
                                else "PreferDualStack")
        external, _ = self._external_name(vobj)
        if external is not None:
            spec["externalName"] = external
        spec["selector"] = self.tr.translate_selector_map(vspec.get("selector"), ns)
        if spec["selector"] is None:
            del spec["selector"]
        # a nodePort (the tenant's, or one the host gave earlier) is asked for again; one the
        # host refused is left to the host to choose
        refused = self._refused.get(_vkey(vobj), set())
        for p in spec.get("ports") or []:
            if not p.get("nodePort") or str(p["nodePort"]) in refused:
                p.pop("nodePort", None)
        if not spec.get("healthCheckNodePort") or "healthCheckNodePort" in refused:
            spec.pop("healthCheckNodePort", None)
        if vspec.get("externalIPs"):
            self._warn(vobj, "externalIPs", "ExternalIPsNotSynced",
                       "spec.externalIPs is not synced to the host: it would let a tenant take "
                       "any address's traffic there (CVE-2020-8554); use a LoadBalancer or "
                       "NodePort Service")
        allowed = self.ctx.values.sync.services.allowed_annotations
        if spec.get("loadBalancerIP") and self.ctx.values.isolation.enabled \
                and LOAD_BALANCER_IP not in allowed:
            del spec["loadBalancerIP"]  # the host's pool gives the address
            self._warn(vobj, "loadBalancerIP", "LoadBalancerIPNotSynced",
                       "spec.loadBalancerIP is not synced to the host of an isolated virtual "
                       "cluster: the address may be another tenant's; the host's load balancer "
                       "assigns one (allow it with sync.services.allowedAnnotations: "
                       "[spec.loadBalancerIP])")
        meta = self.tr.host_metadata(vobj, limit=self.limit)
        judged = serviceannotations.judge(meta["annotations"], allowed)
        if judged.withheld:
            meta["annotations"] = judged.annotations
            self._warn(vobj, "annotations:" + ",".join(judged.withheld),
                       "AnnotationsNotSynced", judged.message())
        return {"apiVersion": "v1", "kind": "Service", "metadata": meta, "spec": spec}

    def _warn(self, vobj: Obj, what: str, reason: str, message: str) -> None:
        once = (str(vobj["metadata"].get("uid")), what)
        if once not in self._warned:
            self._warned.add(once)
            self.ctx.recorder.event(vobj, "Warning", reason, message)

    def _give_up(self, body: Obj, e: errors.Invalid) -> Obj | None:
        """``body`` without what the host refused (named in ``e``), or None if ``e`` is about
        something else. A refused port is remembered and reported on the virtual Service."""
        spec = body["spec"]
        key = _host_vkey(body)
        vns, _, vname = key.partition("/")
        vobj = self.vinf.get(vname, vns) if key else None
        out = copy.deepcopy(body)
        changed = False
        for cause in e.causes or [{"field": "", "message": str(e)}]:
            fld, msg = cause.get("field") or "", cause.get("message") or str(e)
            if "clusterIP" in fld or ("clusterIP" in msg and not fld):
                ip = spec.get("clusterIP")
                if ip in (None, "", "None"):
                    continue
                if "already allocated" in msg:
                    # still held by the deleted copy (released asynchronously) or given to
                    # another Service: the tenant keeps its address; retried with backoff
                    if vobj is not None:
                        self._warn(vobj, f"clusterIP:{ip}", "ClusterIPNotAvailable",
                                   f"the host has not released clusterIP {ip} yet ({msg}); "
                                   "the host Service is created once it is free, the address "
                                   "stays the same")
                    return None
                # outside the host's range (or family): the host can never give it
                self._unobtainable[key] = ip
                out["spec"].pop("clusterIP", None)
                out["spec"].pop("clusterIPs", None)
                changed = True
                continue
            what = "healthCheckNodePort" if "healthCheckNodePort" in fld + msg else \
                "nodePort" if "nodePort" in fld + msg else None
            if what is None:
                continue
            m = _INVALID_VALUE.search(msg)
            if what == "healthCheckNodePort" and spec.get("healthCheckNodePort"):
                out["spec"].pop("healthCheckNodePort")
                port = str(spec["healthCheckNodePort"])
                self._refused.setdefault(key, set()).add("healthCheckNodePort")
            else:
                port = m.group(1) if m else ""
                hit = [p for p in out["spec"].get("ports") or [] if p.get("nodePort") and
                       (not port or str(p["nodePort"]) == port)]
                if not hit:
                    continue
                for p in hit:
                    self._refused.setdefault(key, set()).add(str(p.pop("nodePort")))
            changed = True
            if vobj is not None:
                self._warn(vobj, f"{what}:{port}", "NodePortNotAllocated",
                           f"the host refused {what} {port or '(requested)'} ({msg}); "
                           "it chose another port — see the host Service, or pick a free port")
        return out if changed else None

    async def create_host(self, desired: Obj) -> Obj:
        body = desired
        for _ in range(len(desired["spec"].get("ports") or []) + 3):
            try:
                return await super().create_host(body)
            except errors.Invalid as e:
                retry = self._give_up(body, e)
                if retry is None:
                    raise
                body = retry
        return await super().create_host(body)

    async def update_host(self, upd: Obj) -> Obj:
        body = upd
        for _ in range(len(upd["spec"].get("ports") or []) + 2):
            try:
                return await super().update_host(body)
            except errors.Invalid as e:
                retry = self._give_up(body, e)
                if retry is None:
                    raise
                # what the host already had stays (an allocated port is not taken away)
                body = retry
        return await super().update_host(body)

    def merge(self, desired: Obj, hobj: Obj) -> Obj | None:
        hmeta, dmeta = hobj.get("metadata") or {}, desired["metadata"]
        hspec, dspec = hobj.get("spec") or {}, desired["spec"]
        same = (hmeta.get("labels") or {}) == dmeta["labels"] and \
            (hmeta.get("annotations") or {}) == dmeta["annotations"] and \
            is_subset({f: dspec[f] for f in _COMPARED if f in dspec}, hspec) and \
            hspec.get("selector") == dspec.get("selector")  # ours alone: exact
        if same:
            return None
        new = copy.deepcopy(hobj)
        new["metadata"]["labels"] = dmeta["labels"]
        new["metadata"]["annotations"] = dmeta["annotations"]
        nspec = new.setdefault("spec", {})
        for f in _COMPARED:
            if f in dspec:
                nspec[f] = overlay(nspec.get(f), dspec[f])
        if "selector" in dspec:
            nspec["selector"] = copy.deepcopy(dspec["selector"])
        if "selector" not in dspec:
            nspec.pop("selector", None)
        if nspec.get("type") not in ("NodePort", "LoadBalancer"):
            for p in nspec.get("ports") or []:
                p.pop("nodePort", None)
        if "healthCheckNodePort" not in dspec and not (
                nspec.get("type") == "LoadBalancer" and nspec.get("externalTrafficPolicy") == "Local"):
            nspec.pop("healthCheckNodePort", None)
        return new

    async def sync_up(self, vobj: Obj, hobj: Obj) -> None:
        vspec, hspec = vobj.get("spec") or {}, hobj.get("spec") or {}
        patch: Obj = {}
        hip = hspec.get("clusterIP")
        vip = vspec.get("clusterIP")
        if not vip and (assigned := self._assigned.get(vobj["metadata"].get("uid", ""))):
            vip = assigned[0]  # written by us; the cache is behind
        if vip and hip and vip != hip and "None" not in (vip, hip):
            if self._unobtainable.get(_vkey(vobj)) == vip:
                await self._recreate_virtual(vobj, hobj)
            else:
                await self._replace_host(vobj, hobj)
            return
        if not vip and hip:
            patch["clusterIP"] = hip
            patch["clusterIPs"] = hspec.get("clusterIPs") or [hip]
            if hspec.get("ipFamilies"):
                patch["ipFamilies"] = hspec["ipFamilies"]
        if vspec.get("type") in ("NodePort", "LoadBalancer"):
            hports = {(p.get("port"), p.get("protocol", "TCP")): p.get("nodePort")
                      for p in hspec.get("ports") or []}
            ports = copy.deepcopy(vspec.get("ports") or [])
            changed = False
            for p in ports:
                np = hports.get((p.get("port"), p.get("protocol", "TCP")))
                if np and not p.get("nodePort"):
                    p["nodePort"], changed = np, True
            if changed:
                patch["ports"] = ports
        if patch:
            body = copy.deepcopy(vobj)
            body["spec"].update(patch)
            vobj = await self.ctx.virtual.update(SERVICES, body)
            vs = vobj.get("spec") or {}
            if vs.get("clusterIP") and vs["clusterIP"] != "None":
                self._assigned[vobj["metadata"].get("uid", "")] = (
                    vs["clusterIP"], list(vs.get("clusterIPs") or [vs["clusterIP"]]),
                    list(vs.get("ipFamilies") or []))
        hlb = (hobj.get("status") or {}).get("loadBalancer") or {}
        vlb = (vobj.get("status") or {}).get("loadBalancer") or {}
        if hlb != vlb:
            await update_status(self.ctx.virtual, SERVICES, vobj,
                                {**(vobj.get("status") or {}), "loadBalancer": hlb})


    async def _replace_host(self, vobj: Obj, hobj: Obj) -> None:
        """The host copy has another address than the tenant sees (made while the syncer did
        not know the tenant's, or by someone else): delete it (only that very copy, by uid);
        the next reconcile makes it again with the tenant's address."""
        hmeta, meta = hobj["metadata"], vobj["metadata"]
        log.info("service %s/%s: host address %s differs from %s; re-creating the host copy",
                 meta["namespace"], meta["name"], (hobj.get("spec") or {}).get("clusterIP"),
                 vobj["spec"].get("clusterIP"))
        try:
            await delete_ignore_missing(self.ctx.host, SERVICES, hmeta["name"],
                                        hmeta.get("namespace"),
                                        preconditions={"uid": hmeta.get("uid")})
        except errors.Conflict:
            pass  # already replaced
        self.queue.add_after(_vkey(vobj), 0.2)

    async def _recreate_virtual(self, vobj: Obj, hobj: Obj) -> None:
        """The host copy has another address than the virtual Service shows (it was
        re-created and the old one was taken): clusterIP is immutable, so replace the
        virtual Service by one with the host's address."""
        meta = vobj["metadata"]
        hspec = hobj.get("spec") or {}
        log.info("service %s/%s: host address %s differs from %s; re-creating it",
                 meta["namespace"], meta["name"], hspec.get("clusterIP"),
                 vobj["spec"].get("clusterIP"))
        body = {"apiVersion": "v1", "kind": "Service",
                "metadata": {k: copy.deepcopy(v) for k, v in meta.items()
                             if k in ("name", "namespace", "labels", "annotations",
                                      "ownerReferences", "finalizers")},
                "spec": copy.deepcopy(vobj.get("spec") or {})}
        body["spec"]["clusterIP"] = hspec["clusterIP"]
        body["spec"]["clusterIPs"] = hspec.get("clusterIPs") or [hspec["clusterIP"]]
        try:
            await self.ctx.virtual.delete(SERVICES, meta["name"], namespace=meta["namespace"],
                                          preconditions={"uid": meta["uid"]})
        except errors.NotFound:
            pass
        try:
            await self.ctx.virtual.create(SERVICES, body, namespace=meta["namespace"])
        except errors.AlreadyExists:
            pass  # re-created by someone (the tenant) meanwhile; the next reconcile compares


def _vkey(vobj: Obj) -> str:
    meta = vobj.get("metadata") or {}
    return f"{meta.get('namespace')}/{meta.get('name')}"


def _host_vkey(hobj: Obj) -> str:
    """The virtual key (``ns/name``) behind a host Service body we made."""
    ann = (hobj.get("metadata") or {}).get("annotations") or {}
    return f"{ann.get(ANN_NAMESPACE)}/{ann.get(ANN_NAME)}" if ann.get(ANN_NAME) else ""
