"""EndpointSlices a tenant writes for its selector-less Services go down, pointing at the
host copy of the Service (``kubernetes.io/service-name``) so the host's proxies route to them.
Slices of selector Services are the endpointslice controllers' business on each side: never
copied (the host makes its own from the synced pods)."""

from __future__ import annotations

import copy

from vkube.api.meta import Obj
from vkube.client.resources import ENDPOINTSLICES, SERVICES
from vkube.syncer.base import DownSyncer
from vkube.syncer.isolation import CONTROL_PLANE_SERVICES, AddressGuard
from vkube.syncer.podrewrite import host_pod_name
from vkube.syncer.translate import DNS_LABEL_MAX

SERVICE_NAME = "kubernetes.io/service-name"
MANAGED_BY = "endpointslice.kubernetes.io/managed-by"
#: slices made by controllers (ours or the mirroring one) are derived data, not the tenant's
CONTROLLER_MANAGED = ("endpointslice-controller.k8s.io", "endpointslicemirroring-controller.k8s.io")
SYNCER_MANAGER = "vkube.io-syncer"


class EndpointSliceSyncer(DownSyncer):
    kind = "endpointslices"
    vres = hres = ENDPOINTSLICES
    fields = ("addressType", "endpoints", "ports")

    def setup(self) -> None:
        super().setup()
        self.vsvc = self.ctx.informers.virtual(SERVICES)
        self.vsvc.add_handler(self._on_service)  # a selector added or dropped changes "wanted"
        self.guard = AddressGuard(self.ctx)

    def _on_service(self, type_: str, svc: Obj, old: Obj | None) -> None:
        m = svc["metadata"]
        for s in self.vinf.list(m.get("namespace"), {SERVICE_NAME: m["name"]}):
            self.enqueue(f"{m.get('namespace')}/{s['metadata']['name']}")

    def wanted(self, vobj: Obj) -> bool:
        labels = vobj["metadata"].get("labels") or {}
        if labels.get(MANAGED_BY) in CONTROLLER_MANAGED or not labels.get(SERVICE_NAME):
            return False
        if self.ctx.control_plane_endpoints is not None and \
                (vobj["metadata"].get("namespace"), labels[SERVICE_NAME]) in CONTROL_PLANE_SERVICES:
            return False  # the control plane's own: only its Endpoints go down (vkube.syncer.endpoints)
        svc = self.vsvc.get(labels[SERVICE_NAME], vobj["metadata"].get("namespace"))
        if svc is not None and "vkube.io/mapped-from-host" in (svc["metadata"].get("annotations") or {}):
            return False  # a host service mapped in: its slice comes from the host (servicemap)
        return svc is not None and not (svc.get("spec") or {}).get("selector")

    def desired(self, vobj: Obj) -> Obj:
        ns = vobj["metadata"]["namespace"]
        meta = self.tr.host_metadata(vobj)
        meta["labels"][SERVICE_NAME] = self.tr.host_name(meta["labels"][SERVICE_NAME], ns, limit=DNS_LABEL_MAX)
        meta["labels"][MANAGED_BY] = SYNCER_MANAGER
        endpoints = copy.deepcopy(vobj.get("endpoints") or [])
        refused = self.guard.filter(vobj, [a for ep in endpoints for a in ep.get("addresses") or []])
        if refused:
            endpoints = [ep for ep in endpoints
                         if not set(ep.get("addresses") or []) & refused]
        for ep in endpoints:
            ref = ep.get("targetRef")
            if ref and ref.get("kind") == "Pod" and ref.get("name"):
                ep["targetRef"] = {"kind": "Pod", "namespace": self.ctx.host_namespace,
                                   "name": host_pod_name(self.tr, ref["name"], ref.get("namespace") or ns)}
            elif ref:
                ep.pop("targetRef")  # anything else names a virtual object the host cannot see
        out: Obj = {"apiVersion": ENDPOINTSLICES.api_version, "kind": "EndpointSlice", "metadata": meta,
                    "addressType": vobj.get("addressType", "IPv4"), "endpoints": endpoints}
        if "ports" in vobj:
            out["ports"] = copy.deepcopy(vobj["ports"])
        return out
