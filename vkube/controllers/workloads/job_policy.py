"""Pure Job accounting (pkg/controller/job helpers): completed-index intervals, pod failure
policy matching, how many pods to want, and the exponential re-creation backoff."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

Obj = dict[str, Any]

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
