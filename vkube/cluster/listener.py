"""Connection limits of the shared listener: one process serves every cluster, so no client
may hold an unbounded number of connections to it. Each TLS connection costs a socket, a
handshake, OpenSSL's buffers and a read buffer (asyncio's is 256 KiB): 4,000 idle connections
grew a shared process to ~1.2 GB before these limits.

Shaped after Go's ``http.Server`` as kube-apiserver configures it: a handshake must finish
within ``handshake_timeout`` (Go bounds it by ``ReadHeaderTimeout``, 32 s there), and a
connection with no request in progress is closed after ``idle_timeout`` (``IdleTimeout``,
90 s) — a connection that sends no complete request is idle too (no slow header trickle keeps
it). HTTP/1.1 carries one request per connection at a time, so Go's http2
``MaxConcurrentStreams`` has no counterpart; the caps count connections instead, as
``netutil.LimitListener`` does:

- per process (``max_connections``) and per client address (``max_per_client``), counted from
  the TCP accept, before any TLS work: a connection over either is closed at once;
- per cluster (``controlPlane.connections.maxPerCluster``), counted once the handshake's
  server name (SNI) chose the cluster: a connection over it is closed after the handshake.
  Connections without a server name share one such count.

Refused connections cost nothing after their close; refusals are counted and logged at most
once a minute per reason."""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from vkube.client.pool import shrink_tls_read_buffer

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ListenerLimits:
    """``vkube serve --shared --max-connections … --max-connections-per-client …
    --tls-handshake-timeout … --idle-timeout …``."""

    #: connections open to the process at once (with handshakes in progress)
    max_connections: int = 4096
    #: of those, from one client address
    max_per_client: int = 1024
    #: seconds a TLS handshake may take from the accept
    handshake_timeout: float = 10.0
    #: seconds a connection may stay without a request in progress
    idle_timeout: float = 90.0


#: a cluster's cap when its values say nothing (``controlPlane.connections.maxPerCluster``)
DEFAULT_PER_CLUSTER = 512


@dataclass
class _Conn:
    address: str
    #: the cluster of an in-cluster port (else its server name decides)
    fixed: str | None = None
    #: the cluster it counts under, once the handshake is done
    cluster: str | None = None
    released: bool = False


class ConnectionLimiter:
    """``limiter.attach(runner.server)`` once; ``await limiter.serve(sock, ctx)`` per listening
    socket; ``await limiter.close()`` before the runner's cleanup.

    ``cluster_of(ssl_object)`` names the cluster a handshake chose (``""``: none);
    ``per_cluster(name)`` is that cluster's cap."""

    LOG_EVERY = 60.0

    def __init__(self, limits: ListenerLimits, *, cluster_of: Callable[[Any], str],
                 per_cluster: Callable[[str], int]) -> None:
        self.limits = limits
        self.cluster_of = cluster_of
        self.per_cluster = per_cluster
        self.total = 0
        self.by_address: dict[str, int] = {}
        self.by_cluster: dict[str, int] = {}
        #: refusals by reason ("process", "client", "cluster", "handshake"): what a platform watches
        self.refused: dict[str, int] = {}
        self._logged: dict[str, float] = {}
        self._server: web.Server | None = None
        self._conns: dict[Any, _Conn] = {}  # app protocol (aiohttp's RequestHandler) → record
        self._tasks: set[asyncio.Task[None]] = set()  # accept loops and handshakes

    # -- wiring -----------------------------------------------------------------------------

    def attach(self, server: web.Server) -> None:
        """Count where aiohttp's connection manager learns of a connection's start (after the
        handshake: the cluster is known) and of its end."""
        self._server = server
        made, lost = server.connection_made, server.connection_lost

        def connection_made(handler: Any, transport: asyncio.Transport) -> None:
            made(handler, transport)
            conn = self._conns.get(handler)
            if conn is not None and not self._admit_cluster(conn, transport):
                transport.abort()  # before its first request is read

        def connection_lost(handler: Any, exc: BaseException | None = None) -> None:
            try:
                lost(handler, exc)
            finally:
                conn = self._conns.pop(handler, None)
                if conn is not None:
                    self._release(conn)

        server.connection_made = connection_made  # type: ignore[method-assign]
        server.connection_lost = connection_lost  # type: ignore[method-assign]

    async def serve(self, sock: socket.socket, context: ssl.SSLContext, *,
                    cluster: str | None = None) -> asyncio.Task[None]:
        """Accept on ``sock`` (counted, closed at once over a cap), then TLS with ``context``
        under the handshake timeout, then aiohttp's handler. ``cluster``: every connection of
        this socket is that cluster's (an in-cluster port), whatever its server name. The
        task returned accepts until cancelled (``close`` cancels them all)."""
        sock.setblocking(False)
        task = asyncio.get_running_loop().create_task(self._accept(sock, context, cluster),
                                                      name="shared: accept")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def close(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    # -- counting ---------------------------------------------------------------------------

    def _refuse(self, reason: str, detail: str) -> None:
        self.refused[reason] = self.refused.get(reason, 0) + 1
        now = time.monotonic()
        if now - self._logged.get(reason, 0.0) >= self.LOG_EVERY:
            self._logged[reason] = now
            log.warning("shared: connection refused (%s): %s", reason, detail)

    def _admit(self, address: str, cluster: str | None) -> _Conn | None:
        limits = self.limits
        if self.total >= limits.max_connections:
            self._refuse("process", f"{self.total} open (--max-connections {limits.max_connections})")
            return None
        mine = self.by_address.get(address, 0)
        if mine >= limits.max_per_client:
            self._refuse("client", f"{mine} open from {address} "
                                   f"(--max-connections-per-client {limits.max_per_client})")
            return None
        self.total += 1
        self.by_address[address] = mine + 1
        return _Conn(address, fixed=cluster)

    def _admit_cluster(self, conn: _Conn, transport: asyncio.Transport) -> bool:
        cluster = conn.fixed if conn.fixed is not None else \
            self.cluster_of(transport.get_extra_info("ssl_object"))
        mine = self.by_cluster.get(cluster, 0)
        cap = self.per_cluster(cluster)
        if mine >= cap:
            self._refuse("cluster", f"{mine} open to {cluster or 'no server name'} "
                                    f"(controlPlane.connections.maxPerCluster {cap})")
            return False
        self.by_cluster[cluster] = mine + 1
        conn.cluster = cluster
        return True

    def _release(self, conn: _Conn) -> None:
        if conn.released:
            return
        conn.released = True
        self.total = max(0, self.total - 1)
        n = self.by_address.get(conn.address, 0) - 1
        if n > 0:
            self.by_address[conn.address] = n
        else:
            self.by_address.pop(conn.address, None)
        if conn.cluster is not None:
            n = self.by_cluster.get(conn.cluster, 0) - 1
            if n > 0:
                self.by_cluster[conn.cluster] = n
            else:
                self.by_cluster.pop(conn.cluster, None)

    # -- connections ------------------------------------------------------------------------

    async def _accept(self, sock: socket.socket, context: ssl.SSLContext, cluster: str | None) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                client, peer = await loop.sock_accept(sock)
            except OSError as exc:  # EMFILE and the like: the process is out of descriptors
                log.warning("shared: accept failed: %s", exc)
                await asyncio.sleep(0.5)
                continue
            address = str(peer[0]) if isinstance(peer, tuple) and peer else ""
            conn = self._admit(address, cluster)
            if conn is None:
                client.close()  # before any TLS work: costs nothing more
                continue
            task = loop.create_task(self._handshake(client, context, conn))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _handshake(self, client: socket.socket, context: ssl.SSLContext, conn: _Conn) -> None:
        assert self._server is not None
        server = self._server
        handler: Any = None

        def make() -> Any:
            nonlocal handler
            handler = server()
            self._conns[handler] = conn
            return handler

        try:
            transport, _ = await asyncio.get_running_loop().connect_accepted_socket(
                make, client, ssl=context, ssl_handshake_timeout=self.limits.handshake_timeout)
        except BaseException as exc:
            client.close()
            if handler is not None:
                self._conns.pop(handler, None)
            self._release(conn)
            if isinstance(exc, (asyncio.CancelledError, KeyboardInterrupt, SystemExit)):
                raise
            # a timeout (--tls-handshake-timeout) or a failed handshake: counted, not an error
            log.debug("shared: handshake from %s failed: %r", conn.address, exc)
            self._refuse("handshake", f"from {conn.address}: {exc!r}")
            return
        shrink_tls_read_buffer(transport)  # the stdlib loop's 256 KiB (uvloop allocates lazily)


__all__ = ["DEFAULT_PER_CLUSTER", "ConnectionLimiter", "ListenerLimits"]
