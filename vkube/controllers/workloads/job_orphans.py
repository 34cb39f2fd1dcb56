"""Pods holding the Job tracking finalizer after their Job is gone (kubernetes#108645).

A Job deleted with ``propagationPolicy=Background`` or ``Orphan`` is removed before its pods;
nothing would ever count those pods again, so without this they hang in Terminating (or keep
a finalizer that blocks their deletion later). As the Job controller's ``syncOrphanPod``: a pod
whose controller is not a Job we manage, whose Job no longer exists (or is another object by
that name), or whose Job has finished, loses the finalizer.
"""

from __future__ import annotations

from typing import Any, Protocol

from vkube.api.errors import Conflict, NotFound
from vkube.client.resources import JOBS, PODS
from vkube.controllers.workloads._common import controller_ref, split_key
from vkube.controllers.workloads.job_policy import (
    MANAGED_BY_US,
    TRACKING_FINALIZER,
    finished_condition,
    has_tracking_finalizer,
)


class _JobSide(Protocol):
    """What of the Job controller this needs: its client, informers and queue."""

    client: Any
    pods: Any
    owners: Any
    queue: Any


#: Work-queue keys for such pods: ``orphan-pod:<namespace>/<name>`` (Job keys never hold ':').
ORPHAN = "orphan-pod:"


async def release_orphan(ctrl: _JobSide, pod_key: str) -> None:
    ns, name = split_key(pod_key)
    pod = ctrl.pods.get(name, ns)
    if pod is None or not has_tracking_finalizer(pod):
        return
    ref = controller_ref(pod)
    if ref is not None:
        if ref.get("kind") != "Job" or ref.get("apiVersion") != "batch/v1":
            return  # some other controller's pod: not ours to touch
        job = ctrl.owners.get(ref["name"], ns)
        if job is None:  # the cache may lag behind a Job created a moment ago: ask the API
            try:
                job = await ctrl.client.get(JOBS, ref["name"], namespace=ns)
            except NotFound:
                job = None
        if job is not None and job["metadata"].get("uid") == ref.get("uid"):
            managed_by = (job.get("spec") or {}).get("managedBy")
            if managed_by and managed_by != MANAGED_BY_US:
                return
            if finished_condition(job) is None:
                ctrl.queue.add(f"{ns}/{ref['name']}")  # still tracked: the Job's sync owns it
                return
    m = pod["metadata"]
    fins = [f for f in m.get("finalizers") or () if f != TRACKING_FINALIZER]
    try:
        await ctrl.client.patch(PODS, name, {"metadata": {"finalizers": fins or None,
                                                          "uid": m["uid"]}}, namespace=ns)
    except (NotFound, Conflict):
        pass  # gone already, or replaced by a new pod of that name: nothing of ours to drop
