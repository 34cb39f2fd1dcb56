"""Caps on a tenant's long-running requests in shared mode, by authenticated user.

Watches and streams (exec, attach, port-forward, ``logs -f``) hold a connection, a task and
buffers for as long as the client likes, so each cluster may have only so many open
(``controlPlane.watches.maxPerCluster``, ``controlPlane.streams.maxPerCluster``) and each user
of it only so many of those (``maxPerCredential``, ``maxPerUser``). A user is its username and
uid as authentication found them — every token (``kubectl create token`` mints as many as one
likes) and certificate of one ServiceAccount or user counts together; impersonation does not
change who is counted; anonymous requests count as one user and, with everyone, under the
cluster's cap. The cap is taken once the request is authenticated (``APIServer.request_gate``)
and given back when it ends. Over a cap: max-in-flight's 429, ``Retry-After``, plain text, and
the connection closed (``watchcaps``)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from vkube.apiserver.apf import too_many_requests
from vkube.cluster import sleepwatch
from vkube.cluster.watchcaps import WatchLimits

if TYPE_CHECKING:
    from vkube.api.user import UserInfo
    from vkube.cluster.shared import Member

#: request key set by the shared listener on a tenant's request (its cluster's member):
#: only those are counted (the cluster's own components are not)
TENANT = web.RequestKey("vkube_shared_tenant", object)

#: pod subresources that are streams for as long as the client keeps them
_STREAMS = frozenset(("exec", "attach", "portforward"))
#: ``strconv.ParseBool``'s true spellings (``?follow=``)
_TRUE = frozenset(("1", "t", "T", "TRUE", "true", "True"))


def user_key(user: UserInfo) -> str:
    """Who a cap counts: username and uid (two users of one name in turn are two users)."""
    return f"{user.name}\0{user.uid}"


def kind_of(request: web.Request, info: Any) -> str | None:
    """``"watch"``, ``"stream"`` or None (a short request: not capped here)."""
    if info.verb == "watch":
        return "watch"
    if info.is_resource and info.resource == "pods" and (
            info.subresource in _STREAMS
            or (info.subresource == "log" and request.query.get("follow", "") in _TRUE)):
        return "stream"
    return None


def refused(limits: WatchLimits) -> web.StreamResponse:
    """kube-apiserver's max-in-flight answer, and the connection closed after it (an idle TLS
    connection costs the process far more than the client's reconnect)."""
    resp = too_many_requests(limits.retry_after)
    resp.force_close()
    return resp


def gate(member: Member, request: web.Request, rc: Any) -> Callable[[], None] | web.StreamResponse | None:
    """``APIServer.request_gate`` of a shared cluster: count a tenant's watch or stream under
    its user, or refuse it."""
    if request.get(TENANT) is None:
        return None
    kind = kind_of(request, rc.info)
    if kind is None:
        return None
    who = user_key(rc.user)
    if kind == "watch":
        count, limits = member.open_watches, member.watch_limits
        grant = request.get(sleepwatch.GRANT)
        if grant is not None:  # its credential's watches, held while asleep, count as this user's
            grant[0].note_user(grant[1], who)
    else:
        count, limits = member.streams, member.stream_limits
    if not count.take(who, limits):
        return refused(limits)
    task = asyncio.current_task() if kind == "stream" else None
    if task is not None:  # ended by the sleep loop once its client has gone (end_gone_watches)
        member.open_streams[task] = request

    def release() -> None:
        count.give(who)
        if task is not None:
            member.open_streams.pop(task, None)
    return release


__all__ = ["TENANT", "gate", "kind_of", "refused", "user_key"]
