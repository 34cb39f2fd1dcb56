"""Namespace lifecycle: when a namespace is deleted, delete everything in it, wait until it is
empty, then drop the ``kubernetes`` finalizer through ``namespaces/NAME/finalize`` so the API
server can remove the namespace (Kubernetes' namespaced_resources_deleter, in short)."""

from __future__ import annotations

import copy
import logging

from vkube.api import errors
from vkube.api.meta import rfc3339
from vkube.client.client import APIResource
from vkube.client.resources import NAMESPACES
from vkube.controllers.runtime import Controller, Obj
from vkube.controllers.vanished import quiet_when_vanished

log = logging.getLogger(__name__)

FINALIZER = "kubernetes"
_SKIP = {("", "events"), ("events.k8s.io", "events")}  # deleted last, after all else


class NamespaceController(Controller):
    name = "namespace-controller"
    workers = 2
    requeue_seconds = 1.0  # while content remains

    def setup(self) -> None:
        self.namespaces = self.mgr.informer(NAMESPACES)
        self.namespaces.add_handler(self._on_ns)

    def _on_ns(self, typ: str, obj: Obj, old: Obj | None) -> None:
        if typ != "DELETED" and (obj.get("metadata") or {}).get("deletionTimestamp"):
            self.enqueue(obj)

    @quiet_when_vanished("namespaces")
    async def reconcile(self, key: str) -> float | None:
        ns = self.namespaces.get(key)
        if ns is None or not ns["metadata"].get("deletionTimestamp"):
            return None
        if FINALIZER not in ((ns.get("spec") or {}).get("finalizers") or []):
            return None
        resources = [r for r in await self.client.discover()
                     if r.resource.namespaced and {"list", "delete"} <= set(r.verbs)]
        remaining, finalizers, failures = await self._delete_content(key, resources)
        await self._set_conditions(ns, remaining, finalizers, failures)
        if remaining or failures:
            return self.requeue_seconds
        fresh = copy.deepcopy(ns)
        fresh["spec"]["finalizers"] = [f for f in fresh["spec"]["finalizers"] if f != FINALIZER]
        try:
            await self.client.update(NAMESPACES, fresh, subresource="finalize")
        except errors.NotFound:
            return None
        return None

    async def _delete_content(self, ns: str, resources: list[APIResource]
                              ) -> tuple[dict[str, int], dict[str, int], list[str]]:
        """Delete every object; report what remains (per resource) and which finalizers hold it."""
        remaining: dict[str, int] = {}
        finalizers: dict[str, int] = {}
        failures: list[str] = []
        ordered = [r for r in resources if (r.resource.group, r.resource.plural) not in _SKIP]
        ordered += [r for r in resources if (r.resource.group, r.resource.plural) in _SKIP]
        for api in ordered:
            res = api.resource
            gr = f"{res.plural}.{res.group}" if res.group else res.plural
            try:
                items = (await self.client.list_all(res, namespace=ns)).get("items") or []
            except errors.NotFound:
                continue
            except errors.StatusError as e:
                failures.append(f"{gr}: {e}")
                continue
            if not items:
                continue
            if any(not i["metadata"].get("deletionTimestamp") for i in items):
                await self._delete_all(res, ns, items, "deletecollection" in api.verbs, failures)
            try:
                items = (await self.client.list_all(res, namespace=ns)).get("items") or []
            except errors.StatusError as e:
                failures.append(f"{gr}: {e}")
                continue
            if items:
                remaining[gr] = len(items)
                for it in items:
                    for f in it["metadata"].get("finalizers") or []:
                        finalizers[f] = finalizers.get(f, 0) + 1
        return remaining, finalizers, failures

    async def _delete_all(self, res, ns: str, items: list[Obj], collection: bool,
                          failures: list[str]) -> None:
        if collection:
            try:
                await self.client.request("DELETE", res.path(ns), body={
                    "kind": "DeleteOptions", "apiVersion": "v1",
                    "propagationPolicy": "Background"})
                return
            except (errors.MethodNotAllowed, errors.NotFound):
                pass  # fall back to one by one
            except errors.StatusError as e:
                failures.append(f"{res.plural}: {e}")
                return
        for it in items:
            if it["metadata"].get("deletionTimestamp"):
                continue
            try:
                await self.client.delete(res, it["metadata"]["name"], namespace=ns,
                                         propagation_policy="Background")
            except errors.NotFound:
                pass
            except errors.StatusError as e:
                failures.append(f"{res.plural}/{it['metadata']['name']}: {e}")

    async def _set_conditions(self, ns: Obj, remaining: dict[str, int],
                              finalizers: dict[str, int], failures: list[str]) -> None:
        now = rfc3339(self.mgr.clock())

        def cond(typ: str, true: bool, reason_t: str, msg_t: str, reason_f: str,
                 msg_f: str) -> Obj:
            return {"type": typ, "status": "True" if true else "False",
                    "reason": reason_t if true else reason_f,
                    "message": msg_t if true else msg_f}

        rem = ", ".join(f"{k} has {v} resource instances" for k, v in sorted(remaining.items()))
        fin = ", ".join(f"{k} in {v} resource instances" for k, v in sorted(finalizers.items()))
        wanted = [
            cond("NamespaceDeletionDiscoveryFailure", False, "", "", "ResourcesDiscovered",
                 "All resources successfully discovered"),
            cond("NamespaceDeletionGroupVersionParsingFailure", False, "", "",
                 "ParsedGroupVersions", "All legacy kube types successfully parsed"),
            cond("NamespaceDeletionContentFailure", bool(failures), "ContentDeletionFailed",
                 "Failed to delete all resource types, " + "; ".join(failures),
                 "ContentDeleted", "All content successfully deleted, may be waiting on "
                 "finalization"),
            cond("NamespaceContentRemaining", bool(remaining), "SomeResourcesRemain",
                 f"Some resources are remaining: {rem}", "ContentRemoved",
                 "All content successfully removed"),
            cond("NamespaceFinalizersRemaining", bool(finalizers), "SomeFinalizersRemain",
                 f"Some content in the namespace has finalizers remaining: {fin}",
                 "ContentHasNoFinalizers", "All content-preserving finalizers finished"),
        ]
        status = ns.get("status") or {}
        old = {c["type"]: c for c in status.get("conditions") or []}
        conds = []
        for c in wanted:
            prev = old.get(c["type"])
            same = prev is not None and all(prev.get(k) == c[k] for k in ("status", "reason",
                                                                            "message"))
            c["lastTransitionTime"] = prev.get("lastTransitionTime", now) if same and prev else now
            conds.append(c)
        if status.get("phase") == "Terminating" and [
                {k: c.get(k) for k in ("type", "status", "reason", "message")}
                for c in status.get("conditions") or []] == [
                {k: c[k] for k in ("type", "status", "reason", "message")} for c in conds]:
            return
        new = copy.deepcopy(ns)
        new["status"] = dict(status, phase="Terminating", conditions=conds)
        try:
            await self.client.update(NAMESPACES, new, subresource="status")
        except (errors.Conflict, errors.NotFound):
            pass  # a newer version is on its way through the informer
