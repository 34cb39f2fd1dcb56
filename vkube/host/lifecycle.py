"""The node lifecycle controller's taint-based eviction: pods on a node with a NoExecute taint
they do not tolerate are deleted at once; pods tolerating it for ``tolerationSeconds`` are
deleted when that runs out. Pods with no toleration at all for the not-ready/unreachable
taints get ``default_toleration_seconds`` (what the DefaultTolerationSeconds admission plugin
would have added, 300 s in Kubernetes)."""

from __future__ import annotations

import logging
import time

from vkube.api import errors
from vkube.api.meta import Obj, parse_time
from vkube.client import Client
from vkube.client.resources import PODS
from vkube.controllers.events import EventRecorder
from vkube.controllers.informer import Informer
from vkube.controllers.workqueue import WorkQueue, run_workers
from vkube.host.nodes import NOT_READY_KEY, UNREACHABLE_KEY, now_iso
from vkube.host.predicates import tolerates

log = logging.getLogger(__name__)

def _parse(ts: str | None) -> float | None:
    t = parse_time(ts)
    return None if t is None else t.timestamp()


def eviction_time(pod: Obj, taints: list[Obj], *, now: float, default_seconds: float) -> float | None:
    """When the pod must go (now or later), or None if its tolerations keep it forever."""
    tolerations = pod.get("spec", {}).get("tolerations") or []
    at: float | None = None
    for taint in taints:
        if taint.get("effect") != "NoExecute":
            continue
        added = _parse(taint.get("timeAdded")) or now
        matching = [t for t in tolerations if tolerates(t, taint)]
        if not matching:
            if taint.get("key") in (NOT_READY_KEY, UNREACHABLE_KEY):
                seconds: float | None = default_seconds
            else:
                return now
        else:
            limits = [float(t["tolerationSeconds"]) for t in matching if t.get("tolerationSeconds") is not None]
            seconds = min(limits) if limits else None
        if seconds is not None:
            when = added + max(0.0, seconds)
            at = when if at is None else min(at, when)
    return at


class TaintEvictor:
    def __init__(self, client: Client, pods: Informer, nodes: Informer, *,
                 default_toleration_seconds: float = 300.0) -> None:
        self.client = client
        self.pods = pods
        self.nodes = nodes
        self.default_toleration_seconds = default_toleration_seconds
        self.recorder = EventRecorder(client, "taint-eviction-controller")
        self.queue = WorkQueue()
        self.evicted = 0
        pods.add_index("vkube.io/nodeName", lambda p: [p.get("spec", {}).get("nodeName") or ""])
        pods.add_handler(self._on_pod)
        nodes.add_handler(self._on_node)

    def _on_pod(self, typ: str, pod: Obj, old: Obj | None) -> None:
        if typ != "DELETED" and pod.get("spec", {}).get("nodeName"):
            meta = pod["metadata"]
            self.queue.add(f"{meta.get('namespace')}/{meta.get('name')}")

    def _on_node(self, typ: str, node: Obj, old: Obj | None) -> None:
        def noexec(n: Obj | None) -> list[Obj]:
            return [t for t in (n or {}).get("spec", {}).get("taints") or [] if t.get("effect") == "NoExecute"]
        if typ == "DELETED" or noexec(node) == noexec(old):
            return
        for p in self.pods.by_index("vkube.io/nodeName", node["metadata"]["name"]):
            self.queue.add(f"{p['metadata'].get('namespace')}/{p['metadata'].get('name')}")

    async def _check(self, key: str) -> None:
        ns, _, name = key.partition("/")
        pod = self.pods.get(name, ns)
        if pod is None or pod["metadata"].get("deletionTimestamp"):
            return
        node = self.nodes.get(pod.get("spec", {}).get("nodeName", ""))
        if node is None:
            return
        now = time.time()
        at = eviction_time(pod, node.get("spec", {}).get("taints") or [], now=now,
                           default_seconds=self.default_toleration_seconds)
        if at is None:
            return
        if at > now:
            self.queue.add_after(key, at - now)
            return
        self.recorder.event({"apiVersion": "v1", "kind": "Pod", "metadata": pod["metadata"]},
                            "Normal", "TaintManagerEviction", f"Marking for deletion Pod {key}")
        conds = [c for c in pod.get("status", {}).get("conditions") or [] if c.get("type") != "DisruptionTarget"]
        conds.append({"type": "DisruptionTarget", "status": "True", "reason": "DeletionByTaintManager",
                      "message": "Taint manager: deleting due to NoExecute taint",
                      "lastTransitionTime": now_iso()})
        try:
            await self.client.patch(PODS, name, {"status": {"conditions": conds}}, namespace=ns, subresource="status")
            await self.client.delete(PODS, name, namespace=ns, preconditions={"uid": pod["metadata"].get("uid")})
            self.evicted += 1
        except (errors.NotFound, errors.Conflict):
            pass

    async def run(self) -> None:
        try:
            await run_workers(self.queue, self._check, name="taint eviction", logger=log)
        finally:
            await self.recorder.close()
