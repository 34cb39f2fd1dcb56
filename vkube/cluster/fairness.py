"""Fair sharing of one shared-mode process between its virtual clusters, in the spirit of API
Priority and Fairness: a fixed number of seats (requests executing at once) for the whole
process, at most ``per_cluster`` of them held by any one cluster, and one bounded queue per
cluster served round-robin — so a tenant in a tight loop only ever waits behind itself.

A request that finds its cluster's queue full, or waits longer than ``max_wait``, is refused
the way kube-apiserver's APF filter refuses it: 429, ``Retry-After``, and the text "Too many
requests, please try again later.". Long-running requests (watches, exec/attach/port-forward,
logs) take no seat, as APF releases their seat once the stream is set up.

The seat is taken inside each cluster's own APF filter (``FlowControl.outer_seat``), once APF admitted the
request: APF divides a cluster's seats between its priority levels, this divides the process
between clusters, and a request waiting in one limiter holds no seat of the other."""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict, deque
from collections.abc import AsyncIterator
from dataclasses import dataclass

from vkube.apiserver.apf import SeatRefused


@dataclass(frozen=True)
class FairnessConfig:
    #: requests executing at once across every cluster (kube-apiserver: 600 on big machines;
    #: this is one event loop, so a few dozen keep it busy)
    seats: int = 32
    #: the most seats one cluster may hold at once
    per_cluster: int = 4
    #: requests one cluster may have waiting; more are refused at once
    queue_length: int = 64
    #: a queued request waits at most this long, then is refused
    max_wait: float = 15.0
    #: the Retry-After seconds sent with a refusal
    retry_after: int = 1


class TooManyRequests(SeatRefused):
    """Refused by fairness: the cluster's APF filter answers 429 with ``retry_after``."""

    def __init__(self, cluster: str, retry_after: int) -> None:
        super().__init__(f"too many requests for cluster {cluster!r}")
        self.retry_after = retry_after


class FairQueue:
    """``async with fq.seat(cluster): ...`` around each short request."""

    def __init__(self, config: FairnessConfig | None = None) -> None:
        self.config = config or FairnessConfig()
        self.free = self.config.seats
        self.inflight: dict[str, int] = {}
        self._queues: dict[str, deque[asyncio.Future[None]]] = {}
        #: clusters with someone waiting, in round-robin order
        self._ready: OrderedDict[str, None] = OrderedDict()
        #: refusals per cluster (the metric a platform watches)
        self.rejected: dict[str, int] = {}

    def _can_run(self, cluster: str) -> bool:
        return self.free > 0 and self.inflight.get(cluster, 0) < self.config.per_cluster

    def _take(self, cluster: str) -> None:
        self.free -= 1
        self.inflight[cluster] = self.inflight.get(cluster, 0) + 1

    def _refuse(self, cluster: str) -> TooManyRequests:
        self.rejected[cluster] = self.rejected.get(cluster, 0) + 1
        return TooManyRequests(cluster, self.config.retry_after)

    @contextlib.asynccontextmanager
    async def seat(self, cluster: str) -> AsyncIterator[None]:
        await self._acquire(cluster)
        try:
            yield
        finally:
            self._release(cluster)

    async def _acquire(self, cluster: str) -> None:
        queue = self._queues.get(cluster)
        if not queue and self._can_run(cluster):
            self._take(cluster)
            return
        if queue is None:
            queue = self._queues[cluster] = deque()
        if len(queue) >= self.config.queue_length:
            raise self._refuse(cluster)
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queue.append(fut)
        self._ready[cluster] = None
        try:
            await asyncio.wait_for(asyncio.shield(fut), self.config.max_wait)
        except (TimeoutError, asyncio.CancelledError) as exc:
            if fut.done() and not fut.cancelled():  # granted meanwhile: hand the seat back
                self._release(cluster)
            else:
                fut.cancel()
                with contextlib.suppress(ValueError):
                    queue.remove(fut)
                if not queue:
                    self._ready.pop(cluster, None)
                    self._queues.pop(cluster, None)
            if isinstance(exc, TimeoutError):
                raise self._refuse(cluster) from None
            raise

    def _release(self, cluster: str) -> None:
        self.free += 1
        n = self.inflight.get(cluster, 1) - 1
        if n:
            self.inflight[cluster] = n
        else:
            self.inflight.pop(cluster, None)
        self._dispatch()

    def _dispatch(self) -> None:
        """Hand free seats to waiting clusters, one request per cluster per turn."""
        passed = 0
        while self.free > 0 and self._ready and passed < len(self._ready):
            cluster = next(iter(self._ready))
            self._ready.move_to_end(cluster)
            if self.inflight.get(cluster, 0) >= self.config.per_cluster:
                passed += 1
                continue
            queue = self._queues[cluster]
            fut = queue.popleft()
            if not queue:
                del self._ready[cluster]
                del self._queues[cluster]
            if fut.done():  # cancelled while queued
                continue
            passed = 0
            self._take(cluster)
            fut.set_result(None)


__all__ = ["FairQueue", "FairnessConfig", "TooManyRequests"]
