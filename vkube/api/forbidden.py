"""``apierrors.NewForbidden``: the one shape of 403 message kube-apiserver writes, shared by RBAC
and admission (Pod Security) so both read the same to users and to ``kubectl``."""

from __future__ import annotations

from vkube.api.errors import Forbidden

__all__ = ["forbidden"]


def forbidden(resource: str, name: str, cause: str, *, group: str = "", kind: str = "") -> Forbidden:
    """``pods "x" is forbidden: <cause>``; without a name ``pods is forbidden: <cause>``; without a
    resource ``forbidden: <cause>``. ``details.kind`` is the resource, as upstream fills it."""
    qualified = f"{resource}.{group}" if resource and group else resource
    if not qualified:
        message = f"forbidden: {cause}"
    elif not name:
        message = f"{qualified} is forbidden: {cause}"
    else:
        message = f'{qualified} "{name}" is forbidden: {cause}'
    details = {"name": name, "group": group, "kind": kind or resource}
    return Forbidden(message, details={k: v for k, v in details.items() if v})
