"""A cluster DNS server for one virtual cluster: UDP and TCP on one address, answers from
informers over the virtual cluster's Services, EndpointSlices and Pods, forwards every name
outside the cluster zone to an upstream resolver.

Wire format is dnspython's (a well-kept library), in :mod:`vkube.dns.wire`, imported on the
first query; the records are :mod:`vkube.dns.records`.
The zone is rebuilt lazily: a change marks it stale and the next query rebuilds it, so a burst
of endpoint updates costs one rebuild and an answer follows a change as soon as the informer
has seen it (milliseconds after the write)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
from collections.abc import Callable

from vkube.client.client import Client
from vkube.client.resources import ENDPOINTSLICES, PODS, SERVICES, Resource
from vkube.controllers.informer import Informer
from vkube.dns.records import NOERROR, NXDOMAIN, Zone

log = logging.getLogger(__name__)


class ClusterDNS:
    """Serves one cluster's DNS on ``host:port`` (UDP and TCP; port 0 picks a free one, the
    same for both). ``upstream`` is ``(ip, port)`` of the resolver for outside names, or None
    to answer REFUSED for them."""

    def __init__(self, client: Client, *, host: str = "127.0.0.1", port: int = 0,
                 domain: str = "cluster.local", upstream: tuple[str, int] | None = None,
                 upstream_timeout: float = 2.0,
                 informer_source: Callable[[Resource], Informer] | None = None) -> None:
        """``informer_source``: where the Service, EndpointSlice and Pod caches come from when
        another component of the cluster already keeps them (the controller manager's, which
        runs them): a cluster then decodes each pod change once, not once more for its DNS
        (a rollout's pod updates are most of what its informers decode)."""
        self.client = client
        self.host = host
        self.port = port
        self.domain = domain
        self.upstream = upstream
        self.upstream_timeout = upstream_timeout
        kinds = (SERVICES, ENDPOINTSLICES, PODS)
        self.informers = {r.plural: (informer_source or (lambda r: Informer(client, r)))(r) for r in kinds}
        self._borrowed = informer_source is not None  # their owner runs them
        self._zone: Zone | None = None
        self._empty = Zone(domain)  # answers "is this name ours?" before the first list
        self._ready = asyncio.Event()
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.base_events.Server | None = None
        #: handlers of open TCP connections: closing the listener does not end them
        self._tcp_clients: set[asyncio.Task[None]] = set()
        for inf in self.informers.values():
            inf.add_handler(self._invalidate)

    # -- state -------------------------------------------------------------------------------

    def _invalidate(self, *_: object) -> None:
        self._zone = None

    def zone(self) -> Zone:
        zone = self._zone
        if zone is None:
            zone = self._zone = Zone.build(
                services=self.informers["services"].list(),
                slices=self.informers["endpointslices"].list(),
                pods=self.informers["pods"].list(), domain=self.domain)
        return zone

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    # -- serving -----------------------------------------------------------------------------

    async def run(self, started: Callable[[], None] | None = None) -> None:
        """Serve until cancelled. Binds first (so ``address`` is known), then waits for the
        informers' first lists before answering cluster names (queries wait meanwhile)."""
        loop = asyncio.get_running_loop()
        self._tcp = await asyncio.start_server(self._tcp_client, self.host, self.port)
        self.port = self._tcp.sockets[0].getsockname()[1]
        self._udp, _ = await loop.create_datagram_endpoint(
            lambda: _UDP(self), local_addr=(self.host, self.port))
        if started is not None:
            started()
        tasks = [] if self._borrowed else [asyncio.create_task(inf.run(), name=f"dns-informer-{p}")
                                           for p, inf in self.informers.items()]
        try:
            await asyncio.gather(*(inf.wait_synced() for inf in self.informers.values()))
            self._ready.set()
            if tasks:
                await asyncio.gather(*tasks)
            else:  # the caches run elsewhere: serve until cancelled
                await asyncio.get_running_loop().create_future()
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._udp.close()
            self._tcp.close()
            clients = list(self._tcp_clients)
            for t in clients:  # idle keep-alive clients (or a stray one sending junk) end too
                t.cancel()
            await asyncio.gather(*clients, return_exceptions=True)
            with contextlib.suppress(Exception):
                await self._tcp.wait_closed()

    async def answer(self, wire: bytes) -> bytes | None:
        """One query's response, in wire format (None for garbage that is not even a header)."""
        from vkube.dns import wire as dnswire  # dnspython, on the first query

        parsed = dnswire.parse_question(wire)
        if not isinstance(parsed, tuple):
            return parsed
        query, qname, qtype = parsed
        zone = self._zone
        if zone is None or not self._ready.is_set():
            if self._empty.in_zone(qname) or qname.endswith(".arpa."):
                await self._ready.wait()
            zone = self.zone()
        result = zone.resolve(qname, qtype)
        if result is not None:
            return dnswire.respond(query, result)
        return await dnswire.forward(query, self.upstream, self.upstream_timeout)

    async def _tcp_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tcp_clients.add(task)
            task.add_done_callback(self._tcp_clients.discard)
        try:
            while True:
                head = await reader.readexactly(2)
                wire = await reader.readexactly(struct.unpack("!H", head)[0])
                resp = await self.answer(wire)
                if resp is None:
                    break
                writer.write(struct.pack("!H", len(resp)) + resp)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


class _UDP(asyncio.DatagramProtocol):
    def __init__(self, server: ClusterDNS) -> None:
        self.server = server
        self.transport: asyncio.DatagramTransport | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        task = asyncio.create_task(self._reply(data, addr))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _reply(self, data: bytes, addr: tuple[str, int]) -> None:
        try:
            resp = await self.server.answer(data)
        except Exception:  # a bad query must not take the server down
            log.exception("dns: failed to answer a query from %s", addr)
            return
        if resp is None or self.transport is None:
            return
        from vkube.dns import wire as dnswire

        resp = dnswire.fit_udp(data, resp)
        self.transport.sendto(resp, addr)

    def connection_lost(self, exc: Exception | None) -> None:
        for t in self._tasks:
            t.cancel()


__all__ = ["ClusterDNS", "NOERROR", "NXDOMAIN"]
