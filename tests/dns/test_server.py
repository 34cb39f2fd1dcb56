"""The cluster DNS server against a real control plane, queried with dnspython over UDP and TCP."""

from __future__ import annotations

import asyncio
import time

import dns.asyncquery
import dns.message
import dns.rcode
import dns.rdatatype
import pytest

from tests.conftest import RunningControlPlane
from vkube.client.resources import ENDPOINTSLICES, SERVICES
from vkube.dns.server import ClusterDNS

DEADLINE = 30.0


async def query(dnssrv: ClusterDNS, name: str, rtype: str = "A", *, tcp: bool = False) -> dns.message.Message:
    q = dns.message.make_query(name, rtype)
    fn = dns.asyncquery.tcp if tcp else dns.asyncquery.udp
    return await fn(q, dnssrv.host, port=dnssrv.port, timeout=5)


def addrs(resp: dns.message.Message) -> list[str]:
    return sorted(rd.address for rrset in resp.answer for rd in rrset
                  if rrset.rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA))


async def eventually(fn, want):
    deadline = time.monotonic() + DEADLINE
    while True:
        got = await fn()
        if got == want or time.monotonic() > deadline:
            assert got == want
            return
        await asyncio.sleep(0.05)


class _Upstream(asyncio.DatagramProtocol):
    """A resolver standing in for the outside world, on loopback: example.org → 192.0.2.1."""

    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        q = dns.message.from_wire(data)
        resp = dns.message.make_response(q)
        if q.question[0].name.to_text() == "example.org.":
            resp.answer.append(dns.rrset.from_text("example.org.", 60, "IN", "A", "192.0.2.1"))
        else:
            resp.set_rcode(dns.rcode.NXDOMAIN)
        self.transport.sendto(resp.to_wire(), addr)


@pytest.fixture
async def cluster_dns(control_plane: RunningControlPlane):
    loop = asyncio.get_running_loop()
    up, _ = await loop.create_datagram_endpoint(_Upstream, local_addr=("127.0.0.1", 0))
    client = control_plane.client()
    srv = ClusterDNS(client, upstream=up.get_extra_info("sockname")[:2])
    started = asyncio.Event()
    task = asyncio.create_task(srv.run(started.set))
    await started.wait()
    try:
        yield srv, client
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await client.close()
        up.close()


async def test_service_lifecycle_is_followed(cluster_dns, control_plane):
    srv, client = cluster_dns
    await asyncio.to_thread(control_plane.kubectl, "create", "ns", "demo-nginx")
    await asyncio.to_thread(control_plane.kubectl, "create", "service", "clusterip", "nginx",
                            "-n", "demo-nginx", "--tcp=80:80")
    svc = await client.get(SERVICES, "nginx", namespace="demo-nginx")
    ip = svc["spec"]["clusterIP"]
    name = "nginx.demo-nginx.svc.cluster.local."

    async def a():
        return addrs(await query(srv, name))

    await eventually(a, [ip])
    assert addrs(await query(srv, name, tcp=True)) == [ip]
    resp = await query(srv, name)
    assert resp.flags & dns.flags.AA

    await asyncio.to_thread(control_plane.kubectl, "delete", "service", "nginx", "-n", "demo-nginx")

    async def rcode():
        return (await query(srv, name)).rcode()

    await eventually(rcode, dns.rcode.NXDOMAIN)


async def test_headless_service_follows_its_endpoints(cluster_dns, control_plane):
    srv, client = cluster_dns
    await client.create(SERVICES, {"apiVersion": "v1", "kind": "Service",
                                   "metadata": {"name": "db"},
                                   "spec": {"clusterIP": "None", "selector": {"app": "db"},
                                            "ports": [{"name": "pg", "port": 5432}]}},
                        namespace="default")
    es = {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
          "metadata": {"name": "db-1", "labels": {"kubernetes.io/service-name": "db"}},
          "addressType": "IPv4", "ports": [{"name": "pg", "port": 5432, "protocol": "TCP"}],
          "endpoints": [{"addresses": ["10.244.0.5"], "hostname": "db-0", "conditions": {"ready": True}},
                        {"addresses": ["10.244.0.6"], "conditions": {"ready": False}}]}
    await client.create(ENDPOINTSLICES, es, namespace="default")

    async def a():
        return addrs(await query(srv, "db.default.svc.cluster.local."))

    await eventually(a, ["10.244.0.5"])
    assert addrs(await query(srv, "db-0.db.default.svc.cluster.local.")) == ["10.244.0.5"]
    srv_resp = await query(srv, "_pg._tcp.db.default.svc.cluster.local.", "SRV")
    assert [(rd.port, rd.target.to_text()) for rrset in srv_resp.answer for rd in rrset] == \
        [(5432, "db-0.db.default.svc.cluster.local.")]

    es = await client.get(ENDPOINTSLICES, "db-1", namespace="default")
    es["endpoints"][1]["conditions"]["ready"] = True
    await client.update(ENDPOINTSLICES, es)
    await eventually(a, ["10.244.0.5", "10.244.0.6"])


async def test_unknown_names_and_forwarding(cluster_dns):
    srv, _ = cluster_dns
    assert (await query(srv, "nope.default.svc.cluster.local.")).rcode() == dns.rcode.NXDOMAIN
    assert (await query(srv, "kubernetes.default.svc.cluster.local.", "AAAA")).rcode() in (
        dns.rcode.NOERROR, dns.rcode.NXDOMAIN)
    assert addrs(await query(srv, "example.org.")) == ["192.0.2.1"]
    assert (await query(srv, "unknown.example.")).rcode() == dns.rcode.NXDOMAIN


async def test_garbage_is_answered_or_dropped_never_fatal(cluster_dns):
    srv, _ = cluster_dns
    loop = asyncio.get_running_loop()
    got: asyncio.Queue[bytes] = asyncio.Queue()

    class Proto(asyncio.DatagramProtocol):
        def datagram_received(self, data, addr):
            got.put_nowait(data)

    tr, _ = await loop.create_datagram_endpoint(Proto, remote_addr=(srv.host, srv.port))
    try:
        tr.sendto(b"\x12\x34" + b"\x00" * 10 + b"\xff\xff\xff")  # a header, then junk
        reply = await asyncio.wait_for(got.get(), 5)
        assert reply[:2] == b"\x12\x34"
        assert dns.message.from_wire(reply).rcode() == dns.rcode.FORMERR
        tr.sendto(b"\x01")  # not even a header: dropped
    finally:
        tr.close()
    # still serving
    assert (await query(srv, "nope.default.svc.cluster.local.")).rcode() == dns.rcode.NXDOMAIN


async def test_stopping_ends_open_tcp_connections_too(control_plane: RunningControlPlane):
    """An idle keep-alive client, and a stray one that sent two bytes of junk (an HTTP client
    that reconnected to a port the DNS now holds), do not outlive the server's stop."""
    async with control_plane.client() as client:
        srv = ClusterDNS(client, upstream=None)
        started = asyncio.Event()
        task = asyncio.create_task(srv.run(started.set))
        await started.wait()
        idle = await asyncio.open_connection(srv.host, srv.port)
        junk = await asyncio.open_connection(srv.host, srv.port)
        junk[1].write(b"GET / HTTP/1.1\r\n")  # read as a 0x4745-byte message that never comes
        await junk[1].drain()
        deadline = time.monotonic() + DEADLINE
        while len(srv._tcp_clients) < 2:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.01)
        handlers = set(srv._tcp_clients)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        assert all(t.done() for t in handlers) and not srv._tcp_clients
        for _, writer in (idle, junk):  # the server closed them: EOF
            writer.close()
