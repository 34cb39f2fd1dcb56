"""TLS contexts and serving-certificate renewal without dropping open connections."""

from __future__ import annotations

import asyncio
import datetime as dt
import ssl

import pytest
from cryptography import x509

from vkube.pki import CertificateAuthority, authenticate_client_certificate
from vkube.pki.tls import ServingCertificate, client_context


@pytest.fixture(scope="module")
def ca():
    return CertificateAuthority.create("vkube-ca-tls")


async def _serve(ctx: ssl.SSLContext, seen: list):
    async def handle(reader, writer):
        der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        seen.append(der)
        while line := await reader.readline():
            writer.write(line)
            await writer.drain()
        writer.close()
    return await asyncio.start_server(handle, "127.0.0.1", 0, ssl=ctx)


async def _open(port: int, ctx: ssl.SSLContext):
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx, server_hostname="127.0.0.1")
    serial = x509.load_der_x509_certificate(writer.get_extra_info("ssl_object").getpeercert(binary_form=True)).serial_number
    return reader, writer, serial


async def _echo(reader, writer, text: bytes) -> bytes:
    writer.write(text + b"\n")
    await writer.drain()
    return (await reader.readline()).strip()


async def test_renewal_reloads_without_dropping_clients(ca, tmp_path):
    serving = ServingCertificate(ca, tmp_path)
    assert serving.ensure(["localhost", "127.0.0.1"]) == "missing"
    assert serving.ensure(["localhost", "127.0.0.1"]) is None  # fresh and complete: kept
    assert oct((tmp_path / "apiserver.key").stat().st_mode & 0o777) == "0o600"
    seen: list = []
    server = await _serve(serving.context, seen)
    port = server.sockets[0].getsockname()[1]
    client = client_context(ca.cert_pem)
    try:
        r1, w1, serial1 = await _open(port, client)
        assert await _echo(r1, w1, b"one") == b"one"
        # a new address appears: the certificate is re-issued and the live context reloaded
        assert serving.ensure(["localhost", "127.0.0.1", "10.0.0.7"]) == "missing SANs 10.0.0.7"
        r2, w2, serial2 = await _open(port, client)
        assert serial2 != serial1
        assert await _echo(r1, w1, b"still") == b"still"  # the old connection was not dropped
        assert await _echo(r2, w2, b"two") == b"two"
        assert seen == [None, None]  # no client certificates were presented
        for w in (w1, w2):
            w.close()
    finally:
        server.close()
        await server.wait_closed()


async def test_client_certificates_reach_the_server(ca, tmp_path):
    serving = ServingCertificate(ca, tmp_path, name="kubelet", require_client_cert=True)
    serving.ensure(["127.0.0.1"])
    seen: list = []
    server = await _serve(serving.context, seen)
    port = server.sockets[0].getsockname()[1]
    try:
        api = ca.issue_client("kube-apiserver-kubelet-client", ["system:masters"])
        r, w, _ = await _open(port, client_context(ca.cert_pem, api))
        assert await _echo(r, w, b"hi") == b"hi"
        assert authenticate_client_certificate(seen[0], ca).user == "kube-apiserver-kubelet-client"
        w.close()
        # without a client certificate the kubelet endpoint refuses the handshake
        try:
            r, w, _ = await _open(port, client_context(ca.cert_pem))
            refused = await _echo(r, w, b"x") == b""
        except (ssl.SSLError, ConnectionError, asyncio.IncompleteReadError):
            refused = True
        assert refused and len(seen) == 1
    finally:
        server.close()
        await server.wait_closed()


async def test_client_refuses_server_of_another_ca(ca, tmp_path):
    other = CertificateAuthority.create("other")
    serving = ServingCertificate(other, tmp_path)
    serving.ensure(["127.0.0.1"])
    server = await _serve(serving.context, [])
    port = server.sockets[0].getsockname()[1]
    try:
        with pytest.raises(ssl.SSLCertVerificationError):
            await _open(port, client_context(ca.cert_pem))
    finally:
        server.close()
        await server.wait_closed()


def test_expiring_certificate_is_renewed(ca, tmp_path):
    serving = ServingCertificate(ca, tmp_path)
    old = ca.issue_serving(["localhost"], validity=dt.timedelta(days=30),
                           now=dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=25))
    (tmp_path / "apiserver.crt").write_bytes(old.cert_pem)
    (tmp_path / "apiserver.key").write_bytes(old.key_pem)
    assert serving.ensure(["localhost"]).startswith("expires ")
    assert (tmp_path / "apiserver.crt").read_bytes() != old.cert_pem
