"""Helpers every workload controller shares: label selectors, owner references, pod state,
expectations (so a stale informer cache never creates duplicates) and slow-start batches."""

from __future__ import annotations

import asyncio
import copy
import time
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime
from typing import Any

from vkube.api.errors import BadRequest, NotFound, StatusError
from vkube.api.selectors import label_selector_from_dict
from vkube.api.meta import Obj, object_key, parse_time, rfc3339, split_key
from vkube.client.client import Resource
from vkube.client.resources import PODS

BURST_REPLICAS = 500  # at most this many creations/deletions per sync, as Kubernetes
EXPECTATIONS_TTL = 300.0  # seconds after which unmet expectations are presumed lost


# ---------------------------------------------------------------- time

fmt_time = rfc3339  # metav1.Time: the name the workload controllers use


# ---------------------------------------------------------------- selectors

def _expr_matches(labels: dict[str, str], expr: Obj) -> bool:
    key, op, values = expr.get("key", ""), expr.get("operator", ""), expr.get("values") or []
    if op == "In":
        return key in labels and labels[key] in values
    if op == "NotIn":
        return key not in labels or labels[key] not in values
    if op == "Exists":
        return key in labels
    if op == "DoesNotExist":
        return key not in labels
    if op in ("Gt", "Lt"):  # node affinity flavour
        try:
            have, want = int(labels[key]), int(values[0])
        except (KeyError, ValueError, IndexError):
            return False
        return have > want if op == "Gt" else have < want
    return False


def selector_matcher(selector: Obj | None) -> Callable[[dict[str, str] | None], bool]:
    """metav1.LabelSelector semantics: a nil selector matches nothing, an empty one everything.
    Parse once, match many (controllers test every pod of a namespace against it)."""
    try:
        parsed = label_selector_from_dict(selector)
    except BadRequest:  # the API server rejects such selectors; match nothing
        return lambda labels: False
    return lambda labels: parsed.matches(labels or {})


def selector_matches(selector: Obj | None, labels: dict[str, str] | None) -> bool:
    return selector_matcher(selector)(labels)


# ---------------------------------------------------------------- metadata / ownership

key_of = object_key  # the work-queue key of an object


def controller_ref(obj: Obj) -> Obj | None:
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or ():
        if ref.get("controller"):
            return ref
    return None


def owner_ref(owner: Obj, *, block: bool = True) -> Obj:
    """The controller ownerReference a child of ``owner`` carries."""
    m = owner["metadata"]
    return {"apiVersion": owner["apiVersion"], "kind": owner["kind"], "name": m["name"],
            "uid": m["uid"], "controller": True, "blockOwnerDeletion": block}


def is_owned_by(obj: Obj, owner: Obj) -> bool:
    ref = controller_ref(obj)
    return ref is not None and ref.get("uid") == owner["metadata"].get("uid")


def is_deleting(obj: Obj) -> bool:
    return bool((obj.get("metadata") or {}).get("deletionTimestamp"))


def deep(obj: Any) -> Any:
    return copy.deepcopy(obj)


# ---------------------------------------------------------------- pods

def pod_phase(pod: Obj) -> str:
    return (pod.get("status") or {}).get("phase") or "Pending"


def is_pod_active(pod: Obj) -> bool:
    return pod_phase(pod) not in ("Succeeded", "Failed") and not is_deleting(pod)


def pod_condition(pod: Obj, ctype: str) -> Obj | None:
    for c in (pod.get("status") or {}).get("conditions") or ():
        if c.get("type") == ctype:
            return c
    return None


def is_pod_ready(pod: Obj) -> bool:
    c = pod_condition(pod, "Ready")
    return c is not None and c.get("status") == "True"


def ready_since(pod: Obj) -> datetime | None:
    c = pod_condition(pod, "Ready")
    if c is None or c.get("status") != "True":
        return None
    return parse_time(c.get("lastTransitionTime"))


def is_pod_available(pod: Obj, min_ready_seconds: int, now: datetime) -> bool:
    """Ready for at least minReadySeconds (a missing transition time counts as long ago)."""
    if not is_pod_ready(pod):
        return False
    if min_ready_seconds <= 0:
        return True
    since = ready_since(pod)
    return since is None or (now - since).total_seconds() >= min_ready_seconds


def next_available_in(pods: Iterable[Obj], min_ready_seconds: int, now: datetime) -> float | None:
    """Seconds until the next ready-but-not-yet-available pod becomes available."""
    best: float | None = None
    if min_ready_seconds <= 0:
        return None
    for p in pods:
        since = ready_since(p)
        if since is None:
            continue
        left = min_ready_seconds - (now - since).total_seconds()
        if left > 0 and (best is None or left < best):
            best = left
    return None if best is None else best + 0.05


_PHASE_RANK = {"Pending": 0, "Unknown": 1, "Running": 2}


def restart_count(pod: Obj) -> int:
    return max((int(s.get("restartCount") or 0)
                for s in (pod.get("status") or {}).get("containerStatuses") or ()), default=0)


def deletion_rank(pod: Obj) -> tuple:
    """Sort key: pods to delete first sort first (unscheduled < pending < not ready < ready;
    ready for less time first; more restarts first; newer first), as ActivePods' Less."""
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    since = ready_since(pod)
    created = parse_time((pod.get("metadata") or {}).get("creationTimestamp"))
    return (
        1 if spec.get("nodeName") else 0,
        _PHASE_RANK.get(status.get("phase") or "Pending", 0),
        1 if is_pod_ready(pod) else 0,
        # ready for a shorter time (later timestamp) first → negate the timestamp
        -(since.timestamp()) if since else 0.0,
        -restart_count(pod),
        -(created.timestamp()) if created else 0.0,
    )


def pods_to_delete(pods: list[Obj], n: int) -> list[Obj]:
    return sorted(pods, key=deletion_rank)[:max(n, 0)]


def pod_from_template(template: Obj, owner: Obj, *, generate_name: str | None = None,
                      name: str | None = None) -> Obj:
    """A Pod built from ``spec.template`` (labels, annotations, finalizers, spec) with a
    controller ownerReference on ``owner``."""
    tmeta = template.get("metadata") or {}
    md: Obj = {"namespace": owner["metadata"].get("namespace"),
               "labels": dict(tmeta.get("labels") or {}),
               "ownerReferences": [owner_ref(owner)]}
    if tmeta.get("annotations"):
        md["annotations"] = dict(tmeta["annotations"])
    if tmeta.get("finalizers"):
        md["finalizers"] = list(tmeta["finalizers"])
    if name:
        md["name"] = name
    else:
        md["generateName"] = generate_name or owner["metadata"]["name"] + "-"
    return {"apiVersion": "v1", "kind": "Pod", "metadata": md,
            "spec": deep(template.get("spec") or {})}


# ---------------------------------------------------------------- conditions

def get_condition(status: Obj, ctype: str) -> Obj | None:
    for c in status.get("conditions") or ():
        if c.get("type") == ctype:
            return c
    return None


def set_condition(status: Obj, ctype: str, cstatus: str, reason: str, message: str,
                  now: datetime, *, update_field: str = "", force: bool = False) -> Obj:
    """Upsert a condition as Kubernetes' Set*Condition helpers: the same status and reason is
    left alone (unless ``force``); lastTransitionTime moves only when the status flips;
    ``update_field`` (Deployment's lastUpdateTime, Job's lastProbeTime) is stamped on change."""
    conds = status.setdefault("conditions", [])
    stamp = fmt_time(now)
    for c in conds:
        if c.get("type") == ctype:
            if c.get("status") == cstatus and c.get("reason") == reason and not force:
                return c
            if c.get("status") != cstatus:
                c["lastTransitionTime"] = stamp
            c.update(status=cstatus, reason=reason, message=message)
            if update_field:
                c[update_field] = stamp
            return c
    c = {"type": ctype, "status": cstatus}
    if update_field:
        c[update_field] = stamp
    c.update(lastTransitionTime=stamp, reason=reason, message=message)
    conds.append(c)
    return c


# ---------------------------------------------------------------- expectations

class Expectations:
    """Per-controller-key counts of creations and the set of deletions we wait to see.

    While unsatisfied, the controller trusts its own in-flight work over the cache and does not
    create or delete again. After ``ttl`` seconds (monotonic) unmet expectations lapse, as
    Kubernetes' ControllerExpectations do, so a lost watch event cannot wedge a controller."""

    def __init__(self, ttl: float = EXPECTATIONS_TTL,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._adds: dict[str, int] = {}
        self._dels: dict[str, set[str]] = {}
        self._stamp: dict[str, float] = {}
        self._ttl, self._mono = ttl, monotonic

    def satisfied(self, key: str) -> bool:
        if self._adds.get(key, 0) <= 0 and not self._dels.get(key):
            return True
        if self._mono() - self._stamp.get(key, 0.0) > self._ttl:
            self.forget(key)
            return True
        return False

    def expect_creations(self, key: str, n: int) -> None:
        self._adds[key] = self._adds.get(key, 0) + n
        self._stamp[key] = self._mono()

    def creation_observed(self, key: str, n: int = 1) -> None:
        if key in self._adds:
            self._adds[key] -= n
            if self._adds[key] <= 0:
                del self._adds[key]

    def expect_deletions(self, key: str, names: Iterable[str]) -> None:
        self._dels.setdefault(key, set()).update(names)
        self._stamp[key] = self._mono()

    def deletion_observed(self, key: str, name: str) -> None:
        s = self._dels.get(key)
        if s is not None:
            s.discard(name)
            if not s:
                del self._dels[key]

    def forget(self, key: str) -> None:
        self._adds.pop(key, None)
        self._dels.pop(key, None)
        self._stamp.pop(key, None)

    def observe_pod(self, key: str, type_: str, pod: Obj, old: Obj | None) -> None:
        """What a watch event about one of ``key``'s pods confirms: a creation (ADDED), a
        deletion (DELETED, or the pod just started terminating)."""
        if type_ == "ADDED":
            self.creation_observed(key)
        if type_ == "DELETED" or (is_deleting(pod) and not (old and is_deleting(old))):
            self.deletion_observed(key, pod["metadata"]["name"])


async def delete_expected(client: Any, expectations: Expectations, key: str, pod: Obj, *,
                          uid_precondition: bool = True) -> bool:
    """Delete a pod whose deletion ``expectations`` awaits. When the delete fails the watch
    will never confirm it, so it counts as observed then. Returns False if it was already
    gone; re-raises other API errors for the caller's event and retry."""
    m = pod["metadata"]
    try:
        await client.delete(PODS, m["name"], namespace=m.get("namespace"),
                            preconditions={"uid": m.get("uid")} if uid_precondition else None)
    except NotFound:
        expectations.deletion_observed(key, m["name"])
        return False
    except StatusError:
        expectations.deletion_observed(key, m["name"])
        raise
    return True


# ---------------------------------------------------------------- batching

async def slow_start(count: int, fn: Callable[[int], Awaitable[Any]],
                     initial: int = 1) -> tuple[int, BaseException | None]:
    """Run ``fn`` ``count`` times in batches of 1, 2, 4, … and stop after the first batch with
    a failure, so a quota or webhook rejection costs one call rather than hundreds.
    Returns (successes, first error)."""
    done, batch, idx = 0, min(initial, count), 0
    while batch > 0:
        results = await asyncio.gather(*(fn(idx + i) for i in range(batch)),
                                       return_exceptions=True)
        idx += batch
        errs = [r for r in results if isinstance(r, BaseException)]
        for e in errs:
            if isinstance(e, asyncio.CancelledError):
                raise e
        done += batch - len(errs)
        if errs:
            return done, errs[0]
        batch = min(2 * batch, count - idx)
    return done, None


# ---------------------------------------------------------------- status writes

async def write_status(client: Any, res: Resource, obj: Obj, status: Obj) -> Obj | None:
    """PUT the status subresource guarded by ``obj``'s resourceVersion. Returns the new object
    (None if it is gone). A Conflict propagates: ``status`` was computed from a stale view
    (e.g. a cache that had not yet seen our previous write), and writing it over the fresh
    object would lose what that write recorded (a CronJob's lastScheduleTime, a Job's counts);
    the runtime requeues the key and the next reconcile recomputes from fresh state."""
    body = dict(obj, status=status)
    try:
        return await client.update(res, body, subresource="status")
    except NotFound:
        return None


def int_or_percent(value: Any, total: int, *, round_up: bool) -> int:
    """IntOrString resolution: ``"25%"`` of ``total`` rounded up or down, or a plain int."""
    if value is None:
        return 0
    if isinstance(value, int):
        return value
    s = str(value).strip()
    if s.endswith("%"):
        pct = int(s[:-1])
        num = pct * total
        return -(-num // 100) if round_up else num // 100
    return int(s)
