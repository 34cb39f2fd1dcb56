"""Ingresses: backend Service names and TLS Secret names translated down, load-balancer
status up. The TLS Secrets themselves are synced by the Secret syncer (it indexes Ingresses).

An ingress controller serves every Ingress of the host, so across tenants:
- a host name (``ingresshosts``: case and a trailing dot ignored, wildcards overlapping exact
  names both ways, the catch-all of a rule without host or ``spec.defaultBackend``) that another
  Ingress of the host already claims (another virtual cluster's, or the host's own) is refused
  with HostRefused — the older claim keeps it;
- with isolation the catch-all is refused outright (SyncRejected): a tenant names its hosts;
- annotations pass only as ``ingressannotations`` allows (snippets, URLs, other namespaces'
  objects refused with SyncRejected naming the key; the tenant's own Secrets and Services
  translated to their host copies);
- a host the API server would not have accepted (stored before it validated hosts) is
  refused."""

from __future__ import annotations

import copy
import logging

from vkube.api import errors
from vkube.api.meta import Obj, split_key
from vkube.api.validation_ingress import host_problems
from vkube.client.resources import INGRESSES
from vkube.api import ingressannotations, ingresshosts
from vkube.syncer.admission import REASON_REJECTED, class_refusal
from vkube.syncer.base import DownSyncer, delete_ignore_missing, deleting, update_status
from vkube.syncer.translate import DNS_LABEL_MAX, LABEL_MANAGED_BY, PREFIX

log = logging.getLogger(__name__)

CLASS_ANNOTATION = "kubernetes.io/ingress.class"
#: a refused Ingress looks again this often (the other claim may be gone)
RECHECK_SECONDS = 30.0


class IngressSyncer(DownSyncer):
    kind = "ingresses"
    vres = hres = INGRESSES

    def setup(self) -> None:
        super().setup()
        self._cannot_list = False  # the host does not let us read other namespaces' Ingresses

    async def reconcile(self, key: str) -> None:
        ns, name = split_key(key)
        vobj = self.vinf.get(name, ns or "")
        hname, hns = self.host_name(name, ns or ""), self.ctx.host_namespace
        hobj = self.hinf.get(hname, hns)
        if hobj is not None and not self.tr.owns(hobj, ns, name):
            hobj = None
        if vobj is not None and not deleting(vobj) and not self._refusal(vobj):
            taken = await self._claimed_elsewhere(vobj, hobj)
            if taken:
                if hobj is not None:
                    await delete_ignore_missing(self.ctx.host, INGRESSES, hname, hns)
                self.refusals.refused(vobj, errors.Conflict(taken))
                self.queue.add_after(key, RECHECK_SECONDS)
                return
            if hobj is None and ingresshosts.claims(vobj):
                # two tenants may create one name at once, each before it sees the other's
                # copy: one look later, the younger copy gives way
                self.queue.add_after(key, RECHECK_SECONDS)
        await super().reconcile(key)

    async def _claimed_elsewhere(self, vobj: Obj, hobj: Obj | None) -> str:
        """Why a claim of ``vobj`` is another Ingress's on the host ("" when none is). A name
        our host copy ``hobj`` already serves is kept against younger Ingresses (same age: the
        first by namespace/name keeps it); a name it does not serve yet (a new Ingress, or an
        edit adding a host) is refused while any other Ingress serves an overlapping one — so
        an old Ingress cannot be edited to take a younger one's host."""
        mine = ingresshosts.claims(vobj)
        if not mine or self._cannot_list:
            return ""
        try:
            every = (await self.ctx.host.list(INGRESSES)).get("items") or []
        except errors.Forbidden as e:
            self._cannot_list = True
            log.warning("%s: cannot list the host's Ingresses (%s): a host name another "
                        "tenant claims is not checked", self.ctx.name, e)
            return ""
        held = ingresshosts.claims(hobj) if hobj is not None else {}
        hmeta = (hobj or {}).get("metadata") or {}
        my_key = (hmeta.get("creationTimestamp") or "~", self.ctx.host_namespace,
                  hmeta.get("name") or "~")
        others = []
        for other in every:
            meta = other.get("metadata") or {}
            if (meta.get("labels") or {}).get(LABEL_MANAGED_BY) == self.tr.vc:
                continue  # this virtual cluster's own: the tenant's business, as upstream
            others.append((ingresshosts.age_key(other), ingresshosts.claims(other)))
        hit = ingresshosts.taken(mine, held, my_key, others)
        if hit is None:
            return ""
        name, where, theirs = hit
        over = "" if theirs == name else f" (it overlaps {ingresshosts.describe(theirs)})"
        return (f"{where}: {ingresshosts.describe(name)} is already claimed by another "
                f"Ingress on the host{over} (another virtual cluster's or the host's "
                "own); not synced")

    def _annotations(self, vobj: Obj) -> ingressannotations.Judgement:
        meta = vobj.get("metadata") or {}
        ns = meta.get("namespace") or ""
        return ingressannotations.judge(
            meta.get("annotations") or {}, ns, host_namespace=self.ctx.host_namespace,
            secret_name=lambda n: self.tr.host_name(n, ns),
            service_name=lambda n: self.tr.host_name(n, ns, limit=DNS_LABEL_MAX))

    def _refusal(self, vobj: Obj) -> str:
        """Why the syncer's own checks keep ``vobj`` from the host ("" when they do not)."""
        judged = self._annotations(vobj)
        if judged.refused:
            return judged.message()
        spec = vobj.get("spec") or {}
        for i, rule in enumerate(spec.get("rules") or ()):
            host = str((rule or {}).get("host") or "") if isinstance(rule, dict) else ""
            problems = host_problems(host) if host else []
            if problems:
                return f"spec.rules[{i}].host: {host!r}: {problems[0]}; not synced to the host"
        for name, where in sorted(ingresshosts.claims(vobj).items()):
            broad = ingresshosts.too_broad(name)
            if broad:
                return f"{where}: {broad}; not synced to the host"
        if self.ctx.values.isolation.enabled:
            where = ingresshosts.claims(vobj).get(ingresshosts.CATCH_ALL)
            if where:
                return (f"{where}: an Ingress that catches every host (a rule without host, or "
                        "spec.defaultBackend) is not allowed in an isolated virtual cluster: the "
                        "host's ingress controller serves every tenant; name the hosts in "
                        "spec.rules[].host; not synced to the host")
        return ""

    def wanted(self, vobj: Obj) -> bool:
        why = self._refusal(vobj)
        if why:
            self.ctx.recorder.event(vobj, "Warning", REASON_REJECTED, why)
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
        meta = self.tr.host_metadata(vobj)
        kept = self._annotations(vobj).annotations  # translated; refused ones never get here
        meta["annotations"] = {k: v if k.startswith(PREFIX) else kept.get(k, v)
                               for k, v in (meta.get("annotations") or {}).items()}
        return {"apiVersion": INGRESSES.api_version, "kind": "Ingress", "metadata": meta,
                "spec": spec}

    async def sync_up(self, vobj: Obj, hobj: Obj) -> None:
        hlb = (hobj.get("status") or {}).get("loadBalancer") or {}
        if hlb != ((vobj.get("status") or {}).get("loadBalancer") or {}):
            await update_status(self.ctx.virtual, INGRESSES, vobj,
                                {**(vobj.get("status") or {}), "loadBalancer": hlb})
