"""Parse a Kubernetes API path into a RequestInfo, as k8s.io/apiserver's RequestInfoFactory."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class RequestInfo:
    is_resource: bool
    path: str
    verb: str = ""  # get list watch create update patch delete deletecollection
    api_prefix: str = ""  # "api" or "apis"
    group: str = ""
    version: str = ""
    namespace: str | None = None
    resource: str = ""
    name: str = ""
    subresource: str = ""
    parts: tuple[str, ...] = ()


_METHOD_VERBS = {"POST": "create", "GET": "get", "HEAD": "get", "PUT": "update",
                 "PATCH": "patch", "DELETE": "delete"}


def parse(method: str, path: str, *, watch_param: bool = False) -> RequestInfo:
    segs = [s for s in path.strip("/").split("/") if s != ""]
    info = RequestInfo(is_resource=False, path=path)
    if not segs or segs[0] not in ("api", "apis"):
        info.verb = method.lower()
        return info
    info.api_prefix = segs[0]
    rest = segs[1:]
    if info.api_prefix == "api":
        if not rest:
            return info
        info.version, rest = rest[0], rest[1:]
    else:
        if len(rest) < 2:
            info.group = rest[0] if rest else ""
            return info
        info.group, info.version, rest = rest[0], rest[1], rest[2:]
    if not rest:
        return info
    info.is_resource = True
    verb = _METHOD_VERBS.get(method, method.lower())
    if rest[0] == "watch":
        verb, rest = "watch", rest[1:]
    # /namespaces/{ns}/{resource}... (but /namespaces/{name}[/status|finalize] is the namespace itself)
    if rest and rest[0] == "namespaces" and len(rest) >= 3 and rest[2] not in ("status", "finalize"):
        info.namespace, rest = rest[1], rest[2:]
    info.parts = tuple(rest)
    if rest:
        info.resource = rest[0]
    if len(rest) >= 2:
        info.name = rest[1]
    if len(rest) >= 3:
        info.subresource = "/".join(rest[2:])
    if not info.name:
        if verb == "get":
            verb = "watch" if watch_param else "list"
        elif verb == "delete":
            verb = "deletecollection"
    info.verb = verb
    return info
