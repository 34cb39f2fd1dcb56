"""Watch streams: newline-delimited JSON events over a chunked response, resuming from a
resourceVersion, with initial events, bookmarks and Table-shaped events for ``kubectl get -w``."""

from __future__ import annotations

import asyncio
import contextlib
import random
from typing import Any

import orjson
from aiohttp import web

from vkube.api import errors
from vkube.api.kinds import ResourceSpec
from vkube.apiserver import http
from vkube.apiserver.apf import WATCH_STARTED
from vkube.api.meta import Obj
from vkube.apiserver.handlers import Query, ResourceHandlers, namespace_of
from vkube.apiserver.objects import parse_rv
from vkube.apiserver.request import RequestContext
from vkube.apiserver.storeerrors import interpret_watch_error
from vkube.store.base import StoreError

#: a request key: a set the watch adds its stop function to while it streams (shared mode's
#: sleep calls them: each watch then ends as at its timeout)
WATCH_STOPPERS = web.RequestKey("vkube_watch_stoppers", set)
class Parked:
    """An in-process watcher that has nothing to watch (an informer with an empty cache)
    parks instead of streaming: its request, authorized and admitted as any watch, leaves
    only ``wake`` registered with the cluster's watch fan-out, called once with the revision
    of the first event under the resource (``revision - 1`` is where to watch from; 0: the
    server stopped). ``cancel`` takes it back. Set under ``PARK`` by the in-process
    transport; no network request can carry it."""

    __slots__ = ("wake", "cancel")

    def __init__(self, wake: Any) -> None:
        self.wake = wake
        self.cancel: Any = None


PARK = web.RequestKey("vkube_watch_park", Parked)
_PARKED = b'{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Success","reason":"Parked","code":200}\n'
BOOKMARK_INTERVAL = 5.0  # seconds; kube-apiserver sends them about once a minute, clients accept more
FRESHNESS_WAIT = 3.0  # seconds: kube-apiserver's watch cache blockTimeout


async def serve_watch(handlers: ResourceHandlers, request: web.Request, spec: ResourceSpec,
                      rc: RequestContext, *, on_open: Any = None, on_close: Any = None) -> web.StreamResponse:
    ctx = handlers.ctx
    info = rc.info
    namespace = namespace_of(spec, info)
    q = Query(request)
    storage = ctx.storage(spec)
    label, field = handlers.selectors_for(spec, q)
    if info.path_name:  # /watch/namespaces/ns/pods/NAME (legacy form): a field selector on the name
        name_sel = handlers.selectors.parse_field_selector(f"metadata.name={info.path_name}")
        field = name_sel if field is None else type(field)(field.requirements + name_sel.requirements)
    rv_str = q.str("resourceVersion")
    send_initial = q.str("sendInitialEvents")
    if send_initial and send_initial not in ("true", "false"):
        raise errors.BadRequest('sendInitialEvents: Invalid value: must be "true" or "false"')
    if send_initial == "true" and q.str("resourceVersionMatch") != "NotOlderThan":
        raise errors.BadRequest("sendInitialEvents: Forbidden: sendInitialEvents requires setting resourceVersionMatch to NotOlderThan")
    bookmarks = q.bool("allowWatchBookmarks")
    timeout = q.int("timeoutSeconds", 0) or random.randint(1800, 3600)
    accept = http.parse_accept(request.headers.get("Accept"))
    as_table = http.wants(accept, "Table") is not None
    include_object = q.str("includeObject", "Metadata")

    initial: list[Obj] = []
    want_initial = send_initial == "true" or (send_initial == "" and rv_str in ("", "0"))
    parked = request.get(PARK)
    if parked is not None and want_initial:
        raise errors.BadRequest("resourceVersion: Required value: a parked watch starts from a version")
    if want_initial:
        listed = await storage.list(rc, namespace, label_selector=label, field_selector=field)
        initial, after = listed.items, listed.resource_version
    else:
        # a compacted revision is answered as kube-apiserver's watch cache does: 200 and one
        # ERROR event carrying the 410 Expired Status (the cursor raises it)
        after = parse_rv(rv_str)
        try:
            await _wait_for_revision(ctx.store, after)
        except StoreError as exc:  # the store unreachable: a Status, as for a list
            raise interpret_watch_error(exc, spec) from None
    if parked is not None:
        return await _park(storage, spec, namespace, after, parked)

    # The cursor reads history after ``after`` (the listed revision) before live events, so
    # nothing written between the list and now is missed. It is this handler's own: no task
    # reads the store for it (``vkube.store.fanout``).
    cursor = storage.watch_cursor(rc, namespace, after)
    stoppers: list[set[Any]] = []
    closers = getattr(spec.strategy, "watch_closers", None)  # CRDs: unserving ends watches
    if closers is not None:
        stoppers.append(closers)
    held = request.get(WATCH_STOPPERS)  # shared mode: sleep ends tenants' watches
    if held is not None:
        stoppers.append(held)
    for where in stoppers:
        where.add(cursor.close)
    resp = web.StreamResponse(status=200, headers={"Content-Type": http.JSON,
                                                   "Transfer-Encoding": "chunked"})
    first_table = True

    def encode(etype: str, obj: Obj) -> bytes:
        nonlocal first_table
        if as_table and etype in ("ADDED", "MODIFIED", "DELETED"):
            obj = handlers.to_table(spec, [obj], now=ctx.clock(), wide=True, include_object=include_object)
            if not first_table:  # as kube-apiserver: only the first event carries the columns
                obj["columnDefinitions"] = None
            first_table = False
            return orjson.dumps({"type": etype, "object": obj}) + b"\n"
        if etype in ("ADDED", "MODIFIED", "DELETED"):  # encoded once for every watcher
            return b'{"type":"' + etype.encode() + b'","object":' + storage.watch_json(obj) + b"}\n"
        return orjson.dumps({"type": etype, "object": obj}) + b"\n"

    last_rv = after
    if on_open:
        on_open()
    me = asyncio.current_task()
    ctx.watch_tasks.add(me)
    try:
        started = request.get(WATCH_STARTED)
        if started is not None:  # APF: its headers on the stream, its seat released
            started(resp)
        await resp.prepare(request)
        for obj in initial:
            await resp.write(encode("ADDED", obj))
        if send_initial == "true" and bookmarks:
            await resp.write(encode("BOOKMARK", _bookmark(spec, last_rv, initial_end=True)))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            try:
                if not cursor.live:  # a store read to catch up: not cut short by a bookmark
                    await cursor.fill()
                # not wait_for: that runs the wait in a task of its own
                async with asyncio.timeout(min(remaining, ctx.bookmark_interval)):
                    event = await cursor.next()
            except TimeoutError:
                if bookmarks:
                    # the store's progress when the cursor has taken everything published: an
                    # idle watch's version moves with the store (kube-apiserver's bookmarks
                    # carry its watch cache's revision), so compaction does not expire it
                    last_rv = max(last_rv, cursor.progress())
                    await resp.write(encode("BOOKMARK", _bookmark(spec, last_rv)))
                elif _client_left(request):
                    break
                continue
            except StoreError as exc:  # a compacted revision: one ERROR event with the 410
                status = interpret_watch_error(exc, spec).to_status()
                await resp.write(http.go_json({"type": "ERROR", "object": status}))
                break
            except Exception as exc:  # a broken store ends the watch with a Status, not a hang
                status = errors.internal_error(f"watch failed: {exc}").to_status()
                await resp.write(http.go_json({"type": "ERROR", "object": status}))
                break
            if event is None:  # closed: the store, the cluster's sleep, an unserved CRD
                break
            try:
                item = await storage.watch_event(event, label, field)
            except errors.StatusError as exc:  # a conversion webhook failed
                await resp.write(http.go_json({"type": "ERROR", "object": exc.to_status()}))
                break
            last_rv = event.revision
            if item is None:
                continue
            etype, obj = item
            await resp.write(encode(etype, obj))
    except ConnectionResetError:
        pass
    finally:
        ctx.watch_tasks.discard(me)
        for where in stoppers:
            where.discard(cursor.close)
        cursor.close()
        if on_close:
            on_close()
    with contextlib.suppress(ConnectionResetError, RuntimeError):
        await resp.write_eof()
    return resp


def _client_left(request: web.Request) -> bool:
    """The client of a network watch closed its connection. aiohttp does not cancel a handler
    whose client left, and a quiet watch without bookmarks never writes, so without this check
    it would hold its task and its cursor until its timeout (30–60 min). In-process
    watches have no connection (their reader closing the pipe ends them on the next write)."""
    protocol = request.protocol
    if protocol is None or getattr(protocol, "in_process", False):
        return False
    transport = protocol.transport
    return transport is None or transport.is_closing()


async def _park(storage: Any, spec: ResourceSpec, namespace: str | None, after: int,
                parked: Parked) -> web.Response:
    """``parked.wake`` registered at the first event after ``after`` under the resource (its
    namespace): 200 ``Parked``; 501 when the store cannot (the caller watches instead)."""
    try:
        parked.cancel = await storage.ctx.watch_fanout().park(spec.key_prefix(namespace), after,
                                                              parked.wake)
    except StoreError as exc:
        raise interpret_watch_error(exc, spec) from exc
    if parked.cancel is None:
        return web.Response(status=501, body=b"this store cannot park a watch\n")
    return web.Response(status=200, body=_PARKED, content_type="application/json")


async def _wait_for_revision(store: Any, revision: int) -> None:
    """A version this server has not seen yet (another server's, in HA) is waited for up to
    3 s, as kube-apiserver's watch cache waits; past that the 504 ``Too large resource
    version`` comes before the stream starts, never an empty 200."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + FRESHNESS_WAIT
    while (current := await store.current_revision()) < revision:
        if loop.time() >= deadline:
            raise errors.too_large_resource_version(revision, current)
        await asyncio.sleep(0.05)


def _bookmark(spec: ResourceSpec, rv: int, *, initial_end: bool = False) -> Obj:
    m: Obj = {"resourceVersion": str(rv)}
    if initial_end:
        m["annotations"] = {"k8s.io/initial-events-end": "true"}
    return {"kind": spec.kind, "apiVersion": spec.api_version, "metadata": m}
