"""The scheduler loop: watch pods without a node, run one scheduling cycle each
(algorithm.schedule), bind through pods/binding, and report failures the way kube-scheduler
does (PodScheduled=False/Unschedulable and a FailedScheduling event).

Like kube-scheduler it *assumes* a pod onto its node in the cache before the binding call
returns, so the next cycle already counts its requests; binding calls run concurrently while
cycles stay sequential. Unschedulable pods wait until the cluster changes (a node added or
updated, a pod removed) or a periodic flush.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable

from vkube.api import errors
from vkube.api.meta import Obj
from vkube.client import Client
from vkube.client.resources import PODS
from vkube.controllers.events import EventRecorder
from vkube.controllers.informer import Informer
from vkube.controllers.workqueue import WorkQueue, run_periodic, run_workers
from vkube.host.algorithm import Diagnosis, schedule
from vkube.host.nodes import now_iso
from vkube.host.predicates import NodeInfo, PodInfo, pod_info
from vkube.host.dra import DeviceAllocator, PodDevices
from vkube.host.volumebinding import PodClaims, VolumeBinder

log = logging.getLogger(__name__)

class Scheduler:
    def __init__(self, client: Client, pods: Informer, nodes: Informer, *,
                 name: str = "default-scheduler", bind_concurrency: int = 32,
                 flush_seconds: float = 30.0, rng: random.Random | None = None,
                 volumes: VolumeBinder | None = None, devices: DeviceAllocator | None = None) -> None:
        self.client = client
        self.volumes = volumes  # VolumeBinding: claims must be bindable where a pod goes
        self.devices = devices  # DynamicResources: resource claims must be allocatable there
        self.pods = pods
        self.nodes = nodes
        self.name = name
        self.flush_seconds = flush_seconds
        self.rng = rng or random.Random()
        self.recorder = EventRecorder(client, name)
        self.queue = WorkQueue(base_delay=1.0, max_delay=10.0)
        self.node_infos: dict[str, NodeInfo] = {}
        self.placed: dict[str, tuple[str, PodInfo]] = {}  # pod key -> (node, info): bound or assumed
        self.assumed: set[str] = set()
        self.unschedulable: set[str] = set()
        self.scheduled = 0  # successful bindings (for benchmarks)
        self._bind_slots = asyncio.Semaphore(bind_concurrency)
        self._binds: set[asyncio.Task[None]] = set()
        nodes.add_handler(self._on_node)
        pods.add_handler(self._on_pod)
        if volumes is not None:  # a claim made, bound or deleted may let a waiting pod fit
            for inf in (volumes.pvcs, volumes.pvs, volumes.classes):
                inf.add_handler(lambda typ, obj, old: self._retry_unschedulable())
        if devices is not None:  # a claim made or freed, or devices published, may fit a pod
            for inf in (devices.claims, devices.slices, devices.classes, devices.taint_rules):
                if inf is None:
                    continue
                inf.add_handler(lambda typ, obj, old: self._retry_unschedulable())

    # -- cache -----------------------------------------------------------------------------

    def _on_node(self, typ: str, node: Obj, old: Obj | None) -> None:
        name = node["metadata"]["name"]
        if typ == "DELETED":
            self.node_infos.pop(name, None)
            return
        prev = self.node_infos.get(name)
        cur = self.node_infos[name] = NodeInfo.from_node(node, prev)
        if prev is None:
            for key, (n, info) in self.placed.items():
                if n == name:
                    cur.add_pod(info)
        if prev is None or _may_admit_more(prev, cur):
            self._retry_unschedulable()

    def _on_pod(self, typ: str, pod: Obj, old: Obj | None) -> None:
        meta, spec = pod.get("metadata", {}), pod.get("spec", {})
        key = f"{meta.get('namespace')}/{meta.get('name')}"
        node = spec.get("nodeName") or ""
        terminal = pod.get("status", {}).get("phase") in ("Succeeded", "Failed")
        if typ == "DELETED" or (node and terminal):
            self.unschedulable.discard(key)
            if self._unplace(key):
                self._retry_unschedulable()
            return
        if node:
            self.unschedulable.discard(key)
            self.assumed.discard(key)
            prev = self.placed.get(key)
            if prev is not None and prev[0] == node and prev[1].pod.get("metadata", {}).get(
                    "resourceVersion") == meta.get("resourceVersion"):
                return
            self._place(key, node, pod_info(pod))
            return
        if (spec.get("schedulerName") or "default-scheduler") != self.name or meta.get("deletionTimestamp"):
            return
        if key in self.assumed:
            return  # our binding is in flight
        if key in self.unschedulable and old is not None and \
                _claim_statuses(old) != _claim_statuses(pod):
            # the resourceclaim controller recorded the pod's claims: it may fit now
            # (the DynamicResources plugin's queueing hint), not only at the next flush
            self.unschedulable.discard(key)
        if key not in self.unschedulable:
            self.queue.add(key)

    def _place(self, key: str, node: str, info: PodInfo) -> None:
        self._unplace(key)
        self.placed[key] = (node, info)
        ni = self.node_infos.get(node)
        if ni is not None:
            ni.add_pod(info)

    def _unplace(self, key: str) -> bool:
        prev = self.placed.pop(key, None)
        if prev is None:
            return False
        ni = self.node_infos.get(prev[0])
        if ni is not None:
            ni.remove_pod(prev[1])
        return True

    def _retry_unschedulable(self) -> None:
        """A cluster change may make waiting pods fit (kube-scheduler's MoveAllToActive)."""
        for key in list(self.unschedulable):
            self.unschedulable.discard(key)
            self.queue.add(key)

    # -- scheduling ------------------------------------------------------------------------

    async def schedule_one(self, key: str) -> None:
        ns, _, name = key.partition("/")
        pod = self.pods.get(name, ns)
        if pod is None or pod.get("spec", {}).get("nodeName") or pod["metadata"].get("deletionTimestamp"):
            return
        if key in self.assumed:
            return
        info = pod_info(pod)
        claims = None
        if self.volumes is not None:
            refused, claims = self.volumes.prefilter(pod)
            if refused:
                self.unschedulable.add(key)
                diag = Diagnosis(num_nodes=len(self.node_infos), prefilter_msg=refused,
                                 unresolvable=len(self.node_infos))
                await self._report_unschedulable(pod, diag.message())
                return
        pod_devices = None
        if self.devices is not None:
            refused, pod_devices = self.devices.prefilter(pod)
            if refused:
                self.unschedulable.add(key)
                diag = Diagnosis(num_nodes=len(self.node_infos), prefilter_msg=refused,
                                 unresolvable=len(self.node_infos))
                await self._report_unschedulable(pod, diag.message())
                return
        node, diag = schedule(info, list(self.node_infos.values()), rng=self.rng,
                              extra_filter=self._extra_filter(claims, pod_devices))
        if node is None:
            self.unschedulable.add(key)
            await self._report_unschedulable(pod, diag.message())
            return
        info.node_name = node
        self.assumed.add(key)
        self._place(key, node, info)
        await self._bind_slots.acquire()
        task = asyncio.get_running_loop().create_task(self._bind(key, pod, node, claims, pod_devices))
        self._binds.add(task)
        task.add_done_callback(self._binds.discard)

    def _extra_filter(self, claims: PodClaims | None,
                      pod_devices: PodDevices | None) -> Callable[[NodeInfo], str | None] | None:
        """The volume-binding and dynamic-resources Filter steps, as one extra filter."""
        volumes, devices = self.volumes, self.devices
        steps: list[Callable[[NodeInfo], str | None]] = []
        if volumes is not None and claims is not None:
            steps.append(lambda n: volumes.filter(claims, n))
        if devices is not None and pod_devices is not None:
            steps.append(lambda n: devices.filter(pod_devices, n))
        if not steps:
            return None
        return lambda n: next((why for why in (step(n) for step in steps) if why), None)

    async def _bind(self, key: str, pod: Obj, node: str, claims: PodClaims | None = None,
                    pod_devices: PodDevices | None = None) -> None:
        ns, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
        binding = {"apiVersion": "v1", "kind": "Binding",
                   "metadata": {"name": name, "namespace": ns, "uid": pod["metadata"].get("uid")},
                   "target": {"apiVersion": "v1", "kind": "Node", "name": node}}
        try:
            if self.volumes is not None and claims is not None:  # PreBind
                await self.volumes.prebind(pod, self.node_infos[node].node, claims)
            if self.devices is not None and pod_devices is not None:
                await self.devices.prebind(pod, node, pod_devices)
            await self.client.create(PODS, binding, namespace=ns, subresource="binding", name=name)
        except asyncio.CancelledError:
            raise
        except errors.NotFound:
            self._forget_assumed(key)
            return
        except Exception as e:
            log.warning("scheduler: binding %s to %s failed: %s", key, node, e)
            self._forget_assumed(key)
            self.queue.add_rate_limited(key)
            return
        finally:
            self._bind_slots.release()
        self.assumed.discard(key)
        self.scheduled += 1
        self.recorder.event(_ref(pod), "Normal", "Scheduled", f"Successfully assigned {ns}/{name} to {node}")

    def _forget_assumed(self, key: str) -> None:
        self.assumed.discard(key)
        self._unplace(key)

    async def _report_unschedulable(self, pod: Obj, message: str) -> None:
        meta = pod["metadata"]
        self.recorder.event(_ref(pod), "Warning", "FailedScheduling", message)
        conds = pod.get("status", {}).get("conditions") or []
        cur = next((c for c in conds if c.get("type") == "PodScheduled"), None)
        if cur and cur.get("status") == "False" and cur.get("message") == message:
            return
        cond = {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": message,
                "lastProbeTime": None, "lastTransitionTime": now_iso()}
        others = [c for c in conds if c.get("type") != "PodScheduled"]
        try:
            await self.client.patch(PODS, meta["name"], {"status": {"conditions": [*others, cond]}},
                                    namespace=meta["namespace"], subresource="status")
        except errors.NotFound:
            pass

    async def _flush(self) -> None:
        self._retry_unschedulable()

    async def run(self) -> None:
        """Schedule until cancelled (the informers run elsewhere). One worker: cycles stay
        sequential so each sees the previous one's assumed pods."""
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(run_workers(self.queue, self.schedule_one,
                                           name="scheduler: scheduling", logger=log))
                tg.create_task(run_periodic(self._flush, self.flush_seconds,
                                            name="scheduler: flushing unschedulable pods",
                                            logger=log))
        finally:
            for t in list(self._binds):
                t.cancel()
            await asyncio.gather(*self._binds, return_exceptions=True)
            await self.recorder.close()


def _may_admit_more(prev: NodeInfo, cur: NodeInfo) -> bool:
    """Whether a node update can make a waiting pod fit; heartbeats alone cannot (the
    scheduler's queueing hints skip them the same way)."""
    return (prev.labels != cur.labels or prev.taints != cur.taints or prev.unschedulable != cur.unschedulable
            or prev.allocatable != cur.allocatable or prev.ready != cur.ready)


def _ref(pod: Obj) -> Obj:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": pod.get("metadata", {})}


def _claim_statuses(pod: Obj) -> object:
    return (pod.get("status") or {}).get("resourceClaimStatuses")
