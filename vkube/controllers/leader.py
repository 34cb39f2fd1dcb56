"""Leader election on a coordination.k8s.io/v1 Lease, as client-go's leaderelection does it:
one holder at a time; a holder renews every ``retry_period``; others take over once
``renewTime + leaseDurationSeconds`` has passed; a leader that cannot renew within
``renew_deadline`` stops leading. Writes use resourceVersion, so two candidates never both win.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import datetime as dt
import logging
from collections.abc import Awaitable, Callable

from vkube.api import errors
from vkube.api.meta import parse_time, rfc3339_micro, utcnow
from vkube.client.client import Client
from vkube.client.resources import LEASES

log = logging.getLogger(__name__)

#: how many conflicts (a renewal landing after the cancel) releasing the lease rides
_RELEASE_ATTEMPTS = 5


class LeaderElector:
    def __init__(self, client: Client, *, namespace: str, name: str, identity: str,
                 lease_duration: float = 15.0, renew_deadline: float = 10.0,
                 retry_period: float = 2.0,
                 clock: Callable[[], dt.datetime] | None = None) -> None:
        self.client = client
        self.namespace = namespace
        self.name = name
        self.identity = identity
        self.lease_duration = lease_duration
        self.renew_deadline = renew_deadline
        self.retry_period = retry_period
        self.clock = clock or utcnow
        self.is_leader = False

    async def try_acquire_or_renew(self) -> bool:
        """One attempt; True when we hold the lease afterwards."""
        now = self.clock()
        try:
            lease = await self.client.get(LEASES, self.name, namespace=self.namespace)
        except errors.NotFound:
            try:
                await self.client.create(LEASES, {
                    "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                    "metadata": {"name": self.name, "namespace": self.namespace},
                    "spec": {"holderIdentity": self.identity,
                             "leaseDurationSeconds": max(1, round(self.lease_duration)),
                             "acquireTime": rfc3339_micro(now), "renewTime": rfc3339_micro(now),
                             "leaseTransitions": 0}})
                return True
            except errors.AlreadyExists:
                return False
        spec = lease.get("spec") or {}
        holder = spec.get("holderIdentity") or ""
        if holder and holder != self.identity:
            renewed = parse_time(spec.get("renewTime")) or parse_time(spec.get("acquireTime"))
            duration = spec.get("leaseDurationSeconds") or self.lease_duration
            if renewed is not None and renewed + dt.timedelta(seconds=duration) > now:
                return False  # someone else holds a live lease
        new = copy.deepcopy(lease)
        s = new.setdefault("spec", {})
        if holder != self.identity:
            s["acquireTime"] = rfc3339_micro(now)
            s["leaseTransitions"] = int(s.get("leaseTransitions") or 0) + (1 if holder else 0)
        s["holderIdentity"] = self.identity
        s["leaseDurationSeconds"] = max(1, round(self.lease_duration))
        s["renewTime"] = rfc3339_micro(now)
        try:
            await self.client.update(LEASES, new)
        except errors.Conflict:
            return False
        return True

    async def _attempt(self) -> bool:
        try:
            return await self.try_acquire_or_renew()
        except errors.StatusError as e:
            log.warning("leader election %s/%s: %s", self.namespace, self.name, e)
            return False

    async def acquire(self) -> None:
        """Return once we lead."""
        while not await self._attempt():
            await asyncio.sleep(self.retry_period)
        self.is_leader = True
        log.info("%s became leader of %s/%s", self.identity, self.namespace, self.name)

    async def _renew_until_lost(self) -> None:
        loop = asyncio.get_running_loop()
        last_ok = loop.time()
        while True:
            await asyncio.sleep(self.retry_period)
            if await self._attempt():
                last_ok = loop.time()
            elif loop.time() - last_ok >= self.renew_deadline or await self._held_by_other():
                return

    async def _held_by_other(self) -> bool:
        try:
            lease = await self.client.get(LEASES, self.name, namespace=self.namespace)
        except errors.StatusError:
            return False
        holder = (lease.get("spec") or {}).get("holderIdentity")
        return bool(holder) and holder != self.identity

    async def lead(self, work: Callable[[], Awaitable[None]]) -> None:
        """Acquire, run ``work`` while renewing; return when leadership is lost (``work`` is
        cancelled) or ``work`` finishes. Releases the lease when cancelled."""
        await self.acquire()
        try:
            async with asyncio.TaskGroup() as tg:
                job = tg.create_task(work())
                renew = tg.create_task(self._renew_until_lost())
                job.add_done_callback(lambda _: renew.cancel())
                renew.add_done_callback(lambda _: job.cancel())
        except asyncio.CancelledError:
            self.is_leader = False
            # bounded by the lease itself (past it, releasing is moot), not by the renew
            # rhythm: on a loaded machine two requests can take well over a second
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.release(), timeout=max(self.lease_duration, 1.0))
            raise
        finally:
            self.is_leader = False
        log.warning("%s stopped leading %s/%s", self.identity, self.namespace, self.name)

    async def release(self) -> None:
        """Give the lease up so another candidate need not wait for it to expire. A renewal
        sent just before the cancel can still land between our read and write: on that
        conflict the lease is read again (it is still ours), not given up on."""
        for _ in range(_RELEASE_ATTEMPTS):
            try:
                lease = await self.client.get(LEASES, self.name, namespace=self.namespace)
                if (lease.get("spec") or {}).get("holderIdentity") != self.identity:
                    return
                lease["spec"]["holderIdentity"] = ""
                lease["spec"]["leaseDurationSeconds"] = 1
                await self.client.update(LEASES, lease)
                return
            except errors.Conflict:
                continue
            except errors.StatusError:
                return
