"""Simulated kubelets for every node of one embedded host.

The kubelet sees pods through the shared pod informer, keeps a runtime state per pod
(podruntime.PodRT), lets the stage engine move it on, and publishes what changed: the pod's
status (PATCH pods/status), events, and finally the pod's deletion with grace period 0 once
its containers stopped — exactly the API traffic a real kubelet makes.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import random
import time
from collections.abc import Callable

from vkube.api import errors
from vkube.api.meta import Obj
from vkube.client import Client
from vkube.client.resources import PODS
from vkube.controllers.events import EventRecorder
from vkube.controllers.informer import Informer
from vkube.controllers.workqueue import WorkQueue, run_workers
from vkube.host.commands import ExitPlan
from vkube.host.dra import claim_name_for
from vkube.host.podruntime import ContainerRT, PodRT, add_ephemeral, adopt_runtime, new_runtime, pod_status
from vkube.host.stages import DEFAULT_STAGES, Context, KubeletConfig, Stage, advance

log = logging.getLogger(__name__)

R_FAILED_PREPARE = "FailedPrepareDynamicResources"  # kubelet's event reason
CLAIM_RECHECK_SECONDS = 1.0  # a pod whose claims are not ready looks again this often

class IPAM:
    """Pod IPs out of each node's podCIDR, unique per node (hence cluster-wide)."""

    def __init__(self) -> None:
        self._used: dict[str, set[str]] = {}

    def allocate(self, node: str, cidr: str) -> str:
        used = self._used.setdefault(node, set())
        net = ipaddress.ip_network(cidr or "10.244.0.0/24", strict=False)
        for i, ip in enumerate(net.hosts()):
            if i == 0:
                continue  # .1 is the node's bridge address
            s = str(ip)
            if s not in used:
                used.add(s)
                return s
        raise errors.ServiceUnavailable(f"no free pod IP left in {cidr} on node {node}")

    def reserve(self, node: str, ip: str) -> None:
        self._used.setdefault(node, set()).add(ip)

    def release(self, node: str, ip: str) -> None:
        self._used.get(node, set()).discard(ip)


class Kubelet:
    """All simulated kubelets of one host; ``owns(node)`` says which nodes are ours."""

    def __init__(self, client: Client, pods: Informer, nodes: Informer, *,
                 owns: Callable[[str], bool], config: KubeletConfig | None = None,
                 stages: tuple[Stage, ...] = DEFAULT_STAGES, workers: int = 8,
                 rng: random.Random | None = None,
                 client_for: Callable[[str], Client] | None = None,
                 claims: Informer | None = None) -> None:
        self.client = client
        #: the host's ResourceClaims: a pod starts only once each of its claims is allocated
        #: and reserved for it (kubelet's DRA manager); None where the host has no DRA
        self.claims = claims
        #: the client of one node's kubelet (its own identity: the Node authorizer and
        #: NodeRestriction let it write only its own pods); default: ``client`` for all
        self.client_for: Callable[[str], Client] = client_for or (lambda node: client)
        self.pods = pods
        self.nodes = nodes
        self.owns = owns
        self.config = config or KubeletConfig()
        self.stages = stages
        self.workers = workers
        self.rng = rng or random.Random()
        self.recorder = EventRecorder(client, "kubelet")
        self.queue = WorkQueue()
        self.ipam = IPAM()
        self.runtimes: dict[str, PodRT] = {}  # "ns/name" -> runtime
        self._published: dict[str, int] = {}  # key -> runtime version last written
        self._deleting: set[str] = set()
        self._pulled: dict[str, set[str]] = {}  # node -> images present
        self._changed: dict[str, asyncio.Event] = {}  # log followers wait on these
        self._prepared: dict[str, str] = {}  # key -> uid of the pod whose claims were prepared
        self._unprepared: dict[str, str] = {}  # key -> why its claims could not be, last told
        pods.add_handler(self._on_pod)

    # -- informer side --------------------------------------------------------------------------

    def _on_pod(self, typ: str, pod: Obj, old: Obj | None) -> None:
        meta = pod.get("metadata", {})
        key = f"{meta.get('namespace')}/{meta.get('name')}"
        node = pod.get("spec", {}).get("nodeName") or ""
        rt = self.runtimes.get(key)
        if typ == "DELETED" or not node or not self.owns(node):
            if rt is not None and (typ == "DELETED" or rt.node != node):
                self._forget(key)
            return
        if rt is not None and rt.uid != meta.get("uid"):
            self._forget(key)
            rt = None
        now = time.time()
        if rt is None:
            status = pod.get("status", {})
            if status.get("podIP") or status.get("phase") in ("Running", "Succeeded", "Failed"):
                rt = adopt_runtime(pod, now=now)  # a pod we ran before a restart
                if rt.pod_ip:
                    self.ipam.reserve(node, rt.pod_ip)
                self._published[key] = rt.version
            else:
                rt = new_runtime(pod, now=now)
            self.runtimes[key] = rt
        else:
            add_ephemeral(rt, pod, now=now)  # kubectl debug: pods/ephemeralcontainers
        if meta.get("deletionTimestamp"):
            grace = meta.get("deletionGracePeriodSeconds")
            rt.mark_deleting(now, None if grace is None else float(grace))
        self.queue.add(key)

    def _forget(self, key: str) -> None:
        rt = self.runtimes.pop(key, None)
        self._published.pop(key, None)
        self._deleting.discard(key)
        self._prepared.pop(key, None)
        self._unprepared.pop(key, None)
        if rt is not None and rt.pod_ip:
            self.ipam.release(rt.node, rt.pod_ip)
        self._notify(key)
        self._changed.pop(key, None)

    def _notify(self, key: str) -> None:
        ev = self._changed.get(key)
        if ev is not None:
            ev.set()
            self._changed[key] = asyncio.Event()

    # -- reads for the kubelet server ------------------------------------------------------------

    def runtime(self, namespace: str, name: str) -> PodRT | None:
        return self.runtimes.get(f"{namespace}/{name}")

    def container(self, namespace: str, name: str, container: str) -> ContainerRT | None:
        rt = self.runtime(namespace, name)
        return rt.container(container) if rt else None

    def notify(self, namespace: str, name: str) -> None:
        """Wake whoever follows the pod (new log lines of an attached shell)."""
        self._notify(f"{namespace}/{name}")

    def end_process(self, namespace: str, name: str, container: ContainerRT, code: int = 0) -> None:
        """An interactive shell whose stdin closed (or that ran ``exit``) ends now; one that
        already ran ``exit`` keeps that code (stdin closing right after ``exit 3`` is not 0)."""
        if container.state != "running" or self.runtime(namespace, name) is None:
            return
        if container.plan.exits:
            return
        container.plan = ExitPlan(max(0.0, time.time() - container.since), code, container.plan.output)
        self.queue.add(f"{namespace}/{name}")

    def changed(self, namespace: str, name: str) -> asyncio.Event:
        """An event set at the pod's next change (or its removal)."""
        key = f"{namespace}/{name}"
        return self._changed.setdefault(key, asyncio.Event())

    # -- the work loop -------------------------------------------------------------------------

    def _allocate_ip(self, rt: PodRT) -> str:
        node = self.nodes.get(rt.node) or {}
        return self.ipam.allocate(rt.node, node.get("spec", {}).get("podCIDR", ""))

    async def _sync(self, key: str) -> None:
        rt = self.runtimes.get(key)
        ns, _, name = key.partition("/")
        pod = self.pods.get(name, ns)
        if rt is None or pod is None:
            return
        now = time.time()
        ctx = Context(now=now, cfg=self.config, rng=self.rng, allocate_ip=self._allocate_ip,
                      pulled=self._pulled.setdefault(rt.node, set()))
        if not rt.deleting and self._prepared.get(key) != rt.uid:
            why = self._unprepared_claims(pod)
            if why is not None:  # nothing starts; the status stays Pending, ContainerCreating
                if self._unprepared.get(key) != why:
                    self._unprepared[key] = why
                    self.recorder.event(_event_target(pod, None), "Warning", R_FAILED_PREPARE,
                                        f"Failed to prepare dynamic resources: {why}")
            else:
                self._prepared[key] = rt.uid
                self._unprepared.pop(key, None)
        if self._prepared.get(key) == rt.uid or rt.deleting:
            applied, next_due = advance(rt, ctx, self.stages)
        else:
            applied, next_due = [], time.time() + CLAIM_RECHECK_SECONDS
        for a in applied:
            for typ, reason, message in a.events:
                self.recorder.event(_event_target(pod, a.container), typ, reason, message)
        if applied:
            self._notify(key)
        soon = next_due is not None and not rt.deleting and \
            next_due - time.time() < self.config.coalesce_seconds
        if rt.version != self._published.get(key) and not soon:
            status = pod_status(rt, pod, now=now)
            try:
                await self.client_for(rt.node).patch(PODS, name, {"status": status}, namespace=ns,
                                                     subresource="status")
            except errors.NotFound:
                self._forget(key)
                return
            self._published[key] = rt.version
        if rt.removed and key not in self._deleting:
            self._deleting.add(key)
            try:
                await self.client_for(rt.node).delete(PODS, name, namespace=ns, grace_period_seconds=0,
                                                      preconditions={"uid": rt.uid})
            except (errors.NotFound, errors.Conflict):
                pass
        if next_due is not None:
            self.queue.add_after(key, max(0.0, next_due - time.time()))

    def _unprepared_claims(self, pod: Obj) -> str | None:
        """Why the pod's ResourceClaims cannot be prepared, as kubelet's DRA manager says it,
        or None when each is allocated and reserved for this pod. A pod bound straight to a
        node (spec.nodeName) skipped the scheduler, which alone allocates and reserves: running
        it would hand out devices another pod may be given too."""
        entries = (pod.get("spec") or {}).get("resourceClaims") or ()
        if not entries or self.claims is None:
            return None
        meta = pod["metadata"]
        for entry in entries:
            name, why = claim_name_for(pod, entry)
            if why:
                return why
            if name is None:
                continue  # the template produced no claim for this entry
            claim = self.claims.get(name, meta["namespace"])
            if claim is None:
                return f'fetch ResourceClaim {name}: resourceclaims.resource.k8s.io "{name}" not found'
            status = claim.get("status") or {}
            if not any(r.get("uid") == meta.get("uid") for r in status.get("reservedFor") or ()) \
                    or not status.get("allocation"):
                return (f"pod {meta['name']} ({meta.get('uid')}) is not allowed to use "
                        f"ResourceClaim {name} ({claim['metadata'].get('uid')})")
        return None

    async def run(self) -> None:
        """Run the workers until cancelled (the informers run elsewhere)."""
        try:
            await run_workers(self.queue, self._sync, name="kubelet: syncing pod",
                              workers=self.workers, logger=log)
        finally:
            await self.recorder.close()


def _event_target(pod: Obj, container: str | None) -> Obj:
    """Items of a list carry no kind; events need it for involvedObject."""
    return {"apiVersion": "v1", "kind": "Pod", "metadata": pod.get("metadata", {})}
