"""Components talk to their own API server in process (issue 18): the ``Transport`` a
cluster's controller manager, syncer (virtual side), DNS, scheduler and leader election use
when they live in the process of the API server they talk to.

Why: over loopback HTTPS every request pays TLS, HTTP framing on both sides and a socket
round trip, and each of a cluster's ~40 watches holds two TLS connections and their buffers.
Here a request is an aiohttp ``web.Request`` built in memory and handed to the server's own
``APIServer.dispatch``: the same authorization (impersonation, RBAC, the Node authorizer),
admission, validation, audit and metrics as over the network. Only authentication differs:
the component's fixed identity — the user its client certificate gives it — stands in for
the handshake. Shared mode passes its per-cluster fairness ``seat`` so components queue for
seats as their HTTP requests did (streams hold none, as there).

No object is shared between server and component: the client encodes request bodies and the
handler decodes them; replies and watch events reach the component as the server's bytes
(a watch event is encoded once for all its watchers) and are decoded into the component's
own dicts.

Each request runs in its own task, as on the server side of a connection: a component that
is cancelled mid-request does not abort the server's half of it.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractStreamWriter
from aiohttp.http import HttpVersion11, RawRequestMessage
from aiohttp.streams import EMPTY_PAYLOAD, StreamReader
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from vkube.api import errors
from vkube.apiserver import http as api_http
from vkube.apiserver.authn import certificate_user
from vkube.apiserver.server import IN_PROCESS_USER, APIServer
from vkube.apiserver.watch import PARK, Parked
from vkube.client import Client
from vkube.cluster.fairness import TooManyRequests
from vkube.pki.cluster import Identity

log = logging.getLogger(__name__)

#: chunks a stream may hold before the handler's next write waits (a socket's buffer)
STREAM_BUFFER = 256
#: how long close() lets requests in flight finish before cancelling them (aiohttp's
#: shutdown_timeout, as the server's own runner uses)
SHUTDOWN_TIMEOUT = 1.0
#: requests (streams included) one client has in flight at once, as its HTTP connection pool
#: allows (``vkube.client``'s ``TCPConnector(limit=100)``): the same back-pressure on the server
MAX_IN_FLIGHT = 100
#: kube-apiserver's APF refusal text, as the shared listener answers it
_TOO_MANY = b"Too many requests, please try again later.\n"

Seat = Callable[[], AbstractAsyncContextManager[Any]]


class _Peer:
    """What aiohttp's ``Request`` reads from its connection: loopback, no TLS (so no peer
    certificate: the identity comes from ``IN_PROCESS_USER``)."""

    ssl_context = None
    #: no connection to lose: a watch's client-left check skips in-process requests
    in_process = True
    peername = ("127.0.0.1", 0)
    sockname = ("127.0.0.1", 0)
    transport = None

    def pause_reading(self) -> None:  # StreamReader's flow control: nothing to pause
        pass

    def resume_reading(self, resume_parser: bool = True) -> None:
        pass


class _Pipe:
    """The body of a streaming reply: bounded, so a slow reader slows the handler down as a
    full socket would; closing it makes the handler's next write fail as a reset connection."""

    def __init__(self, limit: int = STREAM_BUFFER) -> None:
        self._chunks: collections.deque[bytes] = collections.deque()
        self._limit = limit
        self._closed = False
        self._readable = asyncio.Event()
        self._writable = asyncio.Event()
        self._writable.set()

    async def put(self, chunk: bytes) -> None:
        while len(self._chunks) >= self._limit and not self._closed:
            self._writable.clear()
            await self._writable.wait()
        if self._closed:
            raise ConnectionResetError("in-process stream closed by its reader")
        self._chunks.append(chunk)
        self._readable.set()

    def close(self) -> None:
        self._closed = True
        self._readable.set()
        self._writable.set()

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while True:
            if self._chunks:
                chunk = self._chunks.popleft()
                self._writable.set()
                yield chunk
                continue
            if self._closed:
                return
            self._readable.clear()
            await self._readable.wait()


class _Sink(AbstractStreamWriter):
    """Where a prepared response writes: the status line sets ``status``; the body goes to a
    pipe (streams) or is collected (replies)."""

    def __init__(self, pipe: _Pipe | None = None) -> None:
        self.status: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.pipe = pipe
        self.parts: list[bytes] = []
        self.headers: Mapping[str, str] = {}

    async def write_headers(self, status_line: str, headers: Any) -> None:
        if not self.status.done():
            self.headers = headers  # Retry-After of a refusal, for the client
            self.status.set_result(int(status_line.split(" ", 2)[1]))

    async def write(self, chunk: bytes | bytearray | memoryview) -> None:
        if not chunk:
            return
        data = bytes(chunk)
        self.output_size += len(data)
        if self.pipe is not None:
            await self.pipe.put(data)
        else:
            self.parts.append(data)

    async def write_eof(self, chunk: bytes = b"") -> None:
        await self.write(chunk)

    async def drain(self) -> None:
        pass

    def enable_compression(self, encoding: str = "deflate", strategy: Any = None) -> None:
        pass

    def enable_chunking(self) -> None:
        pass


class InProcessTransport:
    """Requests of one component identity into one ``APIServer`` (``vkube.client.Transport``)."""

    def __init__(self, server: APIServer, identity: Identity, *, seat: Seat | None = None) -> None:
        self.server = server
        self.user = certificate_user(*identity)
        self.seat = seat
        self._peer = _Peer()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._streams: set[asyncio.Task[Any]] = set()
        self._slots = asyncio.Semaphore(MAX_IN_FLIGHT)
        self._closed = False

    # -- the Transport protocol -----------------------------------------------------------

    async def send(self, method: str, path: str, *, params: Mapping[str, str] | None,
                   body: bytes | None, headers: Mapping[str, str],
                   timeout: float) -> tuple[int, bytes, Mapping[str, str]]:
        self._check_open(method, path)
        sink = _Sink()
        request = self._request(method, path, params, body, headers, sink)
        task = self._spawn(self._reply(request, sink), f"{method} {path}")
        try:
            async with asyncio.timeout(timeout):
                return await asyncio.shield(task)
        except TimeoutError:  # as the HTTP client's total timeout: the server carries on
            raise errors.ServiceUnavailable(f"{method} {path}: TimeoutError: no reply in {timeout}s") from None

    @contextlib.asynccontextmanager
    async def open(self, path: str, *, params: Mapping[str, str] | None,
                   headers: Mapping[str, str]
                   ) -> AsyncIterator[tuple[int, AsyncIterator[bytes], Mapping[str, str]]]:
        self._check_open("GET", path)
        pipe = _Pipe()
        sink = _Sink(pipe)
        request = self._request("GET", path, params, None, headers, sink)
        task = self._spawn(self._stream(request, sink), f"GET {path} (stream)")
        self._streams.add(task)
        task.add_done_callback(self._streams.discard)
        try:
            status = await asyncio.shield(sink.status)
            yield status, aiter(pipe), sink.headers
        finally:
            pipe.close()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def park(self, path: str, *, params: Mapping[str, str] | None,
                   headers: Mapping[str, str], wake: Callable[[int], None],
                   timeout: float = 60.0) -> tuple[int, bytes, Callable[[], None] | None]:
        """A watch request that parks instead of streaming (``vkube.apiserver.watch.Parked``):
        authorized and admitted as any watch; on 200 only ``wake`` stays registered with the
        cluster's watch fan-out. Returns (status, body, cancel)."""
        self._check_open("GET", path)
        parked = Parked(wake)
        sink = _Sink()
        request = self._request("GET", path, params, None, headers, sink, park=parked)
        task = self._spawn(self._reply(request, sink), f"GET {path} (park)")
        try:
            async with asyncio.timeout(timeout):
                status, body, _ = await asyncio.shield(task)
        except TimeoutError:
            raise errors.ServiceUnavailable(f"park {path}: no reply in {timeout}s") from None
        return status, body, parked.cancel if status == 200 else None

    async def close(self) -> None:
        """No new requests; streams end now, requests in flight get ``SHUTDOWN_TIMEOUT`` to
        finish."""
        self._closed = True
        for task in self._streams:
            task.cancel()
        tasks = list(self._tasks)
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=SHUTDOWN_TIMEOUT)
        for task in pending:
            task.cancel()
        for task in pending:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    # -- requests -------------------------------------------------------------------------

    def _check_open(self, method: str, path: str) -> None:
        if self._closed:  # as a closed listener refuses the connection
            raise errors.ServiceUnavailable(f"{method} {path}: the in-process client is closed")

    def _spawn(self, coro: Any, what: str) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro, name=f"in-process {what}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _request(self, method: str, path: str, params: Mapping[str, str] | None,
                 body: bytes | None, headers: Mapping[str, str], sink: _Sink,
                 park: Parked | None = None) -> web.Request:
        """The request the network would have delivered, from a client on loopback."""
        url = URL(path)
        if params:
            url = url.extend_query(params)
        hdrs = CIMultiDict(headers)
        payload: StreamReader = EMPTY_PAYLOAD
        loop = asyncio.get_running_loop()
        if body is not None:
            hdrs["Content-Length"] = str(len(body))
            payload = StreamReader(self._peer, max(len(body), 2 ** 16), loop=loop)  # type: ignore[arg-type]
            payload.feed_data(body)
            payload.feed_eof()
        raw = tuple((k.encode(), v.encode()) for k, v in hdrs.items())
        message = RawRequestMessage(method, url.raw_path_qs, HttpVersion11, CIMultiDictProxy(hdrs), raw,
                                    False, None, False, False, url)
        state: dict[Any, Any] = {IN_PROCESS_USER: self.user}
        if park is not None:
            state[PARK] = park
        return web.Request(message, payload, self._peer, sink, asyncio.current_task(), loop,  # type: ignore[arg-type]
                           client_max_size=api_http.MAX_BODY * 4, state=state,
                           remote="127.0.0.1")

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        if self.seat is None:
            return await self.server.dispatch(request)
        async with self.seat():
            return await self.server.dispatch(request)

    async def _reply(self, request: web.Request, sink: _Sink) -> tuple[int, bytes, Mapping[str, str]]:
        try:
            async with self._slots:
                resp = await self._dispatch(request)
        except TooManyRequests as e:
            return 429, _TOO_MANY, {"Retry-After": str(e.retry_after)}
        if not resp.prepared:
            body = resp.body if isinstance(resp, web.Response) else None
            if body is None or isinstance(body, bytes):
                return resp.status, body or b"", resp.headers
            await resp.prepare(request)  # a payload object: written as the server writes it
        await resp.write_eof()
        return resp.status, b"".join(sink.parts), resp.headers

    async def _stream(self, request: web.Request, sink: _Sink) -> None:
        """A long-running request (watch, follow): no fairness seat, as kube-apiserver's
        long-running check exempts them."""
        assert sink.pipe is not None
        try:
            async with self._slots:
                await self._serve_stream(request)
        except ConnectionResetError:  # the reader left
            pass
        finally:
            if not sink.status.done():  # ended before it answered: as a dropped connection
                sink.status.set_exception(errors.ServiceUnavailable(
                    f"{request.method} {request.path}: the in-process stream ended before a reply"))
            sink.pipe.close()

    async def _serve_stream(self, request: web.Request) -> None:
        resp = await self.server.dispatch(request)
        if not resp.prepared:
            await resp.prepare(request)
        with contextlib.suppress(ConnectionResetError, RuntimeError):
            await resp.write_eof()


def in_process_client(server: APIServer, identity: Identity, *, url: str, user_agent: str,
                      seat: Seat | None = None, **kw: Any) -> Client:
    """A ``Client`` of ``server`` as ``identity`` that never leaves the process. ``url`` only
    names the API in messages; ``kw`` as ``Client`` takes them (``timeout``, ``headers``)."""
    return Client(url, user_agent=user_agent, transport=InProcessTransport(server, identity, seat=seat), **kw)


__all__ = ["InProcessTransport", "in_process_client"]
