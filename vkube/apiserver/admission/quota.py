"""ResourceQuota (``plugin/pkg/admission/resourcequota``): a create (or a growing update of a
service or claim) is charged against every quota of its namespace whose scopes select it; if
any would pass ``status.hard`` the request is refused with upstream's ``exceeded quota`` text,
otherwise ``status.used`` of each charged quota is raised at once (compare-and-swap), so a burst
of creates cannot overrun the limit before the quota controller recounts."""

from __future__ import annotations

import time

import asyncio
from fractions import Fraction

from vkube.api import errors, quota
from vkube.api.forbidden import forbidden
from vkube.api.jsonvalue import clone
from vkube.api.meta import Obj
from vkube.apiserver.context import AdmissionRequest, Context
from vkube.apiserver.request import internal_context

#: resources every container must set once a quota limits them (backward compatibility)
_MUST_SPECIFY = ("cpu", "memory", "requests.cpu", "requests.memory", "limits.cpu", "limits.memory")
_RETRIES = 20


def _container_usage(c: Obj) -> set[str]:
    res = c.get("resources") or {}
    names = set()
    for k in (res.get("requests") or {}):
        names.add("requests." + k)
        names.add(k)
    for k in (res.get("limits") or {}):
        names.add("limits." + k)
    return names


def must_specify(pod: Obj, required: set[str]) -> str | None:
    """``podEvaluator.Constraints``: containers lacking a cpu/memory figure a quota limits."""
    wanted = required & set(_MUST_SPECIFY)
    if not wanted:
        return None
    spec = pod.get("spec") or {}
    missing: dict[str, set[str]] = {}
    for c in [*(spec.get("containers") or []), *(spec.get("initContainers") or [])]:
        for name in wanted - _container_usage(c):
            missing.setdefault(name, set()).add(str(c.get("name", "")))
    if not missing:
        return None
    return "must specify " + "; ".join(f"{r} for: {','.join(sorted(missing[r]))}" for r in sorted(missing))


#: how long an empty live lookup of a namespace's quotas stands (upstream's LRU TTL)
_LIVE_LOOKUP_TTL = 30.0


class ResourceQuota:
    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        #: namespace → when a live lookup last found it without quotas
        self._empty_seen: dict[str, float] = {}

    def _delta(self, req: AdmissionRequest) -> dict[str, Fraction] | None:
        group, resource = req.spec.group, req.spec.plural
        if req.subresource or req.obj is None:
            return None
        if req.operation == "CREATE":
            if (group, resource) == ("", "pods") and not quota.is_pod_active(req.obj):
                return None
            return quota.usage(group, resource, req.obj)
        if req.operation == "UPDATE" and req.old is not None and (group, resource) in (
                ("", "services"), ("", "persistentvolumeclaims")):
            diff = quota.subtract(quota.usage(group, resource, req.obj), quota.usage(group, resource, req.old))
            return {k: v for k, v in diff.items() if v > 0}
        return None

    async def validate(self, ctx: Context, req: AdmissionRequest) -> None:
        if not req.namespace or not req.spec.namespaced:
            return
        storage, cache = ctx.storage_for("", "ResourceQuota"), ctx.cache_for("", "ResourceQuota")
        if storage is None or cache is None:
            return
        if cache.synced and not await cache.list(req.request, req.namespace) \
                and not self._live_lookup_due(req.namespace, []):
            return  # no quota here (the same answer as below, before the usage is summed)
        delta = self._delta(req)
        if not delta:
            return
        async with self.lock:
            for attempt in range(_RETRIES):
                # the informer's copy first (as upstream's quota accessor); after a lost race
                # the store's own, which the compare-and-swap below was checked against
                quotas = [clone(q) for q in await cache.list(req.request, req.namespace)] if attempt == 0 else []
                if attempt > 0 or self._live_lookup_due(req.namespace or "", quotas):
                    # a namespace the cache shows without quotas (or with one whose status it
                    # has not seen yet) is looked up live, as upstream's quota accessor does
                    # (its live-lookup LRU keeps an empty answer 30 s): a quota created a
                    # moment before is enforced on the next request
                    quotas = (await storage.list(req.request, req.namespace)).items
                    if not quotas:
                        self._empty_seen[req.namespace or ""] = time.monotonic()
                charged = self._check(req, quotas, delta)
                if not charged or req.dry_run:
                    return
                try:
                    for q, requested in charged:
                        await self._charge(storage, req, q, requested)
                    return
                except errors.Conflict:
                    continue  # the controller or another server wrote: re-read and re-check
            raise errors.Conflict(f"Operation cannot be fulfilled on resourcequotas: too many conflicts "
                                  f"charging {req.spec.plural} in namespace {req.namespace}")

    def _live_lookup_due(self, namespace: str, cached: list[Obj]) -> bool:
        if any(not (q.get("status") or {}).get("hard") for q in cached):
            return True
        if cached:
            return False
        at = self._empty_seen.get(namespace)
        return at is None or time.monotonic() - at > _LIVE_LOOKUP_TTL

    def _check(self, req: AdmissionRequest, quotas: list[Obj], delta: dict[str, Fraction]
               ) -> list[tuple[Obj, dict[str, Fraction]]]:
        group, resource = req.spec.group, req.spec.plural
        charged = []
        for q in sorted(quotas, key=lambda q: q["metadata"]["name"]):
            if not quota.matches_scopes(q, group, resource, req.obj or {}):
                continue
            name = q["metadata"]["name"]
            spec_hard = (q.get("spec") or {}).get("hard") or {}
            status = q.get("status") or {}
            tracked = [k for k in delta if quota.covers(spec_hard, q, k)]
            if (group, resource) == ("", "pods") and req.operation == "CREATE":
                tracked_all = {k for k in spec_hard if quota.covers(spec_hard, q, k)}
                problem = must_specify(req.obj or {}, tracked_all)
                if problem:
                    raise forbidden(req.spec.plural, req.name, f"failed quota: {name}: {problem}",
                                    group=req.spec.group)
            if not tracked:
                continue
            hard_status = status.get("hard") or {}
            unknown = sorted(k for k in tracked if k not in hard_status)
            if unknown:
                raise forbidden(req.spec.plural, req.name,
                                f"status unknown for quota: {name}, resources: {','.join(unknown)}",
                                group=req.spec.group)
            hard = quota.parse_list(hard_status)
            used = quota.parse_list(status.get("used"))
            requested = {k: delta[k] for k in tracked}
            over = quota.exceeded(quota.add(used, requested), hard)
            if over:
                raise forbidden(req.spec.plural, req.name, (
                    f"exceeded quota: {name}, requested: {quota.pretty(requested, over)}, "
                    f"used: {quota.pretty(used, over, status.get('used') or {})}, "
                    f"limited: {quota.pretty(hard, over, hard_status)}"), group=req.spec.group)
            charged.append((q, requested))
        return charged

    async def _charge(self, storage: object, req: AdmissionRequest, q: Obj, requested: dict[str, Fraction]) -> None:
        status = q.setdefault("status", {})
        used = quota.add(quota.parse_list(status.get("used")), requested)
        new_used = dict(status.get("used") or {})
        new_used.update(quota.to_list({k: used[k] for k in requested}))
        status["used"] = new_used
        rc = internal_context("update", resource="resourcequotas", version="v1", namespace=req.namespace or "",
                              name=q["metadata"]["name"], subresource="status",
                              field_manager="resourcequota-admission")
        await storage.update(rc, req.namespace, q["metadata"]["name"], q, subresource="status")  # type: ignore[attr-defined]
