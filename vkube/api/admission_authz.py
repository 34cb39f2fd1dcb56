"""The ``authorizer`` variable of admission CEL (k8s.io/apiserver ``cel/library/authz``):
``authorizer.group('apps').resource('deployments').namespace('ns').name('x').check('delete')
.allowed()``, ``authorizer.path('/healthz').check('get')``, ``authorizer.serviceAccount(ns,
name)`` and ``authorizer.requestResource``. Decisions come from the control plane's own
authorizer (RBAC plus system:masters), passed in as ``authorize(user, attributes)``.

cel-python calls ``x.f(a)`` as the function ``f(x, a)``: the checks are maps carrying their
state in Python attributes, and the methods are the functions of ``functions()``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from vkube.api.rbac import Attributes, Decision
from vkube.api.user import ALL_AUTHENTICATED, UserInfo

__all__ = ["authorizer_value", "functions", "Authorize"]

Authorize = Callable[[UserInfo, Attributes], Decision]


def _map_type() -> Any:
    from celpy import celtypes

    return celtypes.MapType


def _new(kind: str, **state: Any) -> Any:
    """A CEL value (an empty map, so celpy accepts it anywhere) with ``state`` attached."""
    from celpy import celtypes

    class _Value(celtypes.MapType):
        pass

    value = _Value({celtypes.StringType("requestResource"): state.pop("request_resource")}
                   if "request_resource" in state else {})
    value.kind = kind
    value.state = state
    return value


def authorizer_value(authorize: Authorize, user: UserInfo, request: dict[str, Any] | None) -> Any:
    """``authorizer`` for one request (``request``: group, resource, subresource, namespace,
    name of ``requestResource``)."""
    rr = None
    if request is not None:
        rr = _new("resource", authorize=authorize, user=user, **request)
    return _new("authorizer", authorize=authorize, user=user, **({"request_resource": rr} if rr is not None else {}))


def _state(value: Any, kind: str) -> dict[str, Any]:
    if getattr(value, "kind", None) != kind:
        raise TypeError(f"no such overload: {kind} method on {type(value).__name__}")
    return value.state


def _with(value: Any, kind: str, **changes: Any) -> Any:
    return _new(kind, **{**_state(value, value.kind), **changes})


def _check(value: Any, verb: Any) -> Any:
    state = value.state
    user = state["user"]
    if value.kind == "path":
        attrs = Attributes(str(verb), resource_request=False, path=state["path"])
    else:
        attrs = Attributes(str(verb), namespace=state.get("namespace", ""), api_group=state.get("group", ""),
                           resource=state.get("resource", ""), subresource=state.get("subresource", ""),
                           name=state.get("name", ""))
    try:
        decision = state["authorize"](user, attrs)
        return _new("decision", allowed=decision.allowed, reason=decision.reason, error="")
    except Exception as exc:  # an authorizer error is a decision that errored
        return _new("decision", allowed=False, reason="", error=str(exc))


def functions() -> dict[str, Callable[..., Any]]:
    from celpy import celtypes

    def service_account(authz: Any, namespace: Any, name: Any) -> Any:
        state = _state(authz, "authorizer")
        ns = str(namespace)
        user = UserInfo(f"system:serviceaccount:{ns}:{name}",
                        groups=("system:serviceaccounts", f"system:serviceaccounts:{ns}", ALL_AUTHENTICATED))
        return _new("authorizer", authorize=state["authorize"], user=user)

    return {
        "path": lambda a, p: _new("path", authorize=_state(a, "authorizer")["authorize"],
                                  user=_state(a, "authorizer")["user"], path=str(p)),
        "group": lambda a, g: _new("group", authorize=_state(a, "authorizer")["authorize"],
                                   user=_state(a, "authorizer")["user"], group=str(g)),
        "serviceAccount": service_account,
        "resource": lambda g, r: _with(g, "resource", resource=str(r)) if g.kind == "group" else _bad(g),
        "subresource": lambda r, s: _with(r, "resource", subresource=str(s)),
        "namespace": lambda r, n: _with(r, "resource", namespace=str(n)),
        "name": lambda r, n: _with(r, "resource", name=str(n)),
        "check": _check,
        "allowed": lambda d: celtypes.BoolType(bool(_state(d, "decision")["allowed"])),
        "reason": lambda d: celtypes.StringType(_state(d, "decision")["reason"]),
        "errored": lambda d: celtypes.BoolType(bool(_state(d, "decision")["error"])),
        "error": lambda d: celtypes.StringType(_state(d, "decision")["error"]),
    }


def _bad(value: Any) -> Any:
    raise TypeError(f"no such overload: resource method on {getattr(value, 'kind', type(value).__name__)}")
