"""EventRecorder: core/v1 Events about objects, written in the background like client-go's
recorder, so a controller never waits on (or fails because of) an event.

As client-go's EventCorrelator does:
- repeats of the same event (same object, type, reason, message, source) bump ``count`` and
  ``lastTimestamp`` on the existing Event instead of creating a new one;
- past 10 distinct messages for one object, type and reason within 10 minutes, further ones are
  folded into one "(combined from similar events): …" Event (a ReplicaSet creating 1,000 pods
  writes a handful of Events, not 1,000);
- a spam filter lets each object burst 25 events, then one per 5 minutes; the rest are
  dropped before they queue (events are best effort, the API's capacity is not).
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
from vkube.api.meta import Obj, rfc3339, utcnow
from vkube.client.client import Client
from vkube.client.resources import EVENTS

log = logging.getLogger(__name__)

_CACHE_SIZE = 4096
SPAM_BURST = 25  # client-go's defaultSpamBurst
SPAM_QPS = 1 / 300  # client-go's defaultSpamQPS: one more event per object every 5 minutes
AGGREGATE_MAX = 10  # client-go's defaultAggregateMaxEvents …
AGGREGATE_SECONDS = 600.0  # … within defaultAggregateIntervalInSeconds
COMBINED = "(combined from similar events): "


_Item = tuple[Obj, str, str, str, dt.datetime, bool]
#: events written at once: one writer per shard of involved objects, so one object's events
#: stay in order (a repeat's patch follows its create) while a burst of 1,000 pods' events
#: is not written one round trip at a time (the API server's group commit shares fsyncs)
WRITERS = 8


class EventRecorder:
    def __init__(self, client: Client, component: str, *,
                 clock: Callable[[], dt.datetime] | None = None, writers: int = WRITERS) -> None:
        self.client = client
        self.component = component
        self.clock = clock or utcnow
        self._writers = max(1, writers)
        # a shard's queue is made with its first event: every controller has a recorder and
        # most never record, and eight idle queues each were ~20 KiB per controller (issue 18)
        self._queues: list[asyncio.Queue[_Item] | None] = [None] * self._writers
        self._tasks: list[asyncio.Task[None] | None] = [None] * self._writers
        # aggregation key -> (event namespace, event name, count); bounded like client-go's LRU
        self._last_ns = 0
        self._seen: OrderedDict[tuple[str, ...], tuple[str, str, int]] = OrderedDict()
        # (object, type, reason) -> (distinct messages lately, when last seen)
        self._similar: OrderedDict[tuple[str, ...], tuple[set[str], dt.datetime]] = OrderedDict()
        self._tokens: OrderedDict[tuple[str, ...], tuple[float, dt.datetime]] = OrderedDict()

    def event(self, obj: Obj, type: str, reason: str, message: str) -> None:
        """Record ``type`` (Normal|Warning) ``reason``: ``message`` about ``obj``; returns at once."""
        now = self.clock()
        meta = obj.get("metadata") or {}
        who = (obj.get("kind", ""), obj.get("apiVersion", ""), meta.get("namespace") or "",
               meta.get("name", ""), meta.get("uid", ""))
        message, combined = self._aggregate(who + (type, reason), message, now)
        if not self._take_token(who, now):
            return
        shard = hash(who) % self._writers
        queue = self._queues[shard]
        if queue is None:
            queue = self._queues[shard] = asyncio.Queue()
        queue.put_nowait((obj, type, reason, message, now, combined))
        task = self._tasks[shard]
        if task is None or task.done():  # a writer runs while its shard has events, then ends
            self._tasks[shard] = asyncio.get_running_loop().create_task(self._drain(queue))

    def _aggregate(self, key: tuple[str, ...], message: str,
                   now: dt.datetime) -> tuple[str, bool]:
        """The message to record, and whether it is the combined event of ``key``."""
        seen = self._similar.get(key)
        messages = set() if seen is None or (
            (now - seen[1]).total_seconds() > AGGREGATE_SECONDS) else seen[0]
        messages.add(message)
        self._lru(self._similar, key, (messages, now))
        if len(messages) < AGGREGATE_MAX:
            return message, False
        messages.pop()  # stay at the limit: every further new message is combined too
        return COMBINED + message, True

    def _take_token(self, who: tuple[str, ...], now: dt.datetime) -> bool:
        """The spam filter: a token bucket per object (burst 25, refill 1 per 5 minutes)."""
        tokens, last = self._tokens.get(who, (float(SPAM_BURST), now))
        tokens = min(float(SPAM_BURST),
                     tokens + max((now - last).total_seconds(), 0.0) * SPAM_QPS)
        ok = tokens >= 1.0
        self._lru(self._tokens, who, (tokens - 1.0 if ok else tokens, now))
        return ok

    @staticmethod
    def _lru(cache: OrderedDict[Any, Any], key: Any, value: Any) -> None:
        cache[key] = value
        cache.move_to_end(key)
        while len(cache) > _CACHE_SIZE:
            cache.popitem(last=False)

    async def flush(self) -> None:
        """Wait until every recorded event has been written (or has failed)."""
        for queue, task in zip(self._queues, self._tasks):
            if queue is not None and task is not None and not task.done():
                await queue.join()

    async def close(self) -> None:
        tasks = [t for t in self._tasks if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks = [None] * self._writers

    async def _drain(self, queue: asyncio.Queue[_Item]) -> None:
        while not queue.empty():
            item = queue.get_nowait()
            try:
                await self._write(*item)
            except asyncio.CancelledError:
                raise
            except Exception as e:  # events are best effort
                log.warning("event %s/%s not recorded: %s", item[2], item[3], e)
            finally:
                queue.task_done()

    async def _write(self, obj: Obj, type: str, reason: str, message: str,
                     now: dt.datetime, combined: bool = False) -> None:
        meta = obj.get("metadata") or {}
        ns = meta.get("namespace") or "default"
        involved = {"kind": obj.get("kind", ""), "apiVersion": obj.get("apiVersion", ""),
                    "name": meta.get("name", ""), "uid": meta.get("uid", ""),
                    "resourceVersion": meta.get("resourceVersion", "")}
        if meta.get("namespace"):
            involved["namespace"] = meta["namespace"]
        agg = (involved["kind"], involved["apiVersion"], ns, involved["name"], involved["uid"],
               type, reason, COMBINED if combined else message)
        seen = self._seen.get(agg)
        if seen is not None:
            ev_ns, ev_name, count = seen
            patch: Obj = {"count": count + 1, "lastTimestamp": rfc3339(now)}
            if combined:
                patch["message"] = message
            try:
                await self.client.patch(EVENTS, ev_name, patch, namespace=ev_ns)
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
            "firstTimestamp": rfc3339(now), "lastTimestamp": rfc3339(now), "count": 1,
            "reportingComponent": self.component, "reportingInstance": self.component,
        })
        self._remember(agg, (ns, name, 1))

    def _remember(self, agg: tuple[str, ...], val: tuple[str, str, int]) -> None:
        self._lru(self._seen, agg, val)
