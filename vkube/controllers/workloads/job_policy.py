"""Pure Job accounting (pkg/controller/job helpers): completed-index intervals, pod failure
policy matching, how many pods to want, and the exponential re-creation backoff."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from vkube.controllers.workloads._common import Obj, pod_from_template

COMPLETION_INDEX = "batch.kubernetes.io/job-completion-index"
TRACKING_FINALIZER = "batch.kubernetes.io/job-tracking"
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"
CONTROLLER_UID_LABEL = "batch.kubernetes.io/controller-uid"


# ---------------------------------------------------------------- indexes

def parse_indexes(s: str | None, completions: int | None = None) -> set[int]:
    """``"1,3-5,7"`` → {1, 3, 4, 5, 7}; out-of-range or malformed parts are ignored."""
    out: set[int] = set()
    for part in (s or "").split(","):
        part = part.strip()
        if not part:
            continue
        lo, _, hi = part.partition("-")
        try:
            a, b = int(lo), int(hi) if hi else int(lo)
        except ValueError:
            continue
        out.update(i for i in range(a, b + 1) if completions is None or 0 <= i < completions)
    return out


def format_indexes(indexes: Iterable[int]) -> str:
    """{1, 3, 4, 5, 7} → ``"1,3-5,7"`` (the compressed form of status.completedIndexes)."""
    ordered = sorted(set(indexes))
    parts: list[str] = []
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        parts.append(str(ordered[i]) if i == j else f"{ordered[i]}-{ordered[j]}")
        i = j + 1
    return ",".join(parts)


def pod_index(pod: Obj) -> int | None:
    m = pod.get("metadata") or {}
    raw = (m.get("annotations") or {}).get(COMPLETION_INDEX) or (m.get("labels") or {}).get(
        COMPLETION_INDEX)
    try:
        return int(raw) if raw is not None else None
    except ValueError:
        return None


def first_pending_indexes(completions: int, succeeded: set[int], active: set[int],
                          n: int) -> list[int]:
    """The lowest ``n`` indexes neither succeeded nor running."""
    out: list[int] = []
    for i in range(completions):
        if len(out) >= n:
            break
        if i not in succeeded and i not in active:
            out.append(i)
    return out


# ---------------------------------------------------------------- wanted pods

def want_active(spec: Obj, succeeded: int, active: int) -> int:
    parallelism = int(spec.get("parallelism", 1))
    completions = spec.get("completions")
    if completions is None:
        return active if succeeded > 0 else parallelism
    return max(min(int(completions) - succeeded, parallelism), 0)


# ---------------------------------------------------------------- backoff

def backoff_delay(failures: int, base: float, cap: float) -> float:
    """10s · 2^(n-1) capped at 6m, as the Job controller's pod re-creation backoff."""
    if failures <= 0 or base <= 0:
        return 0.0
    return min(base * (2 ** min(failures - 1, 30)), cap)


# ---------------------------------------------------------------- pod failure policy

def _exit_code_matches(pod: Obj, req: Obj) -> str | None:
    status = pod.get("status") or {}
    values = set(req.get("values") or ())
    for cs in (status.get("initContainerStatuses") or []) + (status.get("containerStatuses") or []):
        term = (cs.get("state") or {}).get("terminated")
        if term is None:
            continue
        if req.get("containerName") and req["containerName"] != cs.get("name"):
            continue
        code = int(term.get("exitCode") or 0)
        if code == 0:
            continue
        hit = code in values if req.get("operator") == "In" else code not in values
        if hit:
            return f"Container {cs.get('name')} for pod {{pod}} failed with exit code {code}"
    return None


def _condition_matches(pod: Obj, patterns: list[Obj]) -> str | None:
    for pat in patterns:
        for c in (pod.get("status") or {}).get("conditions") or ():
            if c.get("type") == pat.get("type") and c.get("status") == pat.get("status", "True"):
                return f"Pod {{pod}} has condition {c.get('type')}"
    return None


def match_failure_policy(policy: Obj | None, pod: Obj) -> tuple[str, str] | None:
    """The action (FailJob, FailIndex, Ignore, Count) of the first rule matching a failed pod
    and a message, or None when no rule matches (the pod then counts as usual)."""
    if not policy:
        return None
    m = pod.get("metadata") or {}
    who = f"{m.get('namespace')}/{m.get('name')}"
    for i, rule in enumerate(policy.get("rules") or ()):
        msg = None
        if rule.get("onExitCodes"):
            msg = _exit_code_matches(pod, rule["onExitCodes"])
        elif rule.get("onPodConditions"):
            msg = _condition_matches(pod, rule["onPodConditions"])
        if msg is not None:
            action = rule.get("action", "Count")
            return action, msg.format(pod=who) + f" matching {action} rule at index {i}"
    return None


# ---------------------------------------------------------------- messages, pods

MSG_BACKOFF = "Job has reached the specified backoff limit"
MSG_DEADLINE = "Job was active longer than specified deadline"
MSG_COMPLETE = "Reached expected number of succeeded pods"
MSG_MAX_FAILED_INDEXES = "Job has exceeded the specified maximal number of failed indexes"
MSG_FAILED_INDEXES = "Job has failed indexes"
MANAGED_BY_US = "kubernetes.io/job-controller"
INDEX_FAILURE_COUNT = "batch.kubernetes.io/job-index-failure-count"


def finished_condition(job: Obj) -> Obj | None:
    for c in (job.get("status") or {}).get("conditions") or ():
        if c.get("type") in ("Complete", "Failed") and c.get("status") == "True":
            return c
    return None


def has_tracking_finalizer(pod: Obj) -> bool:
    return TRACKING_FINALIZER in ((pod.get("metadata") or {}).get("finalizers") or ())


def _phase(pod: Obj) -> str:
    return (pod.get("status") or {}).get("phase") or "Pending"


def _deleting(pod: Obj) -> bool:
    return bool((pod.get("metadata") or {}).get("deletionTimestamp"))


def job_pod(job: Obj, index: int | None, *, index_failures: int = 0) -> Obj:
    """A pod for the Job (and completion index): tracking finalizer, job labels, and for
    Indexed jobs the index annotation/label, hostname and JOB_COMPLETION_INDEX env."""
    name = job["metadata"]["name"]
    gen = f"{name}-" if index is None else f"{name}-{index}-"
    pod = pod_from_template(job["spec"]["template"], job, generate_name=gen)
    m = pod["metadata"]
    m.setdefault("finalizers", []).append(TRACKING_FINALIZER)
    m["labels"].setdefault(JOB_NAME_LABEL, name)
    m["labels"].setdefault(CONTROLLER_UID_LABEL, job["metadata"]["uid"])
    if index is not None:
        m.setdefault("annotations", {})[COMPLETION_INDEX] = str(index)
        m["labels"][COMPLETION_INDEX] = str(index)
        if index_failures:
            m["annotations"][INDEX_FAILURE_COUNT] = str(index_failures)
        spec = pod["spec"]
        spec.setdefault("hostname", f"{name}-{index}")
        env = {"name": "JOB_COMPLETION_INDEX", "valueFrom": {"fieldRef": {
            "fieldPath": f"metadata.annotations['{COMPLETION_INDEX}']"}}}
        for c in (spec.get("initContainers") or []) + (spec.get("containers") or []):
            if not any(e.get("name") == "JOB_COMPLETION_INDEX" for e in c.get("env") or ()):
                c.setdefault("env", []).append(dict(env))
    return pod


def index_failure_count(pod: Obj) -> int:
    try:
        return int(((pod.get("metadata") or {}).get("annotations") or {}).get(
            INDEX_FAILURE_COUNT) or 0)
    except ValueError:
        return 0


def index_failures(pods: Iterable[Obj]) -> dict[int, int]:
    """Failures so far per index: a failed pod carrying count n means n+1 failures."""
    out: dict[int, int] = {}
    for p in pods:
        idx = pod_index(p)
        if idx is not None and (_phase(p) == "Failed" or _deleting(p)):
            out[idx] = max(out.get(idx, 0), index_failure_count(p) + 1)
    return out


def replacement_policy(spec: Obj) -> str:
    """podReplacementPolicy: Failed when a podFailurePolicy is set, else TerminatingOrFailed."""
    return spec.get("podReplacementPolicy") or (
        "Failed" if spec.get("podFailurePolicy") else "TerminatingOrFailed")


def match_success_policy(policy: Obj | None, done: set[int]) -> str | None:
    """The message of the first successPolicy rule the succeeded indexes satisfy, or None."""
    for i, rule in enumerate((policy or {}).get("rules") or ()):
        want_idx = rule.get("succeededIndexes")
        count = rule.get("succeededCount")
        if want_idx is not None:
            wanted = parse_indexes(want_idx)
            ok = len(wanted & done) >= int(count) if count is not None else wanted <= done
        elif count is not None:
            ok = len(done) >= int(count)
        else:
            ok = False
        if ok:
            return f"Matched rules at index {i}"
    return None


# ---------------------------------------------------------------- accounting

@dataclass
class Tally:
    """What the Job's status says has been counted, plus what this sync adds to it."""

    uncounted_succeeded: set[str] = field(default_factory=set)
    uncounted_failed: set[str] = field(default_factory=set)
    done: set[int] = field(default_factory=set)  # completed indexes
    failed_indexes: set[int] = field(default_factory=set)
    failure: tuple[str, str] | None = None  # (reason, message) once FailureTarget is known
    release: list[Obj] = field(default_factory=list)  # pods whose finalizer may go now
    new_failures: int = 0

    @classmethod
    def from_status(cls, spec: Obj, status: Obj) -> "Tally":
        unc = status.get("uncountedTerminatedPods") or {}
        indexed = spec.get("completionMode") == "Indexed"
        comp = spec.get("completions")
        t = cls(set(unc.get("succeeded") or ()), set(unc.get("failed") or ()),
                parse_indexes(status.get("completedIndexes"), comp) if indexed else set(),
                parse_indexes(status.get("failedIndexes"), comp)
                if indexed and spec.get("backoffLimitPerIndex") is not None else set())
        for c in status.get("conditions") or ():
            if c.get("type") == "FailureTarget" and c.get("status") == "True":
                t.failure = (c.get("reason") or "", c.get("message") or "")
        return t


def record_finished(spec: Obj, tally: Tally, pods: Iterable[Obj]) -> None:
    """Step one of tracking: note every finished pod still holding our finalizer as uncounted
    (succeeded indexes, failed indexes, pod failure policy verdicts included)."""
    indexed = spec.get("completionMode") == "Indexed"
    comp = spec.get("completions")
    per_index = spec.get("backoffLimitPerIndex") if indexed else None
    policy = spec.get("podFailurePolicy")
    for p in pods:
        uid = p["metadata"]["uid"]
        if not has_tracking_finalizer(p) or uid in tally.uncounted_succeeded \
                or uid in tally.uncounted_failed:
            continue
        phase = _phase(p)
        idx = pod_index(p)
        if phase == "Succeeded":
            tally.uncounted_succeeded.add(uid)
            if indexed and idx is not None and (comp is None or 0 <= idx < int(comp)):
                tally.done.add(idx)
        elif phase == "Failed" or _deleting(p):
            if phase != "Failed" and policy:
                continue  # with a policy, wait until the pod is terminal to judge it
            action = match_failure_policy(policy, p)
            if action is not None and action[0] == "Ignore":
                tally.release.append(p)
                continue
            if action is not None and action[0] == "FailJob" and tally.failure is None:
                tally.failure = ("PodFailurePolicy", action[1])
            if per_index is not None and idx is not None and (
                    (action is not None and action[0] == "FailIndex")
                    or index_failure_count(p) + 1 > int(per_index)):
                tally.failed_indexes.add(idx)
            tally.uncounted_failed.add(uid)
            tally.new_failures += 1
        else:
            continue
        tally.release.append(p)


def verdict(spec: Obj, status: Obj, tally: Tally, *, active: int, restarts: int,
            elapsed: float | None) -> tuple[str, str, bool] | None:
    """(reason, message, succeeded?) once the Job has met its failure or success criteria,
    else None. ``elapsed``: seconds since startTime (None while suspended)."""
    if tally.failure is not None:
        return tally.failure[0], tally.failure[1], False
    indexed = spec.get("completionMode") == "Indexed"
    comp = spec.get("completions")
    per_index = spec.get("backoffLimitPerIndex") if indexed else None
    failed = int(status.get("failed") or 0) + len(tally.uncounted_failed)
    max_failed = spec.get("maxFailedIndexes")
    if per_index is not None and max_failed is not None \
            and len(tally.failed_indexes) > int(max_failed):
        return "MaxFailedIndexesExceeded", MSG_MAX_FAILED_INDEXES, False
    if per_index is None and failed + restarts > int(spec.get("backoffLimit", 6)):
        return "BackoffLimitExceeded", MSG_BACKOFF, False
    deadline = spec.get("activeDeadlineSeconds")
    if deadline is not None and elapsed is not None and elapsed >= int(deadline):
        return "DeadlineExceeded", MSG_DEADLINE, False
    if indexed:
        hit = match_success_policy(spec.get("successPolicy"), tally.done)
        if hit is not None:
            return "SuccessPolicy", hit, True
        if comp is not None and tally.failed_indexes and \
                len(tally.done | tally.failed_indexes) >= int(comp):
            return "FailedIndexes", MSG_FAILED_INDEXES, False
        if comp is not None and len(tally.done) >= int(comp):
            return "CompletionsReached", MSG_COMPLETE, True
        return None
    succeeded = int(status.get("succeeded") or 0) + len(tally.uncounted_succeeded)
    if comp is not None:
        return ("CompletionsReached", MSG_COMPLETE, True) if succeeded >= int(comp) else None
    if succeeded > 0 and active == 0:
        return "CompletionsReached", MSG_COMPLETE, True
    return None
