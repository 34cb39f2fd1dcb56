"""Simulated nodes: the Node and Lease objects a kubelet would publish, and the operations an
administrator runs on nodes (add, cordon, drain, mark NotReady).

Heartbeats follow the kubelet: the Lease is renewed every 10 s (cheap, one small object) and
the Node status only every ~40 s (nodeStatusReportFrequency), as a Node is large.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from collections.abc import Awaitable, Callable

from vkube.api import errors
from vkube.api.meta import Obj, rfc3339, rfc3339_micro, utcnow
from vkube.client import Client
from vkube.client.resources import CSINODES, LEASES, NODES, PODS, RESOURCESLICES
from vkube.controllers.workqueue import run_periodic

log = logging.getLogger(__name__)
NODE_LEASE_NS = "kube-node-lease"
KUBELET_VERSION = "v1.37.1"
UNSCHEDULABLE_TAINT = {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}
NOT_READY_KEY = "node.kubernetes.io/not-ready"
UNREACHABLE_KEY = "node.kubernetes.io/unreachable"


def now_iso(micro: bool = False) -> str:
    """Now as ``metav1.Time`` (or ``MicroTime`` with ``micro``)."""
    return rfc3339_micro(utcnow()) if micro else rfc3339(utcnow())


@dataclass(frozen=True)
class NodeTemplate:
    """What every simulated node looks like; one per EmbeddedHost."""

    prefix: str = "vkube-host-node"
    cpu: str = "4"
    memory: str = "8Gi"
    pods: int = 110
    ephemeral_storage: str = "100Gi"
    zones: tuple[str, ...] = ("a", "b", "c")
    arch: str = "amd64"
    labels: dict[str, str] = field(default_factory=dict)
    #: simulated DRA devices per node: (driver, count) — each driver's devices are published
    #: in one ResourceSlice per node, as a DRA driver's kubelet plugin publishes them
    devices: tuple[tuple[str, int], ...] = ()


def node_name(index: int, prefix: str = "vkube-host-node") -> str:
    return f"{prefix}-{index}"


def _conditions(ready: bool, ts: str) -> list[Obj]:
    def cond(type_: str, status: str, reason: str, message: str) -> Obj:
        return {"type": type_, "status": status, "lastHeartbeatTime": ts,
                "lastTransitionTime": ts, "reason": reason, "message": message}
    return [
        cond("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
        cond("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
        cond("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
        cond("Ready", "True", "KubeletReady", "kubelet is posting ready status")
        if ready else cond("Ready", "Unknown", "NodeStatusUnknown", "Kubelet stopped posting node status."),
    ]


def build_node(index: int, *, cpu: str, memory: str, kubelet_port: int,
               prefix: str = "vkube-host-node", pods: int = 110, ephemeral_storage: str = "100Gi",
               zones: tuple[str, ...] = ("a", "b", "c"), arch: str = "amd64",
               labels: dict[str, str] | None = None) -> Obj:
    """A complete Node object for simulated node number ``index`` (1-based)."""
    name = node_name(index, prefix)
    ts = now_iso()
    capacity = {"cpu": cpu, "memory": memory, "pods": str(pods), "ephemeral-storage": ephemeral_storage,
                "hugepages-1Gi": "0", "hugepages-2Mi": "0"}
    return {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {
                "kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": arch,
                "beta.kubernetes.io/os": "linux", "beta.kubernetes.io/arch": arch,
                "topology.kubernetes.io/zone": zones[(index - 1) % len(zones)],
                "topology.kubernetes.io/region": "vkube", "type": "vkube-simulated",
                **(labels or {}),
            },
            "annotations": {"node.alpha.kubernetes.io/ttl": "0", "vkube.io/simulated": "true"},
        },
        "spec": {"podCIDR": f"10.244.{index}.0/24", "podCIDRs": [f"10.244.{index}.0/24"]},
        "status": {
            "capacity": capacity, "allocatable": dict(capacity),
            "conditions": _conditions(True, ts),
            "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}, {"type": "Hostname", "address": name}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": kubelet_port}},
            "nodeInfo": {
                "machineID": f"vkube{index:027d}", "systemUUID": f"00000000-0000-0000-0000-{index:012d}",
                "bootID": f"b007{index:028x}", "kernelVersion": "6.1.0-vkube",
                "osImage": "vkube simulated node (Debian GNU/Linux 12)",
                "containerRuntimeVersion": "containerd://1.7.24", "kubeletVersion": KUBELET_VERSION,
                "kubeProxyVersion": KUBELET_VERSION, "operatingSystem": "linux", "architecture": arch,
            },
            "images": [{"names": ["docker.io/library/nginx:latest"], "sizeBytes": 72_000_000}],
            "phase": "Running",
        },
    }


def build_lease(node: Obj, *, duration: int = 40) -> Obj:
    name = node["metadata"]["name"]
    owner = {"apiVersion": "v1", "kind": "Node", "name": name, "uid": node["metadata"].get("uid", "")}
    return {
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": name, "namespace": NODE_LEASE_NS,
                     "ownerReferences": [owner] if owner["uid"] else []},
        "spec": {"holderIdentity": name, "leaseDurationSeconds": duration, "renewTime": now_iso(micro=True)},
    }


def with_ready(node: Obj, ready: bool) -> tuple[list[Obj], list[Obj]]:
    """(conditions, taints) for a node turned Ready/NotReady, like the node lifecycle
    controller: NotReady adds not-ready/unreachable NoExecute (and NoSchedule) taints."""
    ts = now_iso()
    conds = []
    for c in node.get("status", {}).get("conditions") or []:
        c = dict(c)
        if c.get("type") == "Ready":
            want = "True" if ready else "Unknown"
            if c.get("status") != want:
                c["lastTransitionTime"] = ts
            c.update(status=want, lastHeartbeatTime=ts,
                     reason="KubeletReady" if ready else "NodeStatusUnknown",
                     message="kubelet is posting ready status" if ready else "Kubelet stopped posting node status.")
        conds.append(c)
    taints = [t for t in node.get("spec", {}).get("taints") or [] if t.get("key") not in (NOT_READY_KEY, UNREACHABLE_KEY)]
    if not ready:
        taints += [{"key": UNREACHABLE_KEY, "effect": "NoSchedule"},
                   {"key": UNREACHABLE_KEY, "effect": "NoExecute", "timeAdded": ts}]
    return conds, taints


def build_resource_slice(node: Obj, driver: str, count: int) -> Obj:
    """A simulated driver's ResourceSlice for ``node``: ``count`` devices named
    ``<first label of the driver>-<i>`` with ``index`` and ``model`` attributes."""
    meta = node["metadata"]
    prefix = driver.split(".")[0]
    devices = [{"name": f"{prefix}-{i}",
                "attributes": {"index": {"int": i}, "model": {"string": "vkube-simulated"}},
                "capacity": {"memory": {"value": "16Gi"}}} for i in range(count)]
    return {"apiVersion": "resource.k8s.io/v1", "kind": "ResourceSlice",
            "metadata": {"name": f"{meta['name']}-{driver}", "ownerReferences": [{
                "apiVersion": "v1", "kind": "Node", "name": meta["name"], "uid": meta.get("uid", "")}]},
            "spec": {"driver": driver, "nodeName": meta["name"],
                     "pool": {"name": meta["name"], "generation": 1, "resourceSliceCount": 1},
                     "devices": devices}}


class NodeManager:
    """Owns the simulated Node objects of one host: creation, heartbeats, admin operations."""

    def __init__(self, client: Client, *, template: NodeTemplate, kubelet_port: int,
                 lease_interval: float = 10.0, status_interval: float = 40.0,
                 client_for: Callable[[str], Client] | None = None) -> None:
        self.client = client  # the host's admin operations (cordon, drain, readiness)
        #: each node's kubelet registers, heartbeats and renews its Lease as itself
        self.client_for: Callable[[str], Client] = client_for or (lambda node: client)
        self.template = template
        self.kubelet_port = kubelet_port
        self.lease_interval = lease_interval
        self.status_interval = status_interval
        self.names: list[str] = []  # nodes this host simulates
        self.not_ready: set[str] = set()  # nodes whose heartbeats we stopped
        self.heartbeats = 0  # API writes spent on heartbeats (to measure their cost)
        #: one lock per node orders a heartbeat's Ready write against set_ready's, so a beat
        #: read before a failure cannot land after it and bring the node back
        self._status_locks: dict[str, asyncio.Lock] = {}

    def owns(self, name: str) -> bool:
        return name in self.names

    def _build(self, index: int) -> Obj:
        t = self.template
        return build_node(index, cpu=t.cpu, memory=t.memory, kubelet_port=self.kubelet_port,
                          prefix=t.prefix, pods=t.pods, ephemeral_storage=t.ephemeral_storage,
                          zones=t.zones, arch=t.arch, labels=t.labels)

    async def ensure(self, count: int) -> None:
        """Create nodes 1..count, adopting existing ones (data persists across restarts) and
        refreshing the fields we own (port, conditions) on those."""
        existing = {n["metadata"]["name"]: n for n in (await self.client.list_all(NODES)).get("items", [])}
        prefix = self.template.prefix + "-"
        indices = set(range(1, count + 1))
        for name in existing:
            if name.startswith(prefix) and name[len(prefix):].isdigit():
                indices.add(int(name[len(prefix):]))
        # the nodes together: each is ~5 writes in sequence (node, status, lease, CSINode,
        # slices), and the host's store commits concurrent writes in one fsync
        await asyncio.gather(*(self._ensure_one(i, existing.get(node_name(i, self.template.prefix)))
                               for i in sorted(indices)))
        self.names.sort(key=lambda n: int(n.rsplit("-", 1)[1]))  # in index order, as one by one

    async def add_node(self) -> str:
        """Add one more node (the next free index) and return its name."""
        taken = {int(n.rsplit("-", 1)[1]) for n in self.names}
        i = 1
        while i in taken:
            i += 1
        return await self._ensure_one(i, None)

    async def _ensure_one(self, index: int, existing: Obj | None) -> str:
        body = self._build(index)
        name = body["metadata"]["name"]
        kubelet = self.client_for(name)
        if existing is None:
            try:
                existing = await kubelet.create(NODES, body)
            except errors.AlreadyExists:
                existing = await kubelet.get(NODES, name)
        status = dict(body["status"])
        conds, _ = with_ready(existing, True) if existing.get("status", {}).get("conditions") else (status["conditions"], [])
        status["conditions"] = conds or status["conditions"]
        existing = await kubelet.patch(NODES, name, {"status": status}, subresource="status")
        spec = existing.get("spec", {})
        if any(t.get("key") in (NOT_READY_KEY, UNREACHABLE_KEY) for t in spec.get("taints") or []):
            _, taints = with_ready(existing, True)
            existing = await kubelet.patch(NODES, name, {"spec": {"taints": taints or None}})
        await self._renew_lease(existing)
        await self._ensure_csinode(existing)
        await self._ensure_slices(existing)
        if name not in self.names:
            self.names.append(name)
        self.not_ready.discard(name)
        return name

    async def _ensure_csinode(self, node: Obj) -> None:
        """The kubelet's CSINode for its node (``csi.nodeInfoManager``): named as the node,
        owned by it (so it goes with the node), listing the CSI drivers registered on the node
        — none on a simulated node, whose volumes come from the host's local-path provisioner."""
        meta = node["metadata"]
        body = {"apiVersion": "storage.k8s.io/v1", "kind": "CSINode",
                "metadata": {"name": meta["name"], "ownerReferences": [{
                    "apiVersion": "v1", "kind": "Node", "name": meta["name"], "uid": meta.get("uid", "")}]},
                "spec": {"drivers": []}}
        try:
            await self.client_for(meta["name"]).create(CSINODES, body)  # as the node's kubelet
        except errors.AlreadyExists:
            pass

    async def _ensure_slices(self, node: Obj) -> None:
        """One ResourceSlice per configured driver for this node (the pool is the node)."""
        for driver, count in self.template.devices:
            body = build_resource_slice(node, driver, count)
            try:
                await self.client_for(node["metadata"]["name"]).create(RESOURCESLICES, body)
            except errors.AlreadyExists:
                pass

    async def _renew_lease(self, node: Obj) -> None:
        lease = build_lease(node)
        name = node["metadata"]["name"]
        self.heartbeats += 1
        kubelet = self.client_for(name)
        try:
            await kubelet.patch(LEASES, name, {"spec": lease["spec"]}, namespace=NODE_LEASE_NS)
        except errors.NotFound:
            try:
                await kubelet.create(LEASES, lease, namespace=NODE_LEASE_NS)
            except errors.AlreadyExists:
                pass

    async def run_heartbeats(self) -> None:
        """Renew leases every lease_interval; post Ready heartbeats every status_interval."""
        loop = asyncio.get_running_loop()
        next_status = loop.time() + self.status_interval

        async def beat() -> None:
            nonlocal next_status
            post_status = loop.time() >= next_status
            if post_status:
                next_status = loop.time() + self.status_interval
            for name in list(self.names):
                if name not in self.not_ready:  # one node's failure must not starve the rest
                    await _logged(self._heartbeat(name, post_status), f"heartbeat for node {name}")

        await run_periodic(beat, self.lease_interval, name="node heartbeats", logger=log)

    async def _heartbeat(self, name: str, post_status: bool) -> None:
        await self._renew_lease({"metadata": {"name": name}})
        if post_status:
            await self._post_ready(name)

    def _status_lock(self, name: str) -> asyncio.Lock:
        return self._status_locks.setdefault(name, asyncio.Lock())

    async def _post_ready(self, name: str) -> None:
        async with self._status_lock(name):
            if name in self.not_ready:  # failed while this beat renewed the lease
                return
            kubelet = self.client_for(name)
            node = await kubelet.get(NODES, name)
            conds, _ = with_ready(node, True)
            self.heartbeats += 1
            await kubelet.patch(NODES, name, {"status": {"conditions": conds}},
                                subresource="status")

    async def cordon(self, name: str, on: bool = True) -> Obj:
        """spec.unschedulable plus the unschedulable taint, as `kubectl cordon` and the
        node lifecycle controller together produce."""
        node = await self.client.get(NODES, name)
        taints = [t for t in node.get("spec", {}).get("taints") or [] if t.get("key") != UNSCHEDULABLE_TAINT["key"]]
        if on:
            taints.append(dict(UNSCHEDULABLE_TAINT, timeAdded=now_iso()))
        return await self.client.patch(NODES, name, {"spec": {"unschedulable": True if on else None,
                                                              "taints": taints or None}})

    async def drain(self, name: str, *, timeout: float = 60.0, retry: float = 1.0) -> list[str]:
        """Cordon, then evict every pod on the node through pods/eviction (which honours
        PodDisruptionBudgets; 429 means retry later). DaemonSet and mirror pods stay.
        Returns the evicted pods as ns/name."""
        await self.cordon(name)
        pods = (await self.client.list_all(PODS, field_selector=f"spec.nodeName={name}")).get("items", [])
        todo = [p for p in pods if p.get("spec", {}).get("nodeName") == name and not _daemon_or_mirror(p)]
        evicted: list[str] = []
        deadline = asyncio.get_running_loop().time() + timeout
        while todo:
            later = []
            for p in todo:
                ns, pname = p["metadata"]["namespace"], p["metadata"]["name"]
                body = {"apiVersion": "policy/v1", "kind": "Eviction",
                        "metadata": {"name": pname, "namespace": ns}}
                try:
                    await self.client.create(PODS, body, namespace=ns, subresource="eviction", name=pname)
                    evicted.append(f"{ns}/{pname}")
                except errors.NotFound:
                    evicted.append(f"{ns}/{pname}")
                except errors.TooManyRequests:
                    later.append(p)
            todo = later
            if todo:
                if asyncio.get_running_loop().time() >= deadline:
                    raise errors.Timeout(f"drain of node {name} timed out; blocked by a PodDisruptionBudget: "
                                         + ", ".join(f"{p['metadata']['namespace']}/{p['metadata']['name']}" for p in todo))
                await asyncio.sleep(retry)
        return evicted

    async def set_ready(self, name: str, ready: bool) -> Obj:
        """Simulate a node failure (heartbeats stop; Ready=Unknown; unreachable taints) or
        recovery. Eviction of pods follows from the taints (see lifecycle.TaintEvictor)."""
        if ready:
            self.not_ready.discard(name)
        else:
            self.not_ready.add(name)
        async with self._status_lock(name):  # after any beat already under way
            node = await self.client.get(NODES, name)
            conds, taints = with_ready(node, ready)
            await self.client.patch(NODES, name, {"status": {"conditions": conds}},
                                    subresource="status")
            return await self.client.patch(NODES, name, {"spec": {"taints": taints or None}})


def _daemon_or_mirror(pod: Obj) -> bool:
    meta = pod.get("metadata", {})
    if "kubernetes.io/config.mirror" in (meta.get("annotations") or {}):
        return True
    return any(o.get("kind") == "DaemonSet" and o.get("controller") for o in meta.get("ownerReferences") or ())


async def _logged(step: Awaitable[None], what: str) -> None:
    """Await ``step``; log (never raise) its failure, so a loop over nodes goes on."""
    try:
        await step
    except errors.StatusError as e:
        log.warning("%s failed: %s", what, e)
    except Exception:
        log.exception("%s failed", what)
