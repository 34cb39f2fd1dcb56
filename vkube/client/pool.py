"""One host connection pool per process for many clients, each with its own credentials.

Why: in shared mode a process serves hundreds of virtual clusters, each with a syncer talking
to the host. A ``Client`` of its own per syncer meant an SSL context (trust store loaded), an
aiohttp connector and its idle keep-alive connections per cluster, and every TLS connection
holds asyncio's 256 KiB read buffer — about 3 MiB of an idle cluster's cost. Here clients
whose TLS identity is the same (server trust and client certificate) share one session; a
bearer token, the per-cluster identity that can share, goes with each request, so host RBAC
still judges every request as its own cluster's. Clients with different client certificates
never share a connection (TLS binds the certificate to the connection). Every connection the
pool opens keeps a small read buffer.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from typing import Any

import aiohttp
import orjson

from vkube.api import yamlio
from vkube.client.client import Client
from vkube.client.kubeconfig import KubeconfigContext, parse_kubeconfig, ssl_context

#: bytes asyncio reads from a TLS socket at once; a TLS record is at most 16 KiB, and the
#: stdlib's default of 256 KiB is allocated (and touched) per connection
TLS_READ_BUFFER = 16 * 1024


def shrink_tls_read_buffer(transport: asyncio.BaseTransport, size: int = TLS_READ_BUFFER) -> bool:
    """Give a TLS connection's incoming buffer ``size`` bytes instead of asyncio's 256 KiB.
    Safe between reads (the buffer is asked for anew before every read); a transport without
    asyncio's SSL protocol (plain TCP, another implementation) is left as it is."""
    proto = getattr(transport, "_ssl_protocol", None)
    buf = getattr(proto, "_ssl_buffer", None)
    if proto is None or not isinstance(buf, bytearray) or len(buf) <= size:
        return False
    proto.max_size = size
    proto._ssl_buffer = bytearray(size)
    proto._ssl_buffer_view = memoryview(proto._ssl_buffer)
    return True


class SmallBufferConnector(aiohttp.TCPConnector):
    """A connector whose TLS connections read through a small buffer (see above)."""

    async def _wrap_create_connection(self, *args: Any, **kwargs: Any) -> Any:
        transport, proto = await super()._wrap_create_connection(*args, **kwargs)
        shrink_tls_read_buffer(transport)
        return transport, proto


def _identity(kc: KubeconfigContext) -> tuple[Any, ...]:
    """What decides whether two clients may share a connection: everything TLS sends or
    checks (the token is not part of it: it travels per request)."""
    digest = hashlib.sha256
    return (kc.server.split("://", 1)[0], kc.insecure, kc.tls_server_name,
            digest(kc.ca_data or b"").hexdigest(),
            digest(kc.cert_data or b"").hexdigest(), digest(kc.key_data or b"").hexdigest())


class ConnectionPool:
    """``pool.client(kubeconfig, context)``: a Client over the pool's shared session for that
    TLS identity; ``await pool.close()`` ends every connection (closing a pooled Client only
    ends its own use). Owned by one process-wide object (the shared server), never global."""

    def __init__(self) -> None:
        self._ssl: dict[tuple[Any, ...], Any] = {}
        self._sessions: dict[tuple[Any, ...], aiohttp.ClientSession] = {}

    def client(self, path: str, context: str | None = None, **kw: Any) -> Client:
        with open(path, "rb") as f:
            doc = yamlio.load(f) or {}
        kc = parse_kubeconfig(doc, context, base_dir=os.path.dirname(os.path.abspath(path)))
        key = _identity(kc)
        if key not in self._ssl:  # one SSL context (trust store, certificate) per identity
            self._ssl[key] = ssl_context(kc)
        client = Client(kc.server, token=kc.token, ssl=self._ssl[key],
                        server_hostname=kc.tls_server_name,
                        session=lambda: self._session(key), **kw)
        client.namespace = kc.namespace
        return client

    def _session(self, key: tuple[Any, ...]) -> aiohttp.ClientSession:
        # made lazily, inside the running loop (aiohttp sessions belong to one loop)
        session = self._sessions.get(key)
        if session is None or session.closed:
            ssl = self._ssl[key]
            # no connection limit: every host watch holds a connection for as long as it runs,
            # and a cap shared by all clusters would let one cluster's requests starve others'
            connector = SmallBufferConnector(ssl=ssl if ssl is not None else True, limit=0)
            # no cookie jar: a session serves many clusters, and a cookie one cluster's answer
            # set must never ride on another's request (an API server sets none anyway)
            session = aiohttp.ClientSession(
                connector=connector, cookie_jar=aiohttp.DummyCookieJar(),
                json_serialize=lambda o: orjson.dumps(o).decode())
            self._sessions[key] = session
        return session

    def connections(self) -> int:
        """Open connections of every session (idle and in use): what the pool costs now."""
        total = 0
        for session in self._sessions.values():
            conn = session.connector
            if conn is not None and not session.closed:
                total += sum(len(v) for v in conn._conns.values()) + len(conn._acquired)
        return total

    def sessions(self) -> int:
        return sum(1 for s in self._sessions.values() if not s.closed)

    async def close(self) -> None:
        sessions, self._sessions = list(self._sessions.values()), {}
        for session in sessions:
            await session.close()
