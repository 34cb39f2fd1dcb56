"""Ingresses: backend Service names and TLS Secret names translated down, load-balancer
status up. The TLS Secrets themselves are synced by the Secret syncer (it indexes Ingresses).

An ingress controller serves every Ingress of the host, so two rules hold across tenants: a
``host`` another Ingress of the host already claims (another virtual cluster's, or the host's
own) is refused — the older claim keeps it — and configuration snippets (annotations such as
``nginx.ingress.kubernetes.io/server-snippet``: raw controller configuration, which can read
the controller's files and credentials) are refused."""

from __future__ import annotations

import copy
import logging

from vkube.api import errors
from vkube.api.meta import Obj, split_key
from vkube.client.resources import INGRESSES
from vkube.syncer.admission import REASON_REJECTED, class_refusal
from vkube.syncer.base import DownSyncer, delete_ignore_missing, deleting, update_status
from vkube.syncer.translate import DNS_LABEL_MAX, LABEL_MANAGED_BY

log = logging.getLogger(__name__)

CLASS_ANNOTATION = "kubernetes.io/ingress.class"
#: a refused Ingress looks again this often (the other claim may be gone)
RECHECK_SECONDS = 30.0


def snippet_annotations(vobj: Obj) -> list[str]:
    """Annotations that hand the ingress controller raw configuration (``*-snippet``,
    ``nginx.org/server-snippets``, ``haproxy.org/backend-config-snippet``…)."""
    ann = (vobj.get("metadata") or {}).get("annotations") or {}
    return sorted(k for k in ann if "snippet" in k.rsplit("/", 1)[-1].lower())


def rule_hosts(obj: Obj) -> set[str]:
    return {r["host"] for r in (obj.get("spec") or {}).get("rules") or []
            if isinstance(r, dict) and r.get("host")}


class IngressSyncer(DownSyncer):
    kind = "ingresses"
    vres = hres = INGRESSES

    def setup(self) -> None:
        super().setup()
        self._cannot_list = False  # the host does not let us read other namespaces' Ingresses

    async def reconcile(self, key: str) -> None:
        ns, name = split_key(key)
        vobj = self.vinf.get(name, ns or "")
        if vobj is not None and not deleting(vobj) and not snippet_annotations(vobj):
            taken = await self._claimed_elsewhere(vobj, self.host_name(name, ns or ""))
            if taken:
                hname, hns = self.host_name(name, ns or ""), self.ctx.host_namespace
                hobj = self.hinf.get(hname, hns)
                if hobj is not None and self.tr.owns(hobj, ns, name):
                    await delete_ignore_missing(self.ctx.host, INGRESSES, hname, hns)
                self.refusals.refused(vobj, errors.Conflict(taken))
                self.queue.add_after(key, RECHECK_SECONDS)
                return
        await super().reconcile(key)

    async def _claimed_elsewhere(self, vobj: Obj, hname: str) -> str:
        """Why a ``host`` of ``vobj`` is another Ingress's on the host ("" when none is): an
        older host Ingress outside this virtual cluster names it (same age: the first by
        namespace/name)."""
        hosts = rule_hosts(vobj)
        if not hosts or self._cannot_list:
            return ""
        try:
            every = (await self.ctx.host.list(INGRESSES)).get("items") or []
        except errors.Forbidden as e:
            self._cannot_list = True
            log.warning("%s: cannot list the host's Ingresses (%s): a host name another "
                        "tenant claims is not checked", self.ctx.name, e)
            return ""
        mine = self.hinf.get(hname, self.ctx.host_namespace)
        my_key = ((mine or {}).get("metadata", {}).get("creationTimestamp") or "~",
                  self.ctx.host_namespace, hname)
        for other in every:
            meta = other.get("metadata") or {}
            if (meta.get("labels") or {}).get(LABEL_MANAGED_BY) == self.tr.vc:
                continue  # this virtual cluster's own: the tenant's business, as upstream
            their_key = (meta.get("creationTimestamp") or "", meta.get("namespace") or "",
                         meta.get("name") or "")
            both = sorted(hosts & rule_hosts(other))
            if both and their_key < my_key:
                return (f'host "{both[0]}" is already claimed by another Ingress on the host '
                        "(another virtual cluster's or the host's own); not synced")
        return ""

    def wanted(self, vobj: Obj) -> bool:
        snippets = snippet_annotations(vobj)
        if snippets:
            self.ctx.recorder.event(vobj, "Warning", REASON_REJECTED, (
                f"metadata.annotations[{snippets[0]}]: configuration snippets are not allowed "
                f"(they configure the host's ingress controller for every tenant; found: "
                f"{', '.join(snippets)}); not synced to the host"))
            return False
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
