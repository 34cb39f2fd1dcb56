"""The in-cluster API address of each cluster in shared mode: a loopback port of its own.

Why a port and not the shared ``/clusters/NAME`` URL: in-cluster clients (client-go's
``rest.InClusterConfig``, the Python client's ``load_incluster_config``, kopf, kubectl in a
pod) build their URL from ``KUBERNETES_SERVICE_HOST``/``PORT`` alone — no path — and verify
the server against the pod's ``ca.crt`` without a server name (the host is an IP, so no SNI is
sent). Only the address they connect to can choose the cluster. So each cluster that syncs
pods gets one listening socket on the shared server's address, served by the shared server's
one aiohttp runner with that cluster's own TLS context (its CA, its serving certificate):
every request on it goes to that cluster, whatever its path or server name, and is
authenticated by that cluster alone — a token or client certificate of another cluster is
refused there as on its own URL. The port is kept in ``DATA_DIR/incluster-port`` so pods made
before a restart of the shared process still reach their API."""

from __future__ import annotations

import logging
import socket
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    import asyncio

    from vkube.cluster.listener import ConnectionLimiter

log = logging.getLogger(__name__)

PORT_FILE = "incluster-port"


@dataclass
class _Listener:
    name: str
    sock: socket.socket
    site: web.SockSite | None = field(default=None, repr=False)
    #: the accept loop when the shared server's connection limits serve it
    server: asyncio.Task[None] | None = field(default=None, repr=False)


class PodAPIListeners:
    """``port = listeners.bind(name, data_dir)`` before the cluster starts (its pods are told
    the port); ``await listeners.serve(runner, name, ctx)`` once its TLS context exists;
    ``listeners.cluster_of(request)`` routes; ``await listeners.close(name)``."""

    def __init__(self, address: str) -> None:
        self.address = "127.0.0.1" if address in ("", "0.0.0.0") else address
        self._by_name: dict[str, _Listener] = {}
        #: local port → cluster name
        self._by_port: dict[int, str] = {}

    def port_of(self, name: str) -> int | None:
        entry = self._by_name.get(name)
        return entry.sock.getsockname()[1] if entry is not None else None

    def bind(self, name: str, data_dir: Path | None) -> int:
        """The cluster's port, bound now (the one it had before when still free)."""
        port = self.port_of(name)
        if port is not None:
            return port
        wanted = _read_port(data_dir)
        try:
            sock = _listen(self.address, wanted)
        except OSError as exc:
            if not wanted:
                raise
            log.warning("shared: in-cluster port %d of %s is taken (%s); its pods get a new one",
                        wanted, name, exc)
            sock = _listen(self.address, 0)
        port = sock.getsockname()[1]
        self._by_name[name] = _Listener(name, sock)
        self._by_port[port] = name
        if data_dir is not None and port != wanted:
            data_dir.mkdir(parents=True, exist_ok=True)
            tmp = data_dir / (PORT_FILE + ".tmp")
            tmp.write_text(f"{port}\n")
            tmp.replace(data_dir / PORT_FILE)
        return port

    async def serve(self, runner: web.AppRunner, name: str, ctx: ssl.SSLContext, *,
                    limiter: ConnectionLimiter | None = None) -> None:
        """Start answering on the cluster's port (once; the context is renewed in place);
        with ``limiter``, its connections count as the cluster's (vkube.cluster.listener)."""
        entry = self._by_name.get(name)
        if entry is None or entry.site is not None or entry.server is not None:
            return
        if limiter is not None:
            entry.server = await limiter.serve(entry.sock, ctx, cluster=name)
            return
        entry.site = web.SockSite(runner, entry.sock, ssl_context=ctx)
        await entry.site.start()

    def cluster_of(self, request: web.Request) -> str | None:
        """The cluster whose in-cluster port this request came in on (None: the shared port)."""
        transport = request.transport
        sockname = transport.get_extra_info("sockname") if transport is not None else None
        if not sockname:
            return None
        return self._by_port.get(sockname[1])

    async def close(self, name: str) -> None:
        entry = self._by_name.pop(name, None)
        if entry is None:
            return
        self._by_port.pop(entry.sock.getsockname()[1], None)
        if entry.site is not None:
            await entry.site.stop()
        if entry.server is not None:
            entry.server.cancel()  # its connections end with the cluster's requests
        entry.sock.close()

    async def close_all(self) -> None:
        for name in list(self._by_name):
            await self.close(name)


def _read_port(data_dir: Path | None) -> int:
    if data_dir is None:
        return 0
    try:
        return int((data_dir / PORT_FILE).read_text().strip())
    except (OSError, ValueError):
        return 0


def _listen(address: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((address, port))
        sock.listen(128)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock
