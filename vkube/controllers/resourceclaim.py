"""The ``resourceclaim`` controller of kube-controller-manager (dynamic resource allocation):

- for each pod entry naming a ``resourceClaimTemplateName`` it creates the pod's own claim
  from the template (``<pod>-<entry>-<random>``, owned by the pod, annotated
  ``resource.kubernetes.io/pod-claim-name``) and records it in the pod's
  ``status.resourceClaimStatuses``;
- it drops pods that are gone or finished from a claim's ``status.reservedFor`` and, once no
  consumer is left, deallocates the claim (``status.allocation`` removed) — and deletes a claim
  generated for a pod once that pod is done with it.
"""

from __future__ import annotations

from vkube.api import errors
from vkube.api.meta import Obj
from vkube.client.resources import PODS, RESOURCECLAIMS, RESOURCECLAIMTEMPLATES
from vkube.controllers.runtime import Controller

__all__ = ["ResourceClaimController", "POD_CLAIM_NAME"]

POD_CLAIM_NAME = "resource.kubernetes.io/pod-claim-name"


def _done(pod: Obj | None) -> bool:
    return pod is None or (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed") \
        or bool(pod["metadata"].get("deletionTimestamp"))


class ResourceClaimController(Controller):
    name = "resourceclaim-controller"
    workers = 1

    def setup(self) -> None:
        self.pods = self.mgr.informer(PODS)
        self.claims = self.mgr.informer(RESOURCECLAIMS)
        self.templates = self.mgr.informer(RESOURCECLAIMTEMPLATES)
        self.claims.add_index("owner", lambda c: [r["uid"] for r in c["metadata"].get("ownerReferences") or ()
                                                  if r.get("kind") == "Pod" and r.get("uid")])
        self.pods.add_handler(self._on_pod)
        self.claims.add_handler(lambda typ, obj, old: self.queue.add("claim/" + _key(obj)))
        self.templates.add_handler(self._on_template)

    def _on_pod(self, typ: str, pod: Obj, old: Obj | None) -> None:
        if (pod.get("spec") or {}).get("resourceClaims"):
            self.queue.add("pod/" + _key(pod))
        for claim in self.claims.by_index("owner", pod["metadata"].get("uid", "")):
            self.queue.add("claim/" + _key(claim))
        for claim in self.claims.list(pod["metadata"].get("namespace")):
            if any(r.get("uid") == pod["metadata"].get("uid") for r in (claim.get("status") or {}).get("reservedFor") or ()):
                self.queue.add("claim/" + _key(claim))

    def _on_template(self, typ: str, tmpl: Obj, old: Obj | None) -> None:
        ns = tmpl["metadata"].get("namespace")
        for pod in self.pods.list(ns):
            if any(e.get("resourceClaimTemplateName") == tmpl["metadata"]["name"]
                   for e in (pod.get("spec") or {}).get("resourceClaims") or ()):
                self.queue.add("pod/" + _key(pod))

    async def reconcile(self, key: str) -> float | None:
        what, _, rest = key.partition("/")
        ns, _, name = rest.partition("/")
        if what == "pod":
            return await self._sync_pod(ns, name)
        return await self._sync_claim(ns, name)

    async def _sync_pod(self, ns: str, name: str) -> float | None:
        pod = self.pods.get(name, ns)
        if _done(pod):
            return None
        assert pod is not None
        statuses = list((pod.get("status") or {}).get("resourceClaimStatuses") or ())
        recorded = {s.get("name") for s in statuses}
        changed = False
        for entry in (pod.get("spec") or {}).get("resourceClaims") or ():
            tmpl_name = entry.get("resourceClaimTemplateName")
            if not tmpl_name or entry.get("name") in recorded:
                continue
            claim = self._existing(pod, entry["name"])
            if claim is None:
                tmpl = self.templates.get(tmpl_name, ns)
                if tmpl is None:
                    continue  # waits: the template's arrival enqueues the pod again
                claim = await self.client.create(RESOURCECLAIMS, _claim_from(pod, entry["name"], tmpl), namespace=ns)
            statuses.append({"name": entry["name"], "resourceClaimName": claim["metadata"]["name"]})
            changed = True
        if changed:
            try:
                await self.client.patch(PODS, name, {"status": {"resourceClaimStatuses": statuses}},
                                        namespace=ns, subresource="status")
            except errors.NotFound:
                pass
        return None

    def _existing(self, pod: Obj, entry: str) -> Obj | None:
        for claim in self.claims.by_index("owner", pod["metadata"].get("uid", "")):
            if (claim["metadata"].get("annotations") or {}).get(POD_CLAIM_NAME) == entry:
                return claim
        return None

    async def _sync_claim(self, ns: str, name: str) -> float | None:
        claim = self.claims.get(name, ns)
        if claim is None:
            return None
        status = claim.get("status") or {}
        reserved = list(status.get("reservedFor") or ())
        valid = []
        for ref in reserved:
            pod = self.pods.get(ref.get("name", ""), ns) if ref.get("resource") == "pods" else None
            if ref.get("resource") != "pods" or (pod is not None and pod["metadata"].get("uid") == ref.get("uid")
                                                 and not _done(pod)):
                valid.append(ref)
        owner = next((r for r in claim["metadata"].get("ownerReferences") or ()
                      if r.get("kind") == "Pod" and r.get("controller")), None)
        if owner is not None and not valid:
            pod = self.pods.get(owner.get("name", ""), ns)
            if pod is None or pod["metadata"].get("uid") != owner.get("uid") or _done(pod):
                try:  # the pod it was made for is done with it
                    await self.client.delete(RESOURCECLAIMS, name, namespace=ns)
                except errors.NotFound:
                    pass
                return None
        if valid == reserved:
            return None
        new_status = {**status, "reservedFor": valid}
        if not valid:
            new_status.pop("reservedFor")
            new_status.pop("allocation", None)  # no consumer left: deallocate
        try:
            await self.client.update(RESOURCECLAIMS, {**claim, "status": new_status}, subresource="status")
        except (errors.Conflict, errors.NotFound):
            pass
        return None


def _key(obj: Obj) -> str:
    return f'{obj["metadata"].get("namespace", "")}/{obj["metadata"]["name"]}'


def _claim_from(pod: Obj, entry: str, tmpl: Obj) -> Obj:
    tmeta = ((tmpl.get("spec") or {}).get("metadata")) or {}
    annotations = {**(tmeta.get("annotations") or {}), POD_CLAIM_NAME: entry}
    meta = pod["metadata"]
    return {"apiVersion": "resource.k8s.io/v1", "kind": "ResourceClaim",
            "metadata": {"generateName": f"{meta['name']}-{entry}-"[:57], "namespace": meta["namespace"],
                         "labels": dict(tmeta.get("labels") or {}), "annotations": annotations,
                         "ownerReferences": [{"apiVersion": "v1", "kind": "Pod", "name": meta["name"],
                                              "uid": meta.get("uid", ""), "controller": True,
                                              "blockOwnerDeletion": True}]},
            "spec": (tmpl.get("spec") or {}).get("spec") or {}}
