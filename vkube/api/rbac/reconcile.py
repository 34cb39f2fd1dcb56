"""Reconciling stored bootstrap roles and bindings with the expected ones, as kube-apiserver's
``storage_rbac`` post-start hook does (``pkg/registry/rbac/reconciliation``) on every start.

- An object annotated ``rbac.authorization.kubernetes.io/autoupdate: "false"`` is left alone.
- Missing labels and annotations are added (existing values win).
- A role gains the expected rules it does not already cover (``Covers``), appended broken down,
  and never loses one; an aggregated role gains missing ``clusterRoleSelectors`` and its rules
  are left to the clusterrole-aggregation controller.
- A binding gains missing subjects; a binding whose ``roleRef`` differs must be re-created
  (``roleRef`` is immutable), which :func:`reconcile_binding` reports.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from vkube.api.rbac.rules import covers

__all__ = ["AUTOUPDATE", "reconcile_role", "reconcile_binding"]

AUTOUPDATE = "rbac.authorization.kubernetes.io/autoupdate"
Obj = Mapping[str, Any]


def _protected(existing: Obj) -> bool:
    return ((existing.get("metadata") or {}).get("annotations") or {}).get(AUTOUPDATE) == "false"


def _merge_meta(out: dict[str, Any], expected: Obj) -> None:
    meta = out.setdefault("metadata", {})
    for key in ("labels", "annotations"):
        want = (expected.get("metadata") or {}).get(key) or {}
        if want:
            meta[key] = {**want, **(meta.get(key) or {})}


def _has_meta(existing: Obj, expected: Obj) -> bool:
    """Whether ``existing`` has every label and annotation key ``expected`` adds (its own
    values win in ``_merge_meta``, so then the merge changes nothing)."""
    have, want = existing.get("metadata") or {}, expected.get("metadata") or {}
    return all(k in (have.get(key) or {}) for key in ("labels", "annotations")
               for k in (want.get(key) or {}))


def reconcile_role(existing: Obj, expected: Obj) -> dict[str, Any] | None:
    """The updated role, or None when ``existing`` needs no change (or is protected)."""
    if _protected(existing):
        return None
    if expected.get("aggregationRule") is None and _has_meta(existing, expected):
        rules = existing.get("rules") or []
        if all(rule in rules for rule in expected.get("rules") or ()):
            # every start and every wake of a shared cluster finds the policy as written:
            # equal rules need no coverage check (and no copy)
            return None
    out = copy.deepcopy(dict(existing))
    _merge_meta(out, expected)
    want_agg = expected.get("aggregationRule")
    if want_agg is not None:
        have = out.setdefault("aggregationRule", {}).setdefault("clusterRoleSelectors", [])
        for selector in want_agg.get("clusterRoleSelectors") or ():
            if selector not in have:
                have.append(copy.deepcopy(selector))
    else:
        ok, missing = covers(out.get("rules") or [], expected.get("rules") or [])
        if not ok:
            out["rules"] = list(out.get("rules") or []) + missing
    return None if out == existing else out


def _subject_key(subject: Obj) -> tuple[str, str, str]:
    """Subjects compared as stored: defaulting fills ``apiGroup`` (``""`` for ServiceAccounts)."""
    return (str(subject.get("kind") or ""), str(subject.get("namespace") or ""), str(subject.get("name") or ""))


def reconcile_binding(existing: Obj, expected: Obj) -> tuple[dict[str, Any] | None, bool]:
    """(updated binding or None, whether it must be deleted and re-created for its roleRef)."""
    if _protected(existing):
        return None, False
    if existing.get("roleRef") == expected.get("roleRef") and _has_meta(existing, expected):
        have = {_subject_key(s) for s in existing.get("subjects") or ()}
        if all(_subject_key(s) in have for s in expected.get("subjects") or ()):
            return None, False
    out = copy.deepcopy(dict(existing))
    _merge_meta(out, expected)
    recreate = out.get("roleRef") != expected.get("roleRef")
    if recreate:
        out["roleRef"] = copy.deepcopy(expected.get("roleRef"))
    subjects = out.setdefault("subjects", [])
    have = {_subject_key(s) for s in subjects}
    for subject in expected.get("subjects") or ():
        if _subject_key(subject) not in have:
            subjects.append(copy.deepcopy(subject))
    if not subjects:
        out.pop("subjects")
    return (None if out == existing else out), recreate
