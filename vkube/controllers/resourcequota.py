"""The quota controller (``pkg/controller/resourcequota``): keeps every ResourceQuota's
``status.hard`` equal to ``spec.hard`` and ``status.used`` equal to what its namespace really
uses, counted with the same arithmetic the ResourceQuota admission plugin charges
(``vkube.api.quota``). Pods, services and claims are watched, so freed quota returns at once;
other object counts are recounted on every quota change and every ``resync`` seconds."""

from __future__ import annotations

from fractions import Fraction

from vkube.api import errors, quota
from vkube.api.quota import count_names
from vkube.client.client import Resource
from vkube.client.resources import ALL, PODS, PVCS, RESOURCEQUOTAS, SERVICES
from vkube.controllers.runtime import Controller, Obj

RESYNC_SECONDS = 30.0
_WATCHED = {("", "pods"): PODS, ("", "services"): SERVICES, ("", "persistentvolumeclaims"): PVCS}


def _resource_of(name: str) -> tuple[str, str] | None:
    """``count/deployments.apps`` → (apps, deployments); the legacy names → core resources."""
    if name.startswith("count/"):
        res, _, group = name[len("count/"):].partition(".")
        return group, res
    for (group, res), legacy in quota.LEGACY_COUNTS.items():
        if legacy == name:
            return group, res
    return None


class ResourceQuotaController(Controller):
    name = "resourcequota-controller"

    def setup(self) -> None:
        self.quotas = self.mgr.informer(RESOURCEQUOTAS)
        self.quotas.add_handler(self.handler)
        self.watched = {gr: self.mgr.informer(res) for gr, res in _WATCHED.items()}
        for inf in self.watched.values():
            inf.add_handler(self._on_object)

    def _on_object(self, typ: str, obj: Obj, old: Obj | None) -> None:
        ns = (obj.get("metadata") or {}).get("namespace")
        for q in self.quotas.list(ns):
            self.enqueue(q)

    async def _objects(self, group: str, resource: str, ns: str) -> list[Obj] | None:
        if (group, resource) in self.watched:
            return self.watched[(group, resource)].list(ns)
        res = next((r for r in ALL if r.group == group and r.plural == resource and r.namespaced), None)
        if res is None and group:  # a custom resource: its group's preferred version
            try:
                doc = await self.client.request("GET", f"/apis/{group}")
                res = Resource(group, doc["preferredVersion"]["version"], resource, True)
            except (errors.StatusError, KeyError, TypeError):
                return None
        if res is None:
            return None
        try:
            return list((await self.client.list_all(res, namespace=ns)).get("items") or [])
        except errors.NotFound:
            return []  # not served (yet): nothing of it exists

    async def used_for(self, q: Obj) -> dict[str, Fraction]:
        ns = q["metadata"]["namespace"]
        hard = (q.get("spec") or {}).get("hard") or {}
        used: dict[str, Fraction] = {}
        groups: set[tuple[str, str]] = set()
        for name in hard:
            gr = _resource_of(name)
            if gr is None:  # compute / storage names are pod or claim usage
                gr = ("", "persistentvolumeclaims") if "storage" in name and "ephemeral" not in name \
                    or name.endswith("persistentvolumeclaims") else ("", "pods")
                if name.startswith("services."):
                    gr = ("", "services")
            groups.add(gr)
        now = self.mgr.clock()
        uncounted: set[str] = set()
        for group, resource in sorted(groups):
            objs = await self._objects(group, resource, ns)
            if objs is None:  # cannot count it: keep what admission charged
                uncounted.update(count_names(group, resource))
                continue
            for obj in objs:
                if (group, resource) == ("", "pods") and not quota.is_pod_active(obj, now):
                    continue
                if not quota.matches_scopes(q, group, resource, obj):
                    continue
                used = quota.add(used, quota.usage(group, resource, obj))
        previous = quota.parse_list((q.get("status") or {}).get("used"))
        return {k: previous.get(k, Fraction(0)) if k in uncounted else used.get(k, Fraction(0)) for k in hard}

    async def reconcile(self, key: str) -> float | None:
        ns, _, name = key.partition("/")
        q = self.quotas.get(name, ns)
        if q is None:
            return None
        hard = (q.get("spec") or {}).get("hard") or {}
        used = await self.used_for(q)
        want = {"hard": dict(hard), "used": quota.to_list(used)}
        status = q.get("status") or {}
        if status.get("hard") != want["hard"] or quota.parse_list(status.get("used")) != quota.parse_list(want["used"]) \
                or set(status.get("used") or {}) != set(want["used"]):
            body = {**q, "status": want}
            try:
                await self.client.update(RESOURCEQUOTAS, body, subresource="status")
            except (errors.Conflict, errors.NotFound):
                return 0.2  # admission charged meanwhile, or the quota went: look again
        return RESYNC_SECONDS
