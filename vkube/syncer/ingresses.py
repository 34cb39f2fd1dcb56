"""Ingresses: backend Service names and TLS Secret names translated down, load-balancer
status up. The TLS Secrets themselves are synced by the Secret syncer (it indexes Ingresses)."""

from __future__ import annotations

import copy

from vkube.api.meta import Obj
from vkube.client.resources import INGRESSES
from vkube.syncer.admission import class_refusal
from vkube.syncer.base import DownSyncer, update_status
from vkube.syncer.translate import DNS_LABEL_MAX

CLASS_ANNOTATION = "kubernetes.io/ingress.class"


class IngressSyncer(DownSyncer):
    kind = "ingresses"
    vres = hres = INGRESSES

    def wanted(self, vobj: Obj) -> bool:
        spec = vobj.get("spec") or {}
        ann = (vobj.get("metadata") or {}).get("annotations") or {}
        field, name = "spec.ingressClassName", spec.get("ingressClassName")
        if not name and ann.get(CLASS_ANNOTATION):
            field, name = f"metadata.annotations[{CLASS_ANNOTATION}]", ann[CLASS_ANNOTATION]
        return not class_refusal(self.ctx.recorder, vobj, what="ingress class", field=field,
                                 name=name,
                                 allowed=self.ctx.values.isolation.allowed_ingress_classes)

    def desired(self, vobj: Obj) -> Obj:
        ns = vobj["metadata"]["namespace"]
        spec = copy.deepcopy(vobj.get("spec") or {})

        def backend(b: Obj | None) -> None:
            svc = (b or {}).get("service")
            if svc and svc.get("name"):
                svc["name"] = self.tr.host_name(svc["name"], ns, limit=DNS_LABEL_MAX)
            # resource backends point at arbitrary objects: not reachable through a host copy
            if b is not None:
                b.pop("resource", None)

        backend(spec.get("defaultBackend"))
        for rule in spec.get("rules") or []:
            for path in (rule.get("http") or {}).get("paths") or []:
                backend(path.get("backend"))
        for tls in spec.get("tls") or []:
            if tls.get("secretName"):
                tls["secretName"] = self.tr.host_name(tls["secretName"], ns)
        return {"apiVersion": INGRESSES.api_version, "kind": "Ingress",
                "metadata": self.tr.host_metadata(vobj), "spec": spec}

    async def sync_up(self, vobj: Obj, hobj: Obj) -> None:
        hlb = (hobj.get("status") or {}).get("loadBalancer") or {}
        if hlb != ((vobj.get("status") or {}).get("loadBalancer") or {}):
            await update_status(self.ctx.virtual, INGRESSES, vobj,
                                {**(vobj.get("status") or {}), "loadBalancer": hlb})
