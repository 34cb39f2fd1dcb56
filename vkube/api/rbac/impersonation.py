"""Impersonation headers (``kubectl --as``/``--as-group``), as kube-apiserver's filter handles them.

Follows ``k8s.io/apiserver/pkg/endpoints/filters/impersonation`` (the default, unconstrained mode):
``Impersonate-User``, ``Impersonate-Group`` (repeatable), ``Impersonate-Uid`` and
``Impersonate-Extra-<key>``; each requested piece needs the ``impersonate`` verb on ``users``,
``serviceaccounts`` (a ``system:serviceaccount:NS:NAME`` user), ``groups``,
``authentication.k8s.io`` ``uids`` or ``userextras/<key>``. Groups, uid or extras without a user are
a BadRequest. The impersonated user gets ``system:authenticated`` (or ``system:unauthenticated``
for ``system:anonymous``) unless a group says otherwise; a service account without explicit
groups gets its service-account groups.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import unquote

from vkube.api.errors import BadRequest
from vkube.api.rbac.authorizer import SERVICE_ACCOUNT_PREFIX, Attributes, RBACAuthorizer
from vkube.api.user import UserInfo

__all__ = ["impersonate", "split_service_account_username", "IMPERSONATE_USER", "IMPERSONATE_GROUP",
           "IMPERSONATE_UID", "IMPERSONATE_EXTRA_PREFIX"]

IMPERSONATE_USER = "impersonate-user"
IMPERSONATE_GROUP = "impersonate-group"
IMPERSONATE_UID = "impersonate-uid"
IMPERSONATE_EXTRA_PREFIX = "impersonate-extra-"
AUTHN_GROUP = "authentication.k8s.io"
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?\Z")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\Z")


def split_service_account_username(username: str) -> tuple[str, str] | None:
    """(namespace, name) of ``system:serviceaccount:NS:NAME`` with valid names, else None."""
    if not username.startswith(SERVICE_ACCOUNT_PREFIX):
        return None
    parts = username[len(SERVICE_ACCOUNT_PREFIX):].split(":")
    if len(parts) != 2:
        return None
    namespace, name = parts
    if not (len(namespace) <= 63 and _DNS_LABEL.match(namespace)):
        return None
    if not (len(name) <= 253 and _DNS_SUBDOMAIN.match(name)):
        return None
    return namespace, name


@dataclass(frozen=True, slots=True)
class _Request:
    kind: str
    name: str
    namespace: str = ""
    field_path: str = ""

    def go_string(self) -> str:
        """Go's ``%v`` of the ObjectReference upstream builds (for the BadRequest text)."""
        version = "authentication.k8s.io/v1" if self.kind in ("UserExtra", "UID") else ""
        return "{" + " ".join([self.kind, self.namespace, self.name, "", version, "", self.field_path]) + "}"


def _requests(headers: Iterable[tuple[str, str]]) -> list[_Request]:
    pairs = [(k.lower(), v) for k, v in headers]
    out: list[_Request] = []
    user = next((v for k, v in pairs if k == IMPERSONATE_USER), "")
    if user:
        sa = split_service_account_username(user)
        out.append(_Request("ServiceAccount", sa[1], sa[0]) if sa else _Request("User", user))
    groups = [v for k, v in pairs if k == IMPERSONATE_GROUP]
    out.extend(_Request("Group", g) for g in groups)
    extras = [(unquote(k[len(IMPERSONATE_EXTRA_PREFIX):]), v) for k, v in pairs
              if k.startswith(IMPERSONATE_EXTRA_PREFIX)]
    out.extend(_Request("UserExtra", v, field_path=key) for key, v in extras)
    uid = next((v for k, v in pairs if k == IMPERSONATE_UID), "")
    if uid:
        out.append(_Request("UID", uid))
    if (groups or extras or uid) and not user:
        raise BadRequest("requested [" + " ".join(r.go_string() for r in out) + "] without impersonating a user")
    return out


def impersonate(authz: RBACAuthorizer, requester: UserInfo,
                headers: Iterable[tuple[str, str]]) -> UserInfo | None:
    """The user to act as, None when no impersonation header is present; raises BadRequest or
    Forbidden (``users "bob" is forbidden: User "alice" cannot impersonate resource "users" ...``)."""
    requests = _requests(headers)
    if not requests:
        return None
    groups_specified = any(r.kind == "Group" for r in requests)
    username, uid = "", ""
    groups: list[str] = []
    extra: dict[str, list[str]] = {}
    for req in requests:
        attrs = Attributes("impersonate", name=req.name, namespace=req.namespace)
        if req.kind == "ServiceAccount":
            attrs = Attributes("impersonate", resource="serviceaccounts", name=req.name, namespace=req.namespace)
            username = f"{SERVICE_ACCOUNT_PREFIX}{req.namespace}:{req.name}"
            if not groups_specified:
                groups = ["system:serviceaccounts", f"system:serviceaccounts:{req.namespace}"]
        elif req.kind == "User":
            attrs = Attributes("impersonate", resource="users", name=req.name)
            username = req.name
        elif req.kind == "Group":
            attrs = Attributes("impersonate", resource="groups", name=req.name)
            groups.append(req.name)
        elif req.kind == "UserExtra":
            attrs = Attributes("impersonate", api_group=AUTHN_GROUP, resource="userextras",
                               subresource=req.field_path, name=req.name)
            extra.setdefault(req.field_path, []).append(req.name)
        else:
            attrs = Attributes("impersonate", api_group=AUTHN_GROUP, resource="uids", name=req.name)
            uid = req.name
        decision = authz.authorize(requester, attrs)
        if not decision.allowed:
            raise authz.forbidden(requester, attrs, decision)
    if username != "system:anonymous":
        if not {"system:authenticated", "system:unauthenticated"} & set(groups):
            groups.append("system:authenticated")
    elif "system:unauthenticated" not in groups:
        groups.append("system:unauthenticated")
    return UserInfo(username, uid, tuple(groups), {k: tuple(v) for k, v in extra.items()})
