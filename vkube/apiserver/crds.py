"""Serving CustomResourceDefinitions: what apiextensions-apiserver's naming, establishing and
finalizer controllers do, inside one control plane.

``CRDController`` watches the stored CRDs. For each, it checks its names against everything
else the registry serves in that group (conflicts go into the ``NamesAccepted`` condition and
the CRD is not served), registers one ``ResourceSpec`` per served version in the control
plane's own ``Registry`` plus the schemas in its ``OpenAPI`` (discovery and ``/openapi/v2``/``v3``
follow from those), and maintains ``Established``, ``acceptedNames`` and ``storedVersions``.
Deleting a CRD adds the cleanup finalizer (see ``CRDStrategy.delete_finalizers``): the
controller deletes every object of the kind, then removes the finalizer, then stops serving.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from typing import Any

import orjson
from aiohttp import web

from vkube.api import errors
from vkube.api.crd import CLEANUP_FINALIZER, GROUP, custom_specs
from vkube.api.kinds import Registry, ResourceSpec
from vkube.apiserver.context import Context
from vkube.api.meta import Obj, rfc3339
from vkube.apiserver.request import RequestContext, internal_context

log = logging.getLogger("vkube.apiserver.crds")

__all__ = ["CRDController", "add_deprecation_warning"]

_CLEANUP_POLL = 0.5
_MANAGER = "vkube-apiextensions-controller"


def _crd_context(verb: str, name: str = "", subresource: str = "") -> RequestContext:
    """The controller writes as the API server itself (loopback user), as upstream's does."""
    return internal_context(verb, resource="customresourcedefinitions", group=GROUP, version="v1",
                            name=name, subresource=subresource, field_manager=_MANAGER)


def _cr_context(verb: str, spec: ResourceSpec, namespace: str = "", name: str = "") -> RequestContext:
    return internal_context(verb, resource=spec.plural, group=spec.group, version=spec.version,
                            namespace=namespace, name=name, field_manager=_MANAGER)


def add_deprecation_warning(registry: Registry, info: Any, resp: web.StreamResponse) -> None:
    """A request to a deprecated CRD version gets the version's ``deprecationWarning``."""
    spec = registry.get(info.group, info.version, info.resource)
    warning = getattr(spec.strategy, "deprecation_warning", None) if spec is not None else None
    if warning and not resp.prepared:
        text = '299 - "' + warning.replace("\\", "\\\\").replace('"', '\\"') + '"'
        existing = resp.headers.get("Warning")
        resp.headers["Warning"] = f"{existing}, {text}" if existing else text


def _condition(type_: str, status: str, reason: str, message: str, now: str) -> Obj:
    return {"type": type_, "status": status, "lastTransitionTime": now, "reason": reason, "message": message}


def _set_condition(status: Obj, cond: Obj) -> None:
    conditions = status.setdefault("conditions", [])
    for i, old in enumerate(conditions):
        if old.get("type") == cond["type"]:
            if all(old.get(k) == cond[k] for k in ("status", "reason", "message")):
                return
            conditions[i] = cond
            return
    conditions.append(cond)


def _watch_key(spec: Obj, version: str) -> bytes | None:
    """What decides the objects a watch on ``version`` delivers (None: not served)."""
    ver = next((v for v in spec.get("versions") or () if v.get("name") == version and v.get("served")), None)
    if ver is None:
        return None
    relevant = {k: ver.get(k) for k in ("schema", "subresources", "selectableFields")}
    relevant.update(group=spec.get("group"), names=spec.get("names"), scope=spec.get("scope"))
    return orjson.dumps(relevant, option=orjson.OPT_SORT_KEYS)


class CRDController:
    """Keeps the registry in step with the stored CRDs of one control plane."""

    def __init__(self, ctx: Context, openapi: Any) -> None:
        self.ctx = ctx
        self.openapi = openapi
        spec = ctx.registry.by_kind(GROUP, "CustomResourceDefinition")
        assert spec is not None, "the registry lacks apiextensions.k8s.io/v1"
        self.crds = ctx.storage(spec)
        self._served: dict[str, list[ResourceSpec]] = {}  # CRD name → its registered specs
        self._served_key: dict[str, bytes] = {}
        self._cleanups: dict[str, asyncio.Task[None]] = {}
        self._task: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        """Serve every stored CRD before the server answers (CRDs survive restarts)."""
        revision = await self._resync()
        self._task = asyncio.create_task(self._watch(revision), name="crd-controller")

    async def stop(self) -> None:
        tasks = [t for t in [self._task, *self._cleanups.values()] if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass

    async def _resync(self) -> int:
        result = await self.crds.list(_crd_context("list"), None)
        present = {c["metadata"]["name"] for c in result.items}
        for name in [n for n in self._served if n not in present]:
            self._unserve(name)
        for crd in sorted(result.items, key=lambda c: (c["metadata"].get("creationTimestamp", ""), c["metadata"]["name"])):
            await self.sync(crd)
        return result.resource_version

    async def _watch(self, revision: int) -> None:
        """Follow CRD writes; when the watch ends or fails (compaction, a store going away),
        wait a little, relist and watch again — never a busy loop."""
        delay = 0.0
        while True:
            if delay:
                await asyncio.sleep(delay)
                try:
                    revision = await self._resync()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    log.warning("CRD controller: resync failed: %s", exc)
                    delay = min(delay * 2, 30.0)
                    continue
            try:
                async for kind, crd in self.crds.watch(_crd_context("watch"), None, after_revision=revision):
                    delay = 0.0
                    revision = int(crd["metadata"]["resourceVersion"])
                    if kind == "DELETED":
                        self._unserve(crd["metadata"]["name"])
                        await self._retry_rejected()
                    else:
                        await self.sync(crd)
            except asyncio.CancelledError:
                raise
            except errors.Gone:
                pass
            except Exception as exc:  # keep serving; the relist repairs
                log.warning("CRD controller: watch failed: %s", exc)
            delay = min(max(delay * 2, 0.1), 30.0)

    async def _retry_rejected(self) -> None:
        """A deleted CRD may free names another CRD was refused for."""
        result = await self.crds.list(_crd_context("list"), None)
        for crd in result.items:
            if crd["metadata"]["name"] not in self._served:
                await self.sync(crd)

    # ------------------------------------------------------------------ one CRD
    def _conflicts(self, crd: Obj) -> tuple[str, str] | None:
        spec, name = crd["spec"], crd["metadata"]["name"]
        names = spec["names"]
        mine = {id(s) for s in self._served.get(name, ())}
        others = [s for s in self.ctx.registry.all() if s.group == spec["group"] and id(s) not in mine]
        if any(s.plural == names["plural"] for s in others):
            return "PluralConflict", f'"{names["plural"]}" is already in use'
        if any(s.singular == names.get("singular") for s in others):
            return "SingularConflict", f'"{names.get("singular")}" is already in use'
        taken = {sn for s in others for sn in s.short_names} | {s.plural for s in others}
        clash = [sn for sn in names.get("shortNames") or () if sn in taken]
        if clash:
            return "ShortNamesConflict", f'"{clash[0]}" is already in use'
        if any(s.kind == names["kind"] for s in others):
            return "KindConflict", f'"{names["kind"]}" is already in use'
        if any(s.list_kind == names.get("listKind") for s in others):
            return "ListKindConflict", f'"{names.get("listKind")}" is already in use'
        return None

    async def sync(self, crd: Obj) -> None:
        name = crd["metadata"]["name"]
        now = rfc3339(self.ctx.clock())
        status = copy.deepcopy(crd.get("status") or {})
        conflict = self._conflicts(crd)
        if conflict is not None:
            self._unserve(name)
            reason, message = conflict
            _set_condition(status, _condition("NamesAccepted", "False", reason, message, now))
            _set_condition(status, _condition("Established", "False", "NotAccepted", "not all names are accepted", now))
        else:
            self._serve(crd)
            names = crd["spec"]["names"]
            status["acceptedNames"] = {k: copy.deepcopy(v) for k, v in names.items()}
            _set_condition(status, _condition("NamesAccepted", "True", "NoConflicts", "no conflicts found", now))
            _set_condition(status, _condition("Established", "True", "InitialNamesAccepted",
                                              "the initial names have been accepted", now))
            storage = next(v["name"] for v in crd["spec"]["versions"] if v.get("storage"))
            stored = status.setdefault("storedVersions", [])
            if storage not in stored:
                stored.append(storage)
        terminating = "deletionTimestamp" in crd["metadata"]
        for spec in self._served.get(name, ()):
            spec.strategy.terminating = terminating
        if terminating:
            _set_condition(status, _condition("Terminating", "True", "InstanceDeletionInProgress",
                                              "CustomResource deletion is in progress", now))
        if status != crd.get("status"):
            await self._write_status(crd, status)
        if terminating and CLEANUP_FINALIZER in (crd["metadata"].get("finalizers") or ()):
            if name not in self._cleanups or self._cleanups[name].done():
                self._cleanups[name] = asyncio.create_task(self._cleanup(name), name=f"crd-cleanup-{name}")

    async def _write_status(self, crd: Obj, status: Obj) -> None:
        body = copy.deepcopy(crd)
        body["status"] = status
        try:
            name = crd["metadata"]["name"]
            await self.crds.update(_crd_context("update", name, "status"), None, name, body, subresource="status")
        except (errors.Conflict, errors.NotFound):
            pass  # a newer version is on its way through the watch
        except errors.Invalid as exc:
            log.warning("CRD %s: status not written: %s", crd["metadata"]["name"], exc)

    def _serve(self, crd: Obj) -> None:
        name = crd["metadata"]["name"]
        key = orjson.dumps(crd["spec"], option=orjson.OPT_SORT_KEYS)
        if self._served_key.get(name) == key and name in self._served:
            return
        kept = self._open_watches(name, crd)
        self._unserve(name, notify=False)
        specs = custom_specs(crd)
        for spec in specs:
            closers = kept.get(spec.version)
            if closers is not None:  # this version serves the same objects: its watches stay open
                spec.strategy.watch_closers = closers
            self.ctx.registry.add(spec)
            schema = getattr(spec.strategy, "schema", None)
            self.openapi.add_schema(spec.group, spec.version, spec.kind, schema or
                                    {"type": "object", "x-kubernetes-preserve-unknown-fields": True})
        self._served[name] = specs
        self._served_key[name] = key
        self._notify()

    def _open_watches(self, name: str, crd: Obj) -> dict[str, set[Any]]:
        """The open watches of each served version whose objects a spec change leaves as they
        were (same names, scope, schema, subresources, selectable fields; still served): those
        are handed to the new version's strategy instead of being ended. kube-apiserver tears
        the whole storage down on any spec change (its clients re-list and re-watch); keeping
        watches that nothing invalidates spares every informer of the kind that round trip."""
        old_specs = self._served.get(name) or ()
        if not old_specs:
            return {}
        old = orjson.loads(self._served_key[name])
        kept: dict[str, set[Any]] = {}
        for spec in old_specs:
            if _watch_key(old, spec.version) == _watch_key(crd["spec"], spec.version):
                kept[spec.version] = spec.strategy.watch_closers
                spec.strategy.watch_closers = set()
        return kept

    def _unserve(self, name: str, *, notify: bool = True) -> None:
        specs = self._served.pop(name, None)
        self._served_key.pop(name, None)
        if not specs:
            return
        for spec in specs:
            for close in list(getattr(spec.strategy, "watch_closers", ())):
                close()
            if self.ctx.registry.get(spec.group, spec.version, spec.plural) is spec:
                self.ctx.registry.remove(spec.group, spec.version, spec.plural)
                self.openapi.remove_schema(spec.group, spec.version, spec.kind)
            self.ctx.storages.pop((spec.group, spec.version, spec.plural), None)
        if notify:
            self._notify()

    def _notify(self) -> None:
        for callback in self.ctx.on_registry_change:
            result = callback()
            if asyncio.iscoroutine(result):
                asyncio.ensure_future(result)

    # ------------------------------------------------------------------ deletion
    async def _cleanup(self, name: str) -> None:
        """Delete every object of the CRD (their own finalizers are honoured: we wait), then
        drop the cleanup finalizer, which lets the store remove the CRD. A failure (the store
        briefly unavailable) is retried, never left half done."""
        while True:
            try:
                await self._cleanup_once(name)
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("CRD controller: cleanup of %s failed, retrying: %s", name, exc)
                await asyncio.sleep(1)

    async def _cleanup_once(self, name: str) -> None:
        while True:
            specs = self._served.get(name)
            if not specs:
                break
            storage = self.ctx.storage(specs[0])
            items = (await storage.list(_cr_context("list", specs[0]), None)).items
            if not items:
                break
            for obj in items:
                m = obj["metadata"]
                if "deletionTimestamp" in m:
                    continue
                try:
                    rc = _cr_context("delete", specs[0], m.get("namespace") or "", m["name"])
                    await storage.delete(rc, m.get("namespace"), m["name"])
                except (errors.NotFound, errors.Conflict):
                    pass
            await asyncio.sleep(_CLEANUP_POLL)

        def drop(current: Obj) -> Obj:
            fins = [f for f in current["metadata"].get("finalizers") or () if f != CLEANUP_FINALIZER]
            current["metadata"]["finalizers"] = fins
            return current

        try:
            await self.crds.update_with(_crd_context("update", name), None, name, drop)
        except errors.NotFound:
            pass
