"""Async dict-based Kubernetes client.

Why our own: the official async clients deserialize into generated model classes (slow, and
they drop unknown fields of custom resources); kopf, a model operator codebase, talks to the API
with aiohttp and dicts for the same reasons. aiohttp does the HTTP; this module only knows the
REST path convention, kubeconfigs, and maps ``Status`` replies to ``vkube.api.errors``.

A ``Transport`` (httpx's pattern: ``AsyncClient(transport=ASGITransport(app))``) replaces the
network for components living in their API server's process: same client, same error mapping,
no sockets or TLS (``vkube.cluster.inprocess``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import aiohttp
import orjson

from vkube.api import errors
from vkube.api.meta import Obj
from vkube.client import retry


PATCH_TYPES = {
    "merge": "application/merge-patch+json",
    "strategic": "application/strategic-merge-patch+json",
    "json": "application/json-patch+json",
    "apply": "application/apply-patch+yaml",
}


@dataclass(frozen=True, slots=True)
class Resource:
    """What the client needs to build a URL: ``Resource("apps", "v1", "deployments", True)``."""

    group: str
    version: str
    plural: str
    namespaced: bool = True
    kind: str = ""

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(self, namespace: str | None = None, name: str | None = None,
             subresource: str | None = None) -> str:
        """``/api/v1/namespaces/ns/pods/name/status`` and friends. A namespaced resource
        without a namespace means "across all namespaces" (list / watch)."""
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{namespace}"
        base += f"/{self.plural}"
        if name is not None:
            base += f"/{name}"
            if subresource:
                base += f"/{subresource}"
        return base


@dataclass(frozen=True, slots=True)
class WatchEvent:
    type: Literal["ADDED", "MODIFIED", "DELETED", "BOOKMARK", "ERROR"]
    object: Obj


@dataclass(frozen=True, slots=True)
class APIResource:
    """One entry of discovery: the resource plus what it supports."""

    resource: Resource
    verbs: tuple[str, ...]
    short_names: tuple[str, ...] = ()


class Transport(Protocol):
    """What carries a Client's requests when it is not HTTP over the network. Replies are
    (status, body bytes, headers); the Client maps error statuses to ``StatusError`` and
    retries throttled ones as for HTTP."""

    async def send(self, method: str, path: str, *, params: Mapping[str, str] | None,
                   body: bytes | None, headers: Mapping[str, str],
                   timeout: float) -> tuple[int, bytes, Mapping[str, str]]: ...

    def open(self, path: str, *, params: Mapping[str, str] | None,
             headers: Mapping[str, str]
             ) -> AbstractAsyncContextManager[tuple[int, AsyncIterator[bytes], Mapping[str, str]]]:
        """A GET whose body streams (watch, follow): (status, chunks, headers) until the
        server ends it; leaving the context ends the request."""
        ...

    async def close(self) -> None: ...


def load_kubeconfig(path: str, context: str | None = None) -> "Client":
    """A Client for the kubeconfig's (current or named) context: server, CA / insecure,
    client cert+key or token."""
    from vkube.client.kubeconfig import client_from_kubeconfig

    return client_from_kubeconfig(path, context)


def _dumps(body: Any) -> bytes:
    if isinstance(body, (bytes, bytearray)):
        return bytes(body)
    if isinstance(body, str):
        return body.encode()
    return orjson.dumps(body)


def _params(**kw: Any) -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in kw.items():
        if v is None or v is False:
            continue
        out[k] = "true" if v is True else str(v)
    return out


class Client:
    """One aiohttp session per client; use ``async with Client(...)`` or ``await close()``.
    Every error reply raises the matching ``vkube.api.errors.StatusError`` subclass;
    connection failures raise ``vkube.api.errors.ServiceUnavailable``."""

    def __init__(self, server: str, *, token: str | None = None, ssl: Any = None,
                 user_agent: str = "vkube", timeout: float = 60.0,
                 headers: dict[str, str] | None = None,
                 server_hostname: str | None = None, transport: Transport | None = None,
                 session: Callable[[], aiohttp.ClientSession] | None = None,
                 retries: int = retry.MAX_RETRIES, max_lists: int = 8) -> None:
        """``server_hostname``: the TLS server name to send and verify (a kubeconfig's
        ``tls-server-name``; shared mode picks the cluster by it). ``transport``: carries
        the requests instead of HTTP (``server`` then only names the API in messages).
        ``session``: a session someone else owns and shares (``vkube.client.pool``); this
        client's headers, its token among them, then go with each request. ``retries``: how
        often a throttled request (429 from APF or fairness, ``vkube.client.retry``) is sent
        again after its ``Retry-After``, as client-go does; 0 raises at once. ``max_lists``:
        the LISTs this client's informers run at once (``list_gate``)."""
        self.server = server.rstrip("/")
        self._tls = {"server_hostname": server_hostname} if server_hostname else {}
        self.token = token
        self.ssl = ssl
        self.user_agent = user_agent
        self.timeout = timeout
        self.namespace = "default"  # the kubeconfig context's namespace, for callers' defaults
        self._headers = {"User-Agent": user_agent, "Accept": "application/json"}
        if token:
            self._headers["Authorization"] = f"Bearer {token}"
        self._headers.update(headers or {})
        self._session: aiohttp.ClientSession | None = None
        self._shared = session
        # with a shared session the headers go with every request, not with the session
        self._req_headers = dict(self._headers) if session is not None else {}
        self.transport = transport
        self.retries = retries
        #: informers (re)list through it: a component starting dozens of informers would
        #: otherwise put all their LISTs into its cluster's fairness queue at once (shared
        #: mode: 64 places, 4 seats) and be refused; eight at a time keep every seat busy
        self.list_gate = asyncio.Semaphore(max_lists)

    def _get_session(self) -> aiohttp.ClientSession:
        # Created lazily: aiohttp sessions belong to the running event loop.
        if self._shared is not None:
            return self._shared()
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(ssl=self.ssl if self.ssl is not None else True,
                                             limit=100)
            self._session = aiohttp.ClientSession(connector=connector, headers=self._headers,
                                                  json_serialize=lambda o: orjson.dumps(o).decode())
        return self._session

    async def close(self) -> None:
        if self.transport is not None:
            await self.transport.close()
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> "Client":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- the one place that talks HTTP and maps errors -------------------------------------

    async def request(self, method: str, path: str, *, params: Obj | None = None,
                      body: Any = None, content_type: str = "application/json",
                      raw: bool = False) -> Any:
        """Escape hatch: JSON reply (or bytes with raw=True), errors mapped as above; a
        throttled request is sent again after its Retry-After (``retries`` times)."""
        headers = dict(self._req_headers)
        data = None
        if body is not None:
            data = _dumps(body)
            headers["Content-Type"] = content_type
        attempt = 0
        while True:
            status, payload, reply_headers = await self._send(method, path, params, data, headers)
            if status < 300:
                return _reply(method, path, payload, raw)
            err, again = _error_from_reply(status, payload, reply_headers)
            if not again or attempt >= self.retries:
                raise err
            attempt += 1
            await asyncio.sleep(retry.jittered(float(err.retry_after or 0)))

    async def _send(self, method: str, path: str, params: Obj | None, data: bytes | None,
                    headers: dict[str, str]) -> tuple[int, bytes, Mapping[str, str]]:
        """One attempt: (status, body, headers); network failures as ``ServiceUnavailable``."""
        if self.transport is not None:
            return await self.transport.send(
                method, path, params=params, body=data, headers={**self._headers, **headers},
                timeout=self.timeout)
        timeout = aiohttp.ClientTimeout(total=self.timeout)
        try:
            async with self._get_session().request(
                method, self.server + path, params=params, data=data, headers=headers,
                timeout=timeout, **self._tls,
            ) as resp:
                return resp.status, await resp.read(), resp.headers
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as e:
            raise errors.ServiceUnavailable(f"{method} {path}: {type(e).__name__}: {e}") from e

    # -- CRUD -----------------------------------------------------------------------------

    async def get(self, res: Resource, name: str, *, namespace: str | None = None,
                  subresource: str | None = None) -> Obj:
        return await self.request("GET", res.path(namespace, name, subresource))

    async def list(self, res: Resource, *, namespace: str | None = None,
                   label_selector: str | None = None, field_selector: str | None = None,
                   limit: int | None = None, continue_: str | None = None,
                   resource_version: str | None = None) -> Obj:
        """The List object (``items``, ``metadata.resourceVersion``, ``metadata.continue``)."""
        params = _params(labelSelector=label_selector, fieldSelector=field_selector,
                         limit=limit, resourceVersion=resource_version)
        if continue_:
            params["continue"] = continue_
        return await self.request("GET", res.path(namespace), params=params)

    async def list_all(self, res: Resource, **kw: Any) -> Obj:
        """Like list() but follows ``continue`` pages; returns one List."""
        kw.setdefault("limit", 500)
        kw.pop("continue_", None)
        first = await self.list(res, **kw)
        items = list(first.get("items") or [])
        token = (first.get("metadata") or {}).get("continue")
        while token:
            page = await self.list(res, continue_=token, **kw)
            items.extend(page.get("items") or [])
            first["metadata"] = page.get("metadata") or {}
            token = first["metadata"].get("continue")
        first["items"] = items
        first.setdefault("metadata", {}).pop("continue", None)
        first["metadata"].pop("remainingItemCount", None)
        return first

    async def create(self, res: Resource, obj: Obj, *, namespace: str | None = None,
                     subresource: str | None = None, name: str | None = None,
                     dry_run: bool = False, field_manager: str | None = None) -> Obj:
        """Namespace defaults to obj.metadata.namespace. ``subresource`` (with ``name``) posts
        to e.g. ``pods/NAME/binding`` or ``pods/NAME/eviction``."""
        ns = namespace or (obj.get("metadata") or {}).get("namespace")
        if subresource and name is None:
            name = (obj.get("metadata") or {}).get("name")
        path = res.path(ns, name if subresource else None, subresource)
        params = _params(dryRun="All" if dry_run else None, fieldManager=field_manager)
        return await self.request("POST", path, params=params, body=obj)

    async def update(self, res: Resource, obj: Obj, *, subresource: str | None = None,
                     field_manager: str | None = None) -> Obj:
        meta = obj.get("metadata") or {}
        path = res.path(meta.get("namespace"), meta["name"], subresource)
        return await self.request("PUT", path, params=_params(fieldManager=field_manager),
                                  body=obj)

    async def patch(self, res: Resource, name: str, patch: Any, *, namespace: str | None = None,
                    type: Literal["merge", "strategic", "json", "apply"] = "merge",
                    subresource: str | None = None, field_manager: str | None = None,
                    force: bool = False) -> Obj:
        if type == "apply" and not field_manager:
            field_manager = self.user_agent  # the server demands one for apply
        params = _params(fieldManager=field_manager, force=force if type == "apply" else None)
        return await self.request("PATCH", res.path(namespace, name, subresource), params=params,
                                  body=patch, content_type=PATCH_TYPES[type])

    async def delete(self, res: Resource, name: str, *, namespace: str | None = None,
                     propagation_policy: str | None = None,
                     grace_period_seconds: int | None = None,
                     preconditions: Obj | None = None) -> Obj:
        opts: Obj = {"kind": "DeleteOptions", "apiVersion": "v1"}
        if propagation_policy:
            opts["propagationPolicy"] = propagation_policy
        if grace_period_seconds is not None:
            opts["gracePeriodSeconds"] = grace_period_seconds
        if preconditions:
            opts["preconditions"] = preconditions
        return await self.request("DELETE", res.path(namespace, name), body=opts)

    # -- streams ----------------------------------------------------------------------------

    async def stream(self, path: str, *, params: Obj | None = None) -> AsyncIterator[bytes]:
        """GET ``path`` and yield the body as it arrives (``pods/log?follow=true``). No total
        timeout: the stream lasts as long as the server keeps it open."""
        async with self._open(path, params, f"GET {path}") as chunks:
            async for chunk in chunks:
                yield chunk

    @contextlib.asynccontextmanager
    async def _open(self, path: str, params: Obj | None, what: str) -> AsyncIterator[AsyncIterator[bytes]]:
        """The body of a streaming GET, chunk by chunk; error replies raise as ``request``'s
        (a throttled one is opened again after its Retry-After), network failures as
        ``ServiceUnavailable`` naming ``what``."""
        attempt = 0
        while True:
            async with contextlib.AsyncExitStack() as stack:
                try:
                    chunks = await stack.enter_async_context(self._open_once(path, params, what))
                except _Throttled as t:
                    if attempt >= self.retries:
                        raise t.error from None
                    delay = retry.jittered(float(t.error.retry_after or 0))
                else:
                    yield chunks
                    return
            attempt += 1
            await asyncio.sleep(delay)

    @contextlib.asynccontextmanager
    async def _open_once(self, path: str, params: Obj | None, what: str) -> AsyncIterator[AsyncIterator[bytes]]:
        if self.transport is not None:
            async with self.transport.open(path, params=params, headers=self._headers) as (status, chunks, hdrs):
                if status >= 300:
                    _raise_reply(status, b"".join([c async for c in chunks]), hdrs)
                yield chunks
            return
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=self.timeout, sock_read=None)
        try:
            async with self._get_session().get(self.server + path, params=params, **self._tls,
                                               timeout=timeout, headers=self._req_headers) as resp:
                if resp.status >= 300:
                    _raise_reply(resp.status, await resp.read(), resp.headers)
                yield resp.content.iter_any()
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as e:
            raise errors.ServiceUnavailable(f"{what}: {type(e).__name__}: {e}") from e

    @contextlib.asynccontextmanager
    async def websocket(self, path: str, *, params: Sequence[tuple[str, str]] | Obj | None = None,
                        protocols: Sequence[str] = ()
                        ) -> AsyncIterator[aiohttp.ClientWebSocketResponse]:
        """A WebSocket to ``path`` with this client's credentials and TLS (``pods/NAME/exec``,
        ``attach``, ``portforward``; ``params`` as pairs since ``command`` repeats).
        ``ws.protocol`` is the subprotocol the server chose. A refused upgrade raises the
        matching StatusError."""
        if self.transport is not None:
            raise errors.BadRequest(f"{path}: WebSockets are not carried by {type(self.transport).__name__}; "
                                    "use a client over HTTPS")
        session = self._get_session()
        try:
            ws = await session.ws_connect(
                self.server + path, params=params, protocols=tuple(protocols),
                timeout=aiohttp.ClientWSTimeout(ws_close=5), autoping=True,
                headers=self._req_headers, **self._tls)
        except aiohttp.WSServerHandshakeError as e:
            raise errors.from_status({"code": e.status, "message": f"{path}: {e.message}"},
                                     e.status) from e
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as e:
            raise errors.ServiceUnavailable(f"websocket {path}: {type(e).__name__}: {e}") from e
        try:
            yield ws
        finally:
            await ws.close()

    # -- watch ----------------------------------------------------------------------------

    async def watch(self, res: Resource, *, namespace: str | None = None,
                    resource_version: str | None = None, label_selector: str | None = None,
                    field_selector: str | None = None, allow_bookmarks: bool = True,
                    timeout_seconds: int | None = None) -> AsyncIterator[WatchEvent]:
        """Streams events until the server closes the stream (or timeout); an ERROR event
        with a 410 Status raises ``vkube.api.errors.Gone``; other ERROR events are yielded."""
        params = _params(watch=1, resourceVersion=resource_version, labelSelector=label_selector,
                         fieldSelector=field_selector, allowWatchBookmarks=allow_bookmarks,
                         timeoutSeconds=timeout_seconds)
        path = res.path(namespace)
        async with self._open(path, params, f"watch {path}") as chunks:
            buf = b""
            async for chunk in chunks:
                buf += chunk
                while (i := buf.find(b"\n")) >= 0:
                    line, buf = buf[:i], buf[i + 1:]
                    if line.strip():
                        yield _watch_event(line)
            if buf.strip():
                yield _watch_event(buf)

    async def park(self, res: Resource, *, namespace: str | None = None, resource_version: str,
                   label_selector: str | None = None, field_selector: str | None = None,
                   wake: Callable[[int], None]) -> Callable[[], None] | None:
        """Instead of a watch from ``resource_version`` that would have nothing to send yet:
        ``wake(revision)`` once at the first change under the resource (watch from
        ``revision - 1`` then; 0: the server stopped). Returns the function that cancels it,
        or None where it cannot park (over the network; a store that cannot): watch instead.
        Only an in-process transport parks (``vkube.cluster.inprocess``); the request is
        authorized as a watch, and its errors raise as a watch's would (410 ``Gone``)."""
        park = getattr(self.transport, "park", None)
        if park is None:
            return None
        params = _params(watch=1, resourceVersion=resource_version, labelSelector=label_selector,
                         fieldSelector=field_selector)
        path = res.path(namespace)
        status, payload, cancel = await park(path, params=params, headers=self._headers, wake=wake)
        if status == 501:
            return None
        if status >= 300:
            raise _error_from_reply(status, payload)
        return cancel

    # -- discovery ------------------------------------------------------------------------

    async def discover(self) -> list[APIResource]:
        """Every top-level resource the server serves (preferred version per group), via
        the legacy discovery documents (``/api/v1``, ``/apis``, ``/apis/G/V``)."""
        out: list[APIResource] = []
        group_versions: list[tuple[str, str]] = [("", "v1")]
        groups = await self.request("GET", "/apis")
        for g in groups.get("groups") or []:
            pref = (g.get("preferredVersion") or {}).get("version") or g["versions"][0]["version"]
            group_versions.append((g["name"], pref))
        for group, version in group_versions:
            path = f"/apis/{group}/{version}" if group else f"/api/{version}"
            try:
                doc = await self.request("GET", path)
            except (errors.NotFound, errors.ServiceUnavailable):  # an unavailable aggregated API
                continue
            for r in doc.get("resources") or []:
                if "/" in r["name"]:
                    continue
                out.append(APIResource(
                    Resource(group, version, r["name"], bool(r.get("namespaced")), r.get("kind", "")),
                    tuple(r.get("verbs") or ()), tuple(r.get("shortNames") or ())))
        return out


def _reply(method: str, path: str, payload: bytes, raw: bool) -> Any:
    if raw:
        return payload
    if not payload:
        return {}
    try:
        return orjson.loads(payload)
    except orjson.JSONDecodeError as e:
        raise errors.InternalError(f"{method} {path}: reply is not JSON") from e


def _watch_event(line: bytes) -> WatchEvent:
    try:
        ev = orjson.loads(line)
    except orjson.JSONDecodeError as e:
        raise errors.InternalError(f"watch: undecodable event: {line[:200]!r}") from e
    typ, obj = ev.get("type"), ev.get("object") or {}
    if typ == "ERROR":
        if obj.get("code") == 410:
            raise errors.from_status(obj, 410)
    return WatchEvent(typ, obj)


class _Throttled(Exception):
    """A throttled reply to a stream's GET: carried out of the stream's context to be retried."""

    def __init__(self, error: errors.StatusError) -> None:
        super().__init__(str(error))
        self.error = error


def _raise_reply(status: int, payload: bytes, headers: Mapping[str, str] | None) -> None:
    err, again = _error_from_reply(status, payload, headers)
    raise _Throttled(err) if again else err


def _error_from_reply(status: int, payload: bytes,
                      headers: Mapping[str, str] | None = None) -> tuple[errors.StatusError, bool]:
    """The error a reply stands for, its ``retry_after`` from the header when the body has
    none; and whether it is a throttling refusal to send again (``vkube.client.retry``)."""
    try:
        body = orjson.loads(payload) if payload else None
    except orjson.JSONDecodeError:
        body = None
    is_status = isinstance(body, dict) and body.get("kind") == "Status"
    if is_status:
        err = errors.from_status(body, status)
    else:
        text = payload[:500].decode("utf-8", "replace").strip() or f"HTTP {status}"
        err = errors.from_status({"code": status, "message": text}, status)
    header = retry.retry_after_of(headers)
    if header is not None and not err.retry_after:
        err.retry_after = header
    return err, retry.throttled(status, is_status, header)
