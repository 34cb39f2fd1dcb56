"""The controller runtime: shared informers, per-controller work queues and workers, event
recorders and leader election, hung off one ``ControllerManager`` per control plane.

A controller is level-based: handlers only enqueue keys; ``reconcile(key)`` reads the current
state from informers and makes the world match. Errors back off per key; success forgets.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable
from typing import Any

from vkube.api.meta import Obj, split_key
from vkube.client import retry
from vkube.client.client import Client, Resource
from vkube.controllers.events import EventRecorder
from vkube.controllers.informer import Handler, Informer, obj_key
from vkube.controllers.leader import LeaderElector
from vkube.controllers.workqueue import WorkQueue, run_workers

__all__ = [
    "Controller", "ControllerManager", "EventRecorder", "Handler", "Informer", "LeaderElector",
    "Obj", "WorkQueue", "obj_key", "split_key",
]

log = logging.getLogger(__name__)

#: answers that mean "later", not "never" (``vkube.client.retry``): a controller whose
#: ``run`` meets one starts again after a pause, as client-go's clients retry them, instead
#: of ending every controller of the cluster
TRANSIENT = retry.TRANSIENT
RESTART_BACKOFF = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0)


class Controller:
    name: str = ""
    workers: int = 2

    def __init__(self, mgr: "ControllerManager") -> None:
        self.mgr = mgr
        self.client = mgr.client
        self.queue = WorkQueue()
        self.recorder = EventRecorder(mgr.client, self.name or type(self).__name__,
                                      clock=mgr.clock)

    def setup(self) -> None:
        """Get informers via ``self.mgr.informer(...)`` and add handlers that enqueue keys."""

    async def reconcile(self, key: str) -> float | None:
        """Make the world match for ``key``; return seconds to requeue after, or None."""
        raise NotImplementedError

    def enqueue(self, obj: Obj) -> None:
        self.queue.add(obj_key(obj))

    def enqueue_owner(self, obj: Obj, kind: str) -> None:
        """Enqueue the controlling owner of ``obj`` if it is of ``kind`` (same namespace)."""
        meta = obj.get("metadata") or {}
        for ref in meta.get("ownerReferences") or []:
            if ref.get("controller") and ref.get("kind") == kind:
                ns = meta.get("namespace")
                self.queue.add(f"{ns}/{ref['name']}" if ns else ref["name"])

    def handler(self, typ: str, obj: Obj, old: Obj | None) -> None:
        """A ready-made handler: enqueue the object itself."""
        self.enqueue(obj)

    async def run(self) -> None:
        """Run the workers until cancelled."""
        await run_workers(self.queue, self.reconcile, name=self.name or type(self).__name__,
                          workers=self.workers, logger=log)


class ControllerManager:
    def __init__(self, client: Client, *, identity: str, leader_election: bool = True,
                 lease_namespace: str = "kube-system",
                 lease_name: str = "vkube-controller-manager",
                 clock: Callable[[], dt.datetime] | None = None,
                 lease_duration: float = 15.0, renew_deadline: float = 10.0,
                 retry_period: float = 2.0, root_ca_pem: str = "", token_issuer: Any = None,
                 options: dict[str, Any] | None = None) -> None:
        self.client = client
        self.identity = identity
        self.leader_election = leader_election
        self.clock: Callable[[], dt.datetime] = clock or (
            lambda: dt.datetime.now(dt.timezone.utc))
        self.elector = LeaderElector(
            client, namespace=lease_namespace, name=lease_name, identity=identity,
            lease_duration=lease_duration, renew_deadline=renew_deadline,
            retry_period=retry_period, clock=self.clock)
        self.root_ca_pem = root_ca_pem  # kube-root-ca.crt contents (PEM), "" until TLS exists
        #: signs legacy service-account token Secrets (vkube.pki.TokenIssuer); None: left empty
        self.token_issuer = token_issuer
        self.options = dict(options or {})  # per-controller settings, by controller name
        self.controllers: list[Controller] = []
        self._informers: dict[tuple[Any, ...], Informer] = {}
        self._informer_tasks: dict[tuple[Any, ...], asyncio.Task[None]] = {}
        self._running: asyncio.TaskGroup | None = None
        #: with leader election, where the informers run for the whole of ``run`` (leading or
        #: not), so the cluster's syncer, scheduler and DNS can read them (one cache per
        #: resource per cluster); without it they run with the controllers, as before
        self._caches: asyncio.TaskGroup | None = None
        self.started = asyncio.Event()  # set once informers synced and workers run

    def informer(self, res: Resource, **kw: Any) -> Informer:
        """The shared informer for ``res`` with these options (one per distinct set)."""
        key = (res, tuple(sorted(kw.items())))
        inf = self._informers.get(key)
        if inf is None:
            inf = self._informers[key] = Informer(self.client, res, **kw)
            group = self._caches or self._running
            if group is not None:  # created late (e.g. a newly discovered resource)
                self._informer_tasks[key] = inf.start(group.create_task)
        return inf

    def drop_informer(self, res: Resource, **kw: Any) -> None:
        """Stop and forget the informer for ``res`` (a resource gone from discovery, as a
        deleted CRD's: its list and watch would fail and retry forever). Asking for it
        again later starts a new one."""
        key = (res, tuple(sorted(kw.items())))
        inf = self._informers.pop(key, None)
        if inf is not None:
            inf.stop()  # its task, or its parking
        task = self._informer_tasks.pop(key, None)
        if task is not None:
            task.cancel()

    def add(self, controller_cls: type[Controller]) -> Controller:
        ctrl = controller_cls(self)
        ctrl.setup()
        self.controllers.append(ctrl)
        return ctrl

    def get(self, controller_cls: type[Controller]) -> Controller | None:
        return next((c for c in self.controllers if isinstance(c, controller_cls)), None)

    async def run(self) -> None:
        """Lead (if leader election is on) and run; after losing leadership, stop every
        controller and campaign again. Cancel to stop."""
        try:
            if not self.leader_election:
                await self._run_controllers()
                return
            async with asyncio.TaskGroup() as tg:
                self._caches = tg
                for key, inf in list(self._informers.items()):
                    # lazy: one with nothing to watch parks (no task) until its first object
                    self._informer_tasks[key] = inf.start(tg.create_task)
                while True:
                    await self.elector.lead(self._run_controllers)
        finally:
            self._caches = None
            for inf in self._informers.values():
                inf.stop()  # parked ones: nothing wakes them into a finished group
            self._informer_tasks.clear()
            for c in self.controllers:
                await c.recorder.close()

    async def _supervise(self, c: Controller) -> None:
        """``c.run()``, started again after a transient error (``TRANSIENT``); any other error
        ends the manager as before (a bug should not be retried forever)."""
        failures = 0
        while True:
            try:
                await c.run()
                return
            except TRANSIENT as e:
                delay = max(RESTART_BACKOFF[min(failures, len(RESTART_BACKOFF) - 1)],
                            float(e.retry_after or 0))
                failures += 1
                log.warning("controller %s: %s %s (starting again in %.1fs)",
                            c.name or type(c).__name__, type(e).__name__, e, delay)
                await asyncio.sleep(delay)

    async def _run_controllers(self) -> None:
        try:
            async with asyncio.TaskGroup() as tg:
                self._running = tg
                if self._caches is None:  # else they run already, leading or not
                    for key, inf in list(self._informers.items()):
                        # lazy: one with nothing to watch parks (no task) until its first object
                        self._informer_tasks[key] = inf.start(tg.create_task)
                await asyncio.gather(*(i.wait_synced() for i in list(self._informers.values())))
                for c in self.controllers:
                    tg.create_task(self._supervise(c))
                self.started.set()
        finally:
            self._running = None
            if self._caches is None:
                for inf in self._informers.values():
                    inf.stop()  # parked ones: nothing wakes them into a finished group
                self._informer_tasks.clear()
            self.started.clear()

