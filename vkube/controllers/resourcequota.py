"""The quota controller (``pkg/controller/resourcequota``): keeps every ResourceQuota's
``status.hard`` equal to ``spec.hard`` and ``status.used`` equal to what its namespace really
uses, counted with the same arithmetic the ResourceQuota admission plugin charges
(``vkube.api.quota``). Pods, services and claims are watched, so freed quota returns at once;
other object counts are recounted on every quota change and every ``resync`` seconds.

Admission charges ``status.used`` before the object it admitted reaches any cache, so a recount
from the informers can run behind the charge and hand freed-looking quota to the next request
(two pods past ``count/pods: 1``). As upstream's controller, a recount is therefore driven only
by what can change usage the controller must correct: a quota's ``spec.hard``, an object
deleted or no longer charged (replenishment), and the periodic resync; never by admission's own
``status.used`` writes or by a create (admission charged it). And a recount that would lower
``used`` is confirmed by a live list first, so a lagging cache never releases quota."""

from __future__ import annotations

from collections.abc import Callable
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
        self.quotas.add_handler(self._on_quota)
        self.watched = {gr: self.mgr.informer(res) for gr, res in _WATCHED.items()}
        for gr, inf in self.watched.items():
            inf.add_handler(self._replenish(*gr))

    def _on_quota(self, typ: str, q: Obj, old: Obj | None) -> None:
        """``addQuota``/``updateQuota``: a new quota, a changed ``spec.hard``, or a status that
        does not cover ``spec.hard``. Admission's ``status.used`` charges are not recounts."""
        if typ == "DELETED":
            return
        hard = (q.get("spec") or {}).get("hard") or {}
        status = q.get("status") or {}
        if typ == "ADDED" or old is None or hard != ((old.get("spec") or {}).get("hard") or {}) \
                or status.get("hard") != hard or not set(hard) <= set(status.get("used") or {}):
            self.enqueue(q)

    def _replenish(self, group: str, resource: str) -> Callable[[str, Obj, Obj | None], None]:
        """The replenishment handler for one watched kind: a deletion, or an update that
        changes what the object is charged (a pod turning terminal or resized, a Service
        losing its NodePorts). A create was charged by admission: recounting then could only
        race it."""
        def on_object(typ: str, obj: Obj, old: Obj | None) -> None:
            if typ == "ADDED":
                return
            quotas = self.quotas.list((obj.get("metadata") or {}).get("namespace"))
            if not quotas or (typ == "MODIFIED" and old is not None
                              and not self._charge_changed(group, resource, old, obj)):
                return
            for q in quotas:
                self.enqueue(q)
        return on_object

    def _charge_changed(self, group: str, resource: str, old: Obj, new: Obj) -> bool:
        if (group, resource) == ("", "pods"):
            now = self.mgr.clock()
            if quota.is_pod_active(old, now) != quota.is_pod_active(new, now):
                return True
        return quota.usage(group, resource, old) != quota.usage(group, resource, new)

    async def _objects(self, group: str, resource: str, ns: str, *, live: bool = False
                       ) -> list[Obj] | None:
        if (group, resource) in self.watched and not live:
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

    async def used_for(self, q: Obj, *, live: bool = False) -> dict[str, Fraction]:
        """What ``q``'s namespace uses of each ``spec.hard`` name: from the informers, or
        (``live``) from lists read from the API server now."""
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
            objs = await self._objects(group, resource, ns, live=live)
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
        charged = quota.parse_list((q.get("status") or {}).get("used"))
        if any(used.get(k, Fraction(0)) < v for k, v in charged.items() if k in hard):
            # lower than admission charged: the caches may not show a just-admitted object
            # yet; only what the API server lists now may release quota
            used = await self.used_for(q, live=True)
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
