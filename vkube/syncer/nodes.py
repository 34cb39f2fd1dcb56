"""Nodes, host → virtual, in one of three modes (values ``sync.nodes``):

- fake (default): one virtual node per host node running synced pods, named like it, without
  host details (fixed capacity, address 127.0.0.1, kubelet port = the syncer's log proxy);
  removed when no synced pod runs there any more;
- real (``enabled``): the host nodes where its pods run — or all (``syncAllNodes``, or
  ``enableScheduler`` so the virtual scheduler can choose) — filtered by ``nodeSelector``,
  copied with labels, taints and status (address and kubelet endpoint still the proxy's).

Labels and taints a tenant edits on a virtual node stay: the last host values are kept in
annotations and only what the host changed since is written (a three-way merge).
"""

from __future__ import annotations

import copy
import json

from vkube.api import errors
from vkube.api.meta import Obj, now_rfc3339, parse_time, utcnow
from vkube.client.resources import NODES, PODS
from vkube.syncer.base import KindSyncer, SyncContext, delete_ignore_missing

ANN_SYNCED = "vkube.io/node-synced"  # "fake" | "real": ours to update and delete
ANN_HOST_LABELS = "vkube.io/host-labels"
ANN_HOST_TAINTS = "vkube.io/host-taints"
#: how often an unchanged virtual node's status is written again: the kubelet's
#: nodeStatusReportFrequency (5 min; its 10 s heartbeat is the Lease, which nothing in a
#: virtual cluster reads). A change is written at once; this only refreshes lastHeartbeatTime
HEARTBEAT_SECONDS = 300.0
FAKE_CAPACITY = {"cpu": "16", "memory": "64Gi", "pods": "110", "ephemeral-storage": "100Gi"}
_FAKE_LABEL_KEYS = ("kubernetes.io/arch", "kubernetes.io/os")


def _pod_node(pod: Obj) -> list[str]:
    node = (pod.get("spec") or {}).get("nodeName")
    return [node] if node else []


def merge_three_way(current: dict[str, str], host: dict[str, str],
                    last: dict[str, str]) -> dict[str, str]:
    """Virtual labels after a host change: host values win unless the tenant changed the key
    since the last sync (or set it before the host had it); keys the host dropped go unless
    the tenant changed them."""
    out = dict(current)
    for k, v in host.items():
        if k in current and current[k] != last.get(k) and current[k] != v:
            continue  # the tenant's value, not the one we wrote last
        out[k] = v
    for k, v in last.items():
        if k not in host and out.get(k) == v:
            del out[k]
    return out


def _taint_key(t: Obj) -> str:
    return f"{t.get('key', '')}:{t.get('effect', '')}"


def merge_taints(current: list[Obj], host: list[Obj], last: list[Obj]) -> list[Obj]:
    cur = {_taint_key(t): t for t in current}
    hst = {_taint_key(t): t for t in host}
    lst = {_taint_key(t): t for t in last}
    out = dict(cur)
    for k, t in hst.items():
        if k in cur and k in lst and cur[k] != lst[k]:
            continue  # tenant edited it
        out[k] = t
    for k, t in lst.items():
        if k not in hst and out.get(k) == t:
            del out[k]
    return [out[k] for k in sorted(out)]


class NodeSyncer(KindSyncer):
    kind = "nodes"

    def __init__(self, ctx: SyncContext) -> None:
        super().__init__(ctx)
        cfg = ctx.values.sync.nodes
        self.real = cfg.enabled
        self.all_nodes = cfg.sync_all_nodes or cfg.enable_scheduler
        self.selector = ctx.values.node_selector()  # sync.nodes and isolation

    def setup(self) -> None:
        inf = self.ctx.informers
        self.hnodes = inf.host(NODES, owned=False)
        self.hpods = inf.host(PODS)
        self.vnodes = inf.virtual(NODES)
        self.hpods.add_index("node", _pod_node)
        self.hnodes.add_handler(lambda t, o, old: self.enqueue(o["metadata"]["name"]))
        self.vnodes.add_handler(lambda t, o, old: self.enqueue(o["metadata"]["name"]))
        self.hpods.add_handler(self._on_pod)

    def _on_pod(self, typ: str, pod: Obj, old: Obj | None) -> None:
        if typ == "MODIFIED" and old is not None and _pod_node(pod) == _pod_node(old):
            return  # a status change: which nodes have pods did not change
        for n in set(_pod_node(pod)) | set(_pod_node(old or {})):
            self.enqueue(n)

    def initial_keys(self) -> list[str]:
        keys = {o["metadata"]["name"] for o in self.hnodes.list()}
        keys |= {o["metadata"]["name"] for o in self.vnodes.list() if _ann(o, ANN_SYNCED)}
        return sorted(keys)

    def _selected(self, hnode: Obj) -> bool:
        labels = hnode["metadata"].get("labels") or {}
        return all(labels.get(k) == v for k, v in self.selector.items())

    def needed(self, name: str) -> bool:
        hnode = self.hnodes.get(name)
        if hnode is None or not self._selected(hnode):
            return False
        return self.all_nodes or bool(self.hpods.by_index("node", name))

    async def ensure(self, name: str) -> None:
        """Called before a pod is bound to ``name``: the node must exist first (a node we
        already made is kept current by its own events and heartbeat)."""
        vnode = self.vnodes.get(name)
        if vnode is not None and _ann(vnode, ANN_SYNCED):
            return
        await self.reconcile(name)

    async def reconcile(self, key: str) -> None:
        name = key
        vnode = self.vnodes.get(name)
        if not self.needed(name):
            if vnode is not None and _ann(vnode, ANN_SYNCED):
                await delete_ignore_missing(self.ctx.virtual, NODES, name, None)
            return
        hnode = self.hnodes.get(name)
        assert hnode is not None
        want_meta, want_spec, want_status = self._desired(hnode)
        if vnode is None:
            try:
                vnode = await self.ctx.virtual.create(NODES, {
                    "apiVersion": "v1", "kind": "Node", "metadata": want_meta,
                    "spec": want_spec})
            except errors.AlreadyExists:
                vnode = await self.ctx.virtual.get(NODES, name)
                if not _ann(vnode, ANN_SYNCED):
                    return  # a node the tenant made: not ours
            await self._write_status(vnode, want_status)
            self.queue.add_after(name, HEARTBEAT_SECONDS)
            return
        if not _ann(vnode, ANN_SYNCED):
            return
        meta = vnode["metadata"]
        last_labels = json.loads(_ann(vnode, ANN_HOST_LABELS) or "{}")
        last_taints = json.loads(_ann(vnode, ANN_HOST_TAINTS) or "[]")
        host_labels = json.loads(want_meta["annotations"][ANN_HOST_LABELS])
        host_taints = json.loads(want_meta["annotations"][ANN_HOST_TAINTS])
        labels = merge_three_way(meta.get("labels") or {}, host_labels, last_labels)
        taints = merge_taints((vnode.get("spec") or {}).get("taints") or [], host_taints,
                              last_taints)
        ann = {**(meta.get("annotations") or {}), **want_meta["annotations"]}
        spec = {**(vnode.get("spec") or {}), **{k: v for k, v in want_spec.items()
                                                if k != "taints"}}
        if taints:
            spec["taints"] = taints
        else:
            spec.pop("taints", None)
        if labels != (meta.get("labels") or {}) or ann != (meta.get("annotations") or {}) or \
                spec != (vnode.get("spec") or {}):
            new = copy.deepcopy(vnode)
            new["metadata"]["labels"], new["metadata"]["annotations"] = labels, ann
            new["spec"] = spec
            vnode = await self.ctx.virtual.update(NODES, new)
        await self._write_status(vnode, want_status)
        self.queue.add_after(name, HEARTBEAT_SECONDS)

    def _desired(self, hnode: Obj) -> tuple[Obj, Obj, Obj]:
        name = hnode["metadata"]["name"]
        hlabels = hnode["metadata"].get("labels") or {}
        hstatus = hnode.get("status") or {}
        hspec = hnode.get("spec") or {}
        if self.real:
            labels = dict(hlabels)
            taints = list(hspec.get("taints") or [])
            spec = {k: hspec[k] for k in ("unschedulable", "podCIDR", "podCIDRs") if k in hspec}
            status = copy.deepcopy(hstatus)
            if self.ctx.values.sync.nodes.clear_image_status:
                status.pop("images", None)
        else:
            labels = {k: hlabels[k] for k in _FAKE_LABEL_KEYS if k in hlabels}
            labels["kubernetes.io/hostname"] = name
            labels["vkube.io/fake-node"] = "true"
            taints, spec = [], {}
            info = hstatus.get("nodeInfo") or {}
            status = {
                "capacity": dict(FAKE_CAPACITY), "allocatable": dict(FAKE_CAPACITY),
                "conditions": _fake_conditions(),
                "nodeInfo": {"architecture": info.get("architecture", "amd64"),
                             "operatingSystem": info.get("operatingSystem", "linux"),
                             "kubeletVersion": info.get("kubeletVersion", "v1.37.1"),
                             "kubeProxyVersion": "", "containerRuntimeVersion": "vkube://fake",
                             "kernelVersion": "", "osImage": "vkube fake node",
                             "machineID": "", "systemUUID": "", "bootID": ""},
                "phase": "Running",
            }
        status["addresses"] = [{"type": "InternalIP", "address": "127.0.0.1"},
                               {"type": "Hostname", "address": name}]
        status["daemonEndpoints"] = {"kubeletEndpoint": {"Port": self.ctx.kubelet_port}}
        if taints:
            spec["taints"] = taints
        meta = {"name": name, "labels": labels, "annotations": {
            ANN_SYNCED: "real" if self.real else "fake",
            ANN_HOST_LABELS: json.dumps(labels, sort_keys=True),
            ANN_HOST_TAINTS: json.dumps(sorted(taints, key=_taint_key), sort_keys=True)}}
        return meta, spec, status

    async def _write_status(self, vnode: Obj, status: Obj) -> None:
        cur = vnode.get("status") or {}
        if _same_status(cur, status):
            return
        new = {**vnode, "status": status}  # shallow: the cache's object stays untouched
        await self.ctx.virtual.update(NODES, new, subresource="status")


def _fake_conditions() -> list[Obj]:
    now = now_rfc3339()
    conds = [("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
             ("MemoryPressure", "False", "KubeletHasSufficientMemory", ""),
             ("DiskPressure", "False", "KubeletHasNoDiskPressure", ""),
             ("PIDPressure", "False", "KubeletHasSufficientPID", "")]
    return [{"type": t, "status": s, "reason": r, "message": m, "lastHeartbeatTime": now,
             "lastTransitionTime": now} for t, s, r, m in conds]


def _same_status(cur: Obj, want: Obj) -> bool:
    """Equal but for heartbeat times, unless the last heartbeat is older than the period."""
    def strip(s: Obj) -> Obj:
        drop = ("lastHeartbeatTime", "lastTransitionTime")
        return {**s, "conditions": [{k: v for k, v in c.items() if k not in drop}
                                    for c in s.get("conditions") or []]}
    if strip(cur) != strip(want):
        return False
    beats = [c.get("lastHeartbeatTime") for c in cur.get("conditions") or []
             if c.get("type") == "Ready"]
    if not beats or not beats[0]:
        return True
    last = parse_time(beats[0])
    if last is None:
        return False
    age = (utcnow() - last).total_seconds()
    return age < HEARTBEAT_SECONDS


def _ann(obj: Obj, key: str) -> str | None:
    return ((obj.get("metadata") or {}).get("annotations") or {}).get(key)
