"""The admission configuration of one control plane — webhook configurations, admission
policies and their bindings — read once and then followed through the store's watch on the
``/admissionregistration.k8s.io/`` prefix (no polling: a new webhook applies to the very next
request, also when another API server on a shared store wrote it). Like upstream's
``configuration`` package, it hands out the webhooks sorted by configuration name and then by
their order in it, and compiles each object's CEL once per resourceVersion."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from vkube.apiserver.context import Context
from vkube.apiserver.objects import decode
from vkube.store.base import Compacted, StoreClosed, StoreError

__all__ = ["ConfigSource", "PREFIX"]

log = logging.getLogger("vkube.apiserver.admission")

PREFIX = "/admissionregistration.k8s.io/"


class ConfigSource:
    """Objects by plural, plus a cache of what was compiled from each (keyed by store key and
    revision, dropped when the object changes)."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._objects: dict[str, dict[str, Any]] = {}
        self._by_plural: dict[str, list[dict[str, Any]]] | None = None
        self._compiled: dict[tuple[str, str, str], Any] = {}
        self._task: asyncio.Task[None] | None = None
        self.revision = 0
        #: called with (plural, object) for every object read or changed (not for deletions)
        self.listeners: list[Callable[[str, dict[str, Any]], None]] = []

    async def start(self) -> None:
        self.revision = await self._relist()
        self._task = asyncio.get_running_loop().create_task(self._follow(self.revision))
        self.ctx.watch_tasks.add(self._task)
        self._task.add_done_callback(self.ctx.watch_tasks.discard)

    async def _relist(self) -> int:
        res = await self.ctx.store.range(PREFIX)
        self._objects = {kv.key: decode(kv) for kv in res.kvs}
        self._changed()
        for key, obj in self._objects.items():
            self._tell(key, obj)
        return res.revision

    def _tell(self, key: str, obj: dict[str, Any]) -> None:
        plural = key[len(PREFIX):].split("/", 1)[0]
        for listener in self.listeners:
            listener(plural, obj)

    def _changed(self) -> None:
        self._by_plural = None
        live = {_version(o) for o in self._objects.values()}
        self._compiled = {k: v for k, v in self._compiled.items() if k[:2] in live}

    async def _follow(self, revision: int) -> None:
        while True:
            try:
                async for event in self.ctx.watch_fanout().watch(PREFIX, after_revision=revision):
                    revision = event.revision
                    if event.type == "DELETED":
                        self._objects.pop(event.kv.key, None)
                    else:
                        self._objects[event.kv.key] = decode(event.kv)
                    self.revision = revision
                    self._changed()
                    if event.type != "DELETED":
                        self._tell(event.kv.key, self._objects[event.kv.key])
                return
            except Compacted:
                revision = await self._relist()
            except StoreClosed:
                return
            except StoreError:
                log.exception("admission configuration watch failed; re-reading it")
                await asyncio.sleep(0.5)
                revision = await self._relist()

    def objects(self, plural: str) -> list[dict[str, Any]]:
        """Every object of one resource, sorted by name (upstream's order)."""
        if self._by_plural is None:
            by: dict[str, list[dict[str, Any]]] = {}
            for key, obj in self._objects.items():
                by.setdefault(key[len(PREFIX):].split("/", 1)[0], []).append(obj)
            for items in by.values():
                items.sort(key=lambda o: str((o.get("metadata") or {}).get("name", "")))
            self._by_plural = by
        return self._by_plural.get(plural, [])

    def compiled(self, obj: dict[str, Any], part: str, build: Callable[[], Any]) -> Any:
        """``build()`` once per object version and ``part`` (e.g. ``webhooks[0]``)."""
        key = (*_version(obj), part)
        hit = self._compiled.get(key)
        if hit is None:
            hit = self._compiled[key] = build()
        return hit


def _version(obj: dict[str, Any]) -> tuple[str, str]:
    m = obj.get("metadata") or {}
    return str(m.get("uid", "")), str(m.get("resourceVersion", ""))
