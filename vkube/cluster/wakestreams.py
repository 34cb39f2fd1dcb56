"""``kubectl exec``/``attach``/``port-forward``/``logs`` right after a shared cluster woke.

Sleep removes a cluster's host pods; waking starts its API at once and its syncer a moment
later, which then makes the host pods again. A stream to a pod asked in that gap found no
kubelet proxy yet (a 503 naming the node's internal address, and kubectl's fallback from
WebSocket to SPDY then reported "exec requires a WebSocket upgrade"), or no host pod. The pod
was on a node when the cluster slept (``spec.nodeName``), so the request waits —
bounded, only in the minutes after a wake — until the syncer relays again and the pod's host
pod runs the container; then the API server serves it as it serves any other. A pod that does
not come back in time gets whatever the API server answers then.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from yarl import URL

from vkube.apiserver.requestinfo import parse as parse_request
from vkube.client.resources import NODES, PODS

if TYPE_CHECKING:
    from vkube.cluster.virtual import VirtualCluster

log = logging.getLogger(__name__)

#: the pod subresources that stream from the pod's node
POD_STREAMS = ("exec", "attach", "portforward", "log")
#: how long after a wake a stream waits for its pod to be back
WAKE_WINDOW = 180.0
#: the longest one request waits for it
WAIT = 90.0
_POLL = 0.2


@dataclass(frozen=True)
class PodStream:
    namespace: str
    name: str
    subresource: str
    container: str


def pod_stream(method: str, tail: str) -> PodStream | None:
    """The pod stream ``tail`` (path and query at the cluster) asks for, or None."""
    if "/pods/" not in tail:
        return None
    url = URL(tail, encoded=True)
    info = parse_request(method, url.path, url.query)
    if not (info.is_resource and info.group == "" and info.resource == "pods" and info.name
            and info.subresource in POD_STREAMS):
        return None
    return PodStream(info.namespace, info.name, info.subresource, url.query.get("container", ""))


async def until_pod_streams(vc: "VirtualCluster", target: PodStream, *, timeout: float = WAIT) -> None:
    """Until ``vc``'s syncer relays pod streams and ``target``'s pod runs on the host again
    (returns at the deadline, or at once when the pod did not run when it slept)."""
    deadline = time.monotonic() + timeout
    try:
        await vc.wait_ready(timeout=timeout)
    except Exception:  # stopped or slow: the API server answers as it can
        return
    syncer = vc.syncer
    if syncer is None:
        return
    informers = syncer.ctx.informers
    vpods = informers.virtual(PODS)
    vpod = vpods.get(target.name, target.namespace)
    if not _had_run(vpod):
        return  # not a pod that ran before the sleep: the API server answers as for any pod
    assert vpod is not None
    container = target.container or _first_container(vpod)
    node = (vpod.get("spec") or {}).get("nodeName") or ""
    hpods = informers.existing_host(PODS)
    if hpods is None:
        return
    from vkube.syncer.podrewrite import host_pod_name

    tr = syncer.ctx.tr
    hname = host_pod_name(tr, target.name, target.namespace)
    vnodes = informers.virtual(NODES)
    while time.monotonic() < deadline:
        if not _had_run(vpods.get(target.name, target.namespace)):
            return  # deleted meanwhile (its controller replaces it)
        hpod = hpods.get(hname, tr.host_namespace)
        if hpod is not None and _runs(hpod, container, target.subresource) and \
                (not node or vnodes.get(node) is not None):
            log.debug("%s of pod %s/%s: its host pod runs again", target.subresource,
                      target.namespace, target.name)
            return
        if hpod is not None and _stuck(hpod, container):
            return
        await asyncio.sleep(_POLL)
    log.info("%s of pod %s/%s: its host pod did not run again within %.0f s", target.subresource,
             target.namespace, target.name, timeout)


def _had_run(vpod: dict[str, Any] | None) -> bool:
    """The pod was on a node before the sleep (its status is reset to waiting while the syncer
    makes its host pod again, so only ``spec.nodeName`` tells) and is neither finished nor
    going."""
    if vpod is None or (vpod.get("metadata") or {}).get("deletionTimestamp"):
        return False
    status = vpod.get("status") or {}
    return bool((vpod.get("spec") or {}).get("nodeName")) and \
        status.get("phase") not in ("Succeeded", "Failed")


def _stuck(hpod: dict[str, Any], container: str) -> bool:
    """The host pod waits for something other than its start (an image pull back-off, a crash
    loop): waiting longer would not help, the API server answers as upstream does."""
    for cs in (hpod.get("status") or {}).get("containerStatuses") or []:
        if container and cs.get("name") != container:
            continue
        reason = ((cs.get("state") or {}).get("waiting") or {}).get("reason")
        if reason and reason not in ("ContainerCreating", "PodInitializing"):
            return True
    return (hpod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


def _first_container(pod: dict[str, Any]) -> str:
    containers = (pod.get("spec") or {}).get("containers") or []
    return str(containers[0].get("name") or "") if containers else ""


def _runs(hpod: dict[str, Any], container: str, subresource: str) -> bool:
    status = hpod.get("status") or {}
    if status.get("phase") != "Running":
        return False
    if subresource == "portforward" or not container:
        return True
    for cs in status.get("containerStatuses") or []:
        if cs.get("name") == container:
            state = cs.get("state") or {}
            return "running" in state or (subresource == "log" and "terminated" in state)
    return False


__all__ = ["POD_STREAMS", "PodStream", "WAKE_WINDOW", "pod_stream", "until_pod_streams"]
