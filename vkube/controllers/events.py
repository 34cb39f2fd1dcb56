"""EventRecorder: core/v1 Events about objects, written in the background like client-go's
recorder, so a controller never waits on (or fails because of) an event.

Repeats of the same event (same object, type, reason, message, source) bump ``count`` and
``lastTimestamp`` on the existing Event instead of creating a new one, as client-go's
EventCorrelator does.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from vkube.api import errors
from vkube.client.client import Client
from vkube.client.resources import EVENTS

log = logging.getLogger(__name__)

Obj = dict[str, Any]
_CACHE_SIZE = 4096


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _ts(t: dt.datetime) -> str:
    return t.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class EventRecorder:
    def __init__(self, client: Client, component: str, *,
                 clock: Callable[[], dt.datetime] | None = None) -> None:
        self.client = client
        self.component = component
        self.clock = clock or _utcnow
        self._queue: asyncio.Queue[tuple[Obj, str, str, str, dt.datetime]] | None = None
        self._task: asyncio.Task[None] | None = None
        # aggregation key -> (event namespace, event name, count); bounded like client-go's LRU
        self._last_ns = 0
        self._seen: OrderedDict[tuple[str, ...], tuple[str, str, int]] = OrderedDict()

    def event(self, obj: Obj, type: str, reason: str, message: str) -> None:
        """Record ``type`` (Normal|Warning) ``reason``: ``message`` about ``obj``; returns at once."""
        if self._queue is None:
            self._queue = asyncio.Queue()
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._drain())
        self._queue.put_nowait((obj, type, reason, message, self.clock()))

    async def flush(self) -> None:
        """Wait until every recorded event has been written (or has failed)."""
        if self._queue is not None and self._task is not None and not self._task.done():
            await self._queue.join()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _drain(self) -> None:
        assert self._queue is not None
        while True:
            item = await self._queue.get()
            try:
                await self._write(*item)
            except asyncio.CancelledError:
                raise
            except Exception as e:  # events are best effort
                log.warning("event %s/%s not recorded: %s", item[2], item[3], e)
            finally:
                self._queue.task_done()

    async def _write(self, obj: Obj, type: str, reason: str, message: str,
                     now: dt.datetime) -> None:
        meta = obj.get("metadata") or {}
        ns = meta.get("namespace") or "default"
        involved = {"kind": obj.get("kind", ""), "apiVersion": obj.get("apiVersion", ""),
                    "name": meta.get("name", ""), "uid": meta.get("uid", ""),
                    "resourceVersion": meta.get("resourceVersion", "")}
        if meta.get("namespace"):
            involved["namespace"] = meta["namespace"]
        agg = (involved["kind"], involved["apiVersion"], ns, involved["name"], involved["uid"],
               type, reason, message)
        seen = self._seen.get(agg)
        if seen is not None:
            ev_ns, ev_name, count = seen
            try:
                await self.client.patch(EVENTS, ev_name, {
                    "count": count + 1, "lastTimestamp": _ts(now)}, namespace=ev_ns)
                self._remember(agg, (ev_ns, ev_name, count + 1))
                return
            except errors.NotFound:
                pass  # expired or deleted: start a new Event
        # client-go names events NAME.<unix nanos in hex>; keep ours strictly increasing
        self._last_ns = max(self._last_ns + 1, time.time_ns())
        name = f"{involved['name']}.{self._last_ns:x}"
        await self.client.create(EVENTS, {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": name, "namespace": ns},
            "involvedObject": involved, "reason": reason, "message": message, "type": type,
            "source": {"component": self.component},
            "firstTimestamp": _ts(now), "lastTimestamp": _ts(now), "count": 1,
            "reportingComponent": self.component, "reportingInstance": self.component,
        })
        self._remember(agg, (ns, name, 1))

    def _remember(self, agg: tuple[str, ...], val: tuple[str, str, int]) -> None:
        self._seen[agg] = val
        self._seen.move_to_end(agg)
        while len(self._seen) > _CACHE_SIZE:
            self._seen.popitem(last=False)
