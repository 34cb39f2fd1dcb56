"""Levels, versions, namespace labels and the per-(level, version) check lists of Pod Security.

Follows ``k8s.io/pod-security-admission/api`` (``ParseLevel``, ``ParseVersion``,
``PolicyToEvaluate``, ``CompareLevels``) and ``policy/registry.go`` (which checks run for a
level and version: baseline checks first, then restricted ones, each group sorted by check ID;
a restricted check that *overrides* a baseline one replaces it; versions newer than the newest
check, and ``latest``, evaluate as the newest).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from vkube.api.errors import field_error
from vkube.api.podsecurity.checks import CHECKS, Check, CheckFn, CheckResult

__all__ = [
    "LEVELS", "PRIVILEGED", "BASELINE", "RESTRICTED", "Version", "LATEST", "LevelVersion", "Policy",
    "parse_level", "parse_version", "compare_levels", "policy_to_evaluate", "Evaluator",
    "AggregateResult", "aggregate", "LABEL_PREFIX", "ENFORCE", "ENFORCE_VERSION", "AUDIT",
    "AUDIT_VERSION", "WARN", "WARN_VERSION",
]

PRIVILEGED, BASELINE, RESTRICTED = "privileged", "baseline", "restricted"
LEVELS = (PRIVILEGED, BASELINE, RESTRICTED)

LABEL_PREFIX = "pod-security.kubernetes.io/"
ENFORCE, ENFORCE_VERSION = LABEL_PREFIX + "enforce", LABEL_PREFIX + "enforce-version"
AUDIT, AUDIT_VERSION = LABEL_PREFIX + "audit", LABEL_PREFIX + "audit-version"
WARN, WARN_VERSION = LABEL_PREFIX + "warn", LABEL_PREFIX + "warn-version"

_VERSION = re.compile(r"^v1\.([0-9]|[1-9][0-9]*)\Z")


@dataclass(frozen=True, slots=True, order=True)
class Version:
    """``v1.N`` or ``latest`` (newer than any numbered version)."""

    latest: bool = False
    major: int = 0
    minor: int = 0

    def __str__(self) -> str:
        return "latest" if self.latest else f"v{self.major}.{self.minor}"

    def older(self, other: Version) -> bool:
        if self.latest:
            return False
        if other.latest:
            return True
        return (self.major, self.minor) < (other.major, other.minor)


LATEST = Version(latest=True)


def parse_level(text: str) -> tuple[str, str | None]:
    """(level, error); an unknown level reads as ``restricted`` plus upstream's error text."""
    if text in LEVELS:
        return text, None
    return RESTRICTED, "must be one of privileged, baseline, restricted"


def parse_version(text: str) -> tuple[Version, str | None]:
    """(version, error); an unparsable version reads as ``latest`` plus upstream's error text."""
    if text == "latest":
        return LATEST, None
    match = _VERSION.match(text)
    if not match:
        return LATEST, 'must be "latest" or "v1.x"'
    return Version(major=1, minor=int(match.group(1))), None


def compare_levels(a: str, b: str) -> int:
    """-1, 0 or 1: how much stricter ``a`` is than ``b``."""
    order = {PRIVILEGED: 0, BASELINE: 1, RESTRICTED: 2}
    if a == b or a not in order or b not in order:
        return 0
    return 1 if order[a] > order[b] else -1


@dataclass(frozen=True, slots=True)
class LevelVersion:
    level: str = PRIVILEGED
    version: Version = LATEST

    def __str__(self) -> str:
        return f"{self.level}:{self.version}"

    def equivalent(self, other: LevelVersion) -> bool:
        return (self.level == PRIVILEGED and other.level == PRIVILEGED) or self == other


@dataclass(frozen=True, slots=True)
class Policy:
    """What to enforce, audit and warn about in one namespace (default: all privileged:latest)."""

    enforce: LevelVersion = field(default_factory=LevelVersion)
    audit: LevelVersion = field(default_factory=LevelVersion)
    warn: LevelVersion = field(default_factory=LevelVersion)

    def fully_privileged(self) -> bool:
        return PRIVILEGED == self.enforce.level == self.audit.level == self.warn.level

    def equivalent(self, other: Policy) -> bool:
        return (self.enforce.equivalent(other.enforce) and self.audit.equivalent(other.audit)
                and self.warn.equivalent(other.warn))


def policy_to_evaluate(labels: Mapping[str, Any] | None,
                       defaults: Policy = Policy()) -> tuple[Policy, list[dict[str, str]]]:
    """A namespace's policy from its labels, with ``StatusCause`` dicts for invalid labels.

    As upstream: a valid policy is always returned; a bad enforce level reads as ``restricted``
    (fail closed) and bad audit/warn levels as ``privileged`` (fail open); bad versions read as
    ``latest``; warn follows an explicitly stricter enforce level unless warn is set itself.
    """
    labels = labels or {}
    errors: list[dict[str, str]] = []
    enforce, audit, warn = defaults.enforce, defaults.audit, defaults.warn

    def err(label: str, value: str, message: str | None) -> None:
        if message:
            path = f"metadata.labels[{label}]"
            errors.append(field_error(path, f'Invalid value: "{value}": {message}'))

    has_enforce = False
    if ENFORCE in labels:
        level, problem = parse_level(str(labels[ENFORCE]))
        enforce, has_enforce = LevelVersion(level, enforce.version), problem is None
        err(ENFORCE, str(labels[ENFORCE]), problem)
    if ENFORCE_VERSION in labels:
        version, problem = parse_version(str(labels[ENFORCE_VERSION]))
        enforce = LevelVersion(enforce.level, version)
        err(ENFORCE_VERSION, str(labels[ENFORCE_VERSION]), problem)
    if AUDIT in labels:
        level, problem = parse_level(str(labels[AUDIT]))
        audit = LevelVersion(PRIVILEGED if problem else level, audit.version)
        err(AUDIT, str(labels[AUDIT]), problem)
    if AUDIT_VERSION in labels:
        version, problem = parse_version(str(labels[AUDIT_VERSION]))
        audit = LevelVersion(audit.level, version)
        err(AUDIT_VERSION, str(labels[AUDIT_VERSION]), problem)
    if WARN in labels:
        level, problem = parse_level(str(labels[WARN]))
        warn = LevelVersion(PRIVILEGED if problem else level, warn.version)
        err(WARN, str(labels[WARN]), problem)
    if WARN_VERSION in labels:
        version, problem = parse_version(str(labels[WARN_VERSION]))
        warn = LevelVersion(warn.level, version)
        err(WARN_VERSION, str(labels[WARN_VERSION]), problem)
    if WARN not in labels and has_enforce and compare_levels(enforce.level, warn.level) > 0:
        warn = LevelVersion(enforce.level, warn.version if WARN_VERSION in labels else enforce.version)
    return Policy(enforce, audit, warn), errors


@dataclass(frozen=True, slots=True)
class AggregateResult:
    """All failed checks of one evaluation, formatted as kube-apiserver formats them."""

    reasons: tuple[str, ...] = ()
    details: tuple[str, ...] = ()

    @property
    def allowed(self) -> bool:
        return not self.reasons

    def forbidden_reason(self) -> str:
        return ", ".join(self.reasons)

    def forbidden_detail(self) -> str:
        """``privileged (container "c" must not ...), host namespaces (hostNetwork=true)``."""
        return ", ".join(f"{r} ({d})" if d else r for r, d in zip(self.reasons, self.details))


def aggregate(results: list[CheckResult]) -> AggregateResult:
    failed = [r for r in results if not r.allowed]
    return AggregateResult(tuple(r.reason or "unknown forbidden reason" for r in failed),
                           tuple(r.detail for r in failed))


class Evaluator:
    """The check functions for every (level, minor version), built once from ``checks``."""

    def __init__(self, checks: tuple[Check, ...] = CHECKS) -> None:
        self.max_minor = max(c.versions[-1].minimum[1] for c in checks)
        order = ([c.id for c in sorted(checks, key=lambda c: c.id) if c.level == BASELINE]
                 + [c.id for c in sorted(checks, key=lambda c: c.id) if c.level == RESTRICTED])
        self._baseline: dict[int, list[CheckFn]] = {}
        self._restricted: dict[int, list[CheckFn]] = {}
        for minor in range(0, self.max_minor + 1):
            active = {c.id: (c, v) for c in checks if (v := _active(c, minor)) is not None}
            overridden = {o for c, v in active.values() if c.level == RESTRICTED for o in v.overrides}
            self._baseline[minor] = [active[i][1].fn for i in order
                                     if i in active and active[i][0].level == BASELINE]
            self._restricted[minor] = [active[i][1].fn for i in order
                                       if i in active and i not in overridden]

    @property
    def max_version(self) -> Version:
        return Version(major=1, minor=self.max_minor)

    def evaluate_pod(self, lv: LevelVersion, metadata: Mapping[str, Any] | None,
                     spec: Mapping[str, Any] | None) -> list[CheckResult]:
        """Every check's result for ``lv`` (none for privileged)."""
        if lv.level == PRIVILEGED:
            return []
        minor = self.max_minor if lv.version.latest else min(lv.version.minor, self.max_minor)
        table = self._baseline if lv.level == BASELINE else self._restricted
        meta, pod_spec = metadata or {}, spec or {}
        return [fn(meta, pod_spec) for fn in table[minor]]

    def check(self, lv: LevelVersion, metadata: Mapping[str, Any] | None,
              spec: Mapping[str, Any] | None) -> AggregateResult:
        return aggregate(self.evaluate_pod(lv, metadata, spec))


def _active(check: Check, minor: int) -> Any:
    current = None
    for version in check.versions:
        if version.minimum[1] <= minor:
            current = version
    return current
