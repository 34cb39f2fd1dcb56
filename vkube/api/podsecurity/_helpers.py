"""What every Pod Security check shares: the result type and upstream's helpers
(``policy/helpers.go``, ``visitor.go``) for naming containers and building messages."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

Obj = Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class CheckResult:
    """``allowed`` or not, with upstream's ``ForbiddenReason`` and ``ForbiddenDetail``."""

    allowed: bool
    reason: str = ""
    detail: str = ""


OK = CheckResult(True)
CheckFn = Callable[[Obj, Obj], CheckResult]


def plural(singular: str, plural: str, count: int) -> str:
    return singular if count == 1 else plural


def join_quote(items: list[str]) -> str:
    return '"' + '", "'.join(items) + '"' if items else ""


def go_quote(value: str) -> str:
    """Go's ``%q`` for the strings we meet (printable text): a JSON string without ASCII escaping."""
    return json.dumps(value, ensure_ascii=False)


def containers(spec: Obj) -> Iterator[Obj]:
    """Init containers, then containers, then ephemeral containers — upstream's visiting order.

    Objects are decoded JSON, so ``dict`` checks suffice (and are much cheaper than ``Mapping``).
    """
    for key in ("initContainers", "containers", "ephemeralContainers"):
        for c in spec.get(key) or ():
            if isinstance(c, dict):
                yield c


def security_context(obj: Obj) -> Obj | None:
    sc = obj.get("securityContext")
    return sc if isinstance(sc, dict) else None


def sub(obj: Obj | None, key: str) -> Obj | None:
    if obj is None:
        return None
    value = obj.get(key)
    return value if isinstance(value, dict) else None


def is_zero(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value == 0


def windows(spec: Obj) -> bool:
    os_ = sub(spec, "os")
    return os_ is not None and os_.get("name") == "windows"


def user_namespace(spec: Obj) -> bool:
    return spec.get("hostUsers") is False


def who_set(pod_bad: bool, names: list[str]) -> list[str]:
    """``pod``, ``container "a"``, ``containers "a", "b"``: who set a forbidden value."""
    out = ["pod"] if pod_bad else []
    if names:
        out.append(f"{plural('container', 'containers', len(names))} {join_quote(names)}")
    return out

def seccomp_profiles(spec: Obj, *, required: bool) -> CheckResult:
    values: set[str] = set()
    profile = sub(security_context(spec), "seccompProfile")
    pod_bad = profile is not None and profile.get("type") not in ("RuntimeDefault", "Localhost")
    if pod_bad:
        values.add(str(profile.get("type") or ""))  # type: ignore[union-attr]
    pod_set = profile is not None and not pod_bad
    explicit: list[str] = []
    implicit: list[str] = []
    for c in containers(spec):
        cp = sub(security_context(c), "seccompProfile")
        if cp is not None:
            if cp.get("type") not in ("RuntimeDefault", "Localhost"):
                explicit.append(c.get("name", ""))
                values.add(str(cp.get("type") or ""))
        elif not pod_set:
            implicit.append(c.get("name", ""))
    setters = who_set(pod_bad, explicit)
    if setters:
        return CheckResult(False, "seccompProfile", (
            f"{' and '.join(setters)} must not set securityContext.seccompProfile.type to "
            f"{join_quote(sorted(values))}"))
    if required and implicit:
        return CheckResult(False, "seccompProfile", (
            f"pod or {plural('container', 'containers', len(implicit))} {join_quote(implicit)} "
            'must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost"'))
    return OK
