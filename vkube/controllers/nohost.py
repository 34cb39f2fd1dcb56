"""Pods of a control plane that has no host to run them (``vkube serve`` without a host, or a
virtual cluster whose host is not named yet) say why they stay Pending, as kube-scheduler says
it of a cluster without nodes: ``PodScheduled=False`` (``Unschedulable``) and a Warning
``FailedScheduling`` event, so ``kubectl describe pod`` shows the reason instead of nothing.

Once a host is there (``active()`` turns False) this controller does nothing more; the syncer
then makes the host pods and copies the host's own conditions and events up.
"""

from __future__ import annotations

from collections.abc import Callable

from vkube.api import errors
from vkube.api.meta import rfc3339, utcnow
from vkube.client.resources import PODS
from vkube.controllers.runtime import Controller, Obj, split_key

#: kube-scheduler's words for a cluster without nodes (``ErrNoNodesAvailable``)
NO_NODES = "no nodes available to schedule pods"


class NoHostController(Controller):
    name = "vkube-no-host"
    workers = 1

    #: why there is no host, after NO_NODES; set by whoever adds the controller
    why = "this control plane has no host cluster to run them"
    #: whether there is still no host
    active: Callable[[], bool] = staticmethod(lambda: True)  # type: ignore[assignment]

    def setup(self) -> None:
        self.pods = self.mgr.informer(PODS)
        self.pods.add_handler(self._on_pod)

    def _on_pod(self, typ: str, pod: Obj, old: Obj | None) -> None:
        if typ != "DELETED" and self.active() and _waiting(pod):
            self.enqueue(pod)

    @property
    def message(self) -> str:
        return f"{NO_NODES}: {self.why}"

    async def reconcile(self, key: str) -> float | None:
        if not self.active():
            return None
        ns, name = split_key(key)
        pod = self.pods.get(name, ns)
        if pod is None or not _waiting(pod):
            return None
        conds = (pod.get("status") or {}).get("conditions") or []
        cur = next((c for c in conds if c.get("type") == "PodScheduled"), None)
        if cur and cur.get("status") == "False" and cur.get("message") == self.message:
            return None  # said already
        cond = {"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                "message": self.message, "lastProbeTime": None, "lastTransitionTime": rfc3339(utcnow())}
        others = [c for c in conds if c.get("type") != "PodScheduled"]
        try:
            await self.client.patch(PODS, name, {"metadata": {"uid": pod["metadata"]["uid"]},
                                                 "status": {"conditions": [*others, cond]}},
                                    namespace=ns, subresource="status")
        except (errors.NotFound, errors.Conflict):
            return None  # gone or replaced: its own event brings it back
        self.recorder.event(pod, "Warning", "FailedScheduling", self.message)
        return None


def _waiting(pod: Obj) -> bool:
    """Not placed, not finished, not going away."""
    status = pod.get("status") or {}
    return (not (pod.get("spec") or {}).get("nodeName") and status.get("phase", "Pending") == "Pending"
            and not (pod.get("metadata") or {}).get("deletionTimestamp"))
