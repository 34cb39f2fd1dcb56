"""``user.Info``: the one identity type every layer shares (authentication fills it, RBAC and
admission read it, audit logs it). It lives in the lowest layer that needs it, so the API
server's request context and the RBAC authorizer hold the same object, never an adapted copy."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

__all__ = ["UserInfo", "SYSTEM_MASTERS", "ALL_AUTHENTICATED", "ALL_UNAUTHENTICATED", "ANONYMOUS"]

#: Well-known users and groups (k8s.io/apiserver/pkg/authentication/user).
SYSTEM_MASTERS = "system:masters"
ALL_AUTHENTICATED = "system:authenticated"
ALL_UNAUTHENTICATED = "system:unauthenticated"
ANONYMOUS = "system:anonymous"


@dataclass(frozen=True, slots=True)
class UserInfo:
    """``user.Info``: name, uid, groups and extra, immutable once authenticated."""

    name: str
    uid: str = ""
    groups: tuple[str, ...] = ()
    extra: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: MappingProxyType({}))

    def to_dict(self) -> dict[str, Any]:
        """The ``authentication.k8s.io/v1`` UserInfo shape (admission reviews, audit events,
        SelfSubjectReview): empty fields omitted."""
        out: dict[str, Any] = {"username": self.name}
        if self.uid:
            out["uid"] = self.uid
        if self.groups:
            out["groups"] = list(self.groups)
        if self.extra:
            out["extra"] = {k: list(v) for k, v in self.extra.items()}
        return out
