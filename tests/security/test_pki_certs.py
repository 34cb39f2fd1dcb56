"""Cluster CA, serving and client certificates — checked with cryptography and with a real TLS
handshake through Python's ssl module (the same OpenSSL checks kubectl's peers make)."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import ssl
import stat

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from vkube.pki import (
    CertificateAuthority, CertificateError, authenticate_client_certificate, certificate_sans,
    needs_renewal, write_private, write_public)

NOW = dt.datetime(2026, 6, 1, tzinfo=dt.timezone.utc)


@pytest.fixture(scope="module")
def ca() -> CertificateAuthority:
    return CertificateAuthority.create("vkube-ca-a")


def test_ca_shape_and_reload(ca):
    cert = ca.cert
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True
    assert cert.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign
    again = CertificateAuthority(ca.cert_pem, ca.key_pem)
    assert again.cert == ca.cert
    other = CertificateAuthority.create("vkube-ca-b")
    with pytest.raises(CertificateError, match="does not match"):
        CertificateAuthority(ca.cert_pem, other.key_pem)


def test_serving_certificate_covers_every_name(ca):
    names = ["localhost", "127.0.0.1", "::1", "a.vkube.svc", "a.vkube.svc.cluster.local", "10.96.0.1", "127.0.0.1"]
    pair = ca.issue_serving(names)
    cert = pair.certificate
    assert certificate_sans(cert) == {"localhost", "127.0.0.1", "::1", "a.vkube.svc",
                                      "a.vkube.svc.cluster.local", "10.96.0.1"}
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {str(ip) for ip in sans.get_values_for_type(x509.IPAddress)} == {"127.0.0.1", "::1", "10.96.0.1"}
    assert ExtendedKeyUsageOID.SERVER_AUTH in cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert cert.not_valid_after_utc <= ca.cert.not_valid_after_utc
    with pytest.raises(CertificateError):
        ca.issue_serving(["", ""])


def test_client_certificate_identity(ca):
    pair = ca.issue_client("alice", ["devs", "system:masters"])
    ident = authenticate_client_certificate(pair.cert_pem, ca)
    assert (ident.user, ident.groups) == ("alice", ("devs", "system:masters"))
    der = pair.certificate.public_bytes(__import__("cryptography.hazmat.primitives.serialization",
                                                   fromlist=["Encoding"]).Encoding.DER)
    assert authenticate_client_certificate(der, ca).user == "alice"


def test_client_certificate_rejections(ca):
    other = CertificateAuthority.create("vkube-ca-a")  # same name, different key: a forged issuer
    forged = other.issue_client("admin", ["system:masters"])
    with pytest.raises(CertificateError, match="unknown authority"):
        authenticate_client_certificate(forged.cert_pem, ca)
    stranger = CertificateAuthority.create("somebody-else")
    with pytest.raises(CertificateError, match="unknown authority"):
        authenticate_client_certificate(stranger.issue_client("x").cert_pem, ca)
    serving = ca.issue_serving(["localhost"])
    with pytest.raises(CertificateError, match="incompatible key usage"):
        authenticate_client_certificate(serving.cert_pem, ca)
    old = ca.issue_client("bob", now=NOW - dt.timedelta(days=400))
    with pytest.raises(CertificateError, match="expired or is not yet valid"):
        authenticate_client_certificate(old.cert_pem, ca)
    with pytest.raises(CertificateError, match="not a certificate"):
        authenticate_client_certificate(b"garbage", ca)
    with pytest.raises(CertificateError):
        ca.issue_client("")


def test_needs_renewal(ca):
    pair = ca.issue_serving(["localhost", "127.0.0.1"], validity=dt.timedelta(days=90), now=NOW)
    cert = pair.certificate
    assert needs_renewal(cert, names=["localhost"], ca=ca, now=NOW + dt.timedelta(days=10)) is None
    assert needs_renewal(cert, now=NOW + dt.timedelta(days=70)).startswith("expires ")
    assert needs_renewal(cert, now=NOW + dt.timedelta(days=91)) == "expired"
    assert needs_renewal(cert, names=["localhost", "10.0.0.5"], now=NOW + dt.timedelta(days=1)) == \
        "missing SANs 10.0.0.5"
    stranger = CertificateAuthority.create("x")
    assert needs_renewal(cert, ca=stranger, now=NOW + dt.timedelta(days=1)) == "issued by another CA"


def test_key_files_are_private(tmp_path, ca):
    write_private(tmp_path / "pki" / "ca.key", ca.key_pem)
    write_public(tmp_path / "pki" / "ca.crt", ca.cert_pem)
    assert stat.S_IMODE(os.stat(tmp_path / "pki" / "ca.key").st_mode) == 0o600
    assert (tmp_path / "pki" / "ca.crt").read_bytes() == ca.cert_pem
    assert not [p for p in (tmp_path / "pki").iterdir() if p.name.startswith(".")]


def test_rsa_keys_work_too():
    ca = CertificateAuthority.create("rsa-ca", key_type="rsa")
    pair = ca.issue_client("carol", key_type="rsa")
    assert authenticate_client_certificate(pair.cert_pem, ca).user == "carol"
    with pytest.raises(ValueError):
        CertificateAuthority.create("x", key_type="dsa")


async def test_mutual_tls_handshake_with_ssl_module(ca, tmp_path):
    """A server with our serving cert requiring client certs from our CA: our client cert gets in,
    the peer certificate reads back as the user; a client cert of another CA is refused."""
    serving = ca.issue_serving(["localhost", "127.0.0.1"])
    for name, data in (("srv.crt", serving.cert_pem), ("srv.key", serving.key_pem), ("ca.crt", ca.cert_pem)):
        (tmp_path / name).write_bytes(data)
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(tmp_path / "srv.crt", tmp_path / "srv.key")
    server_ctx.load_verify_locations(tmp_path / "ca.crt")
    server_ctx.verify_mode = ssl.CERT_OPTIONAL
    seen: list[object] = []

    async def handle(reader, writer):
        der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        seen.append(authenticate_client_certificate(der, ca) if der else None)
        writer.write(b"ok")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=server_ctx)
    port = server.sockets[0].getsockname()[1]

    async def connect(cert_pem: bytes, key_pem: bytes, tag: str) -> bytes:
        (tmp_path / f"{tag}.crt").write_bytes(cert_pem)
        (tmp_path / f"{tag}.key").write_bytes(key_pem)
        ctx = ssl.create_default_context(cafile=str(tmp_path / "ca.crt"))
        ctx.load_cert_chain(tmp_path / f"{tag}.crt", tmp_path / f"{tag}.key")
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx, server_hostname="127.0.0.1")
        data = await reader.read()
        writer.close()
        return data

    try:
        alice = ca.issue_client("alice", ["devs"])
        assert await connect(alice.cert_pem, alice.key_pem, "alice") == b"ok"
        assert seen[-1].user == "alice" and seen[-1].groups == ("devs",)
        foreign = CertificateAuthority.create("other").issue_client("admin", ["system:masters"])
        try:  # with TLS 1.3 the client learns of the refusal on its first read
            data = await connect(foreign.cert_pem, foreign.key_pem, "foreign")
        except (ssl.SSLError, ConnectionError, asyncio.IncompleteReadError):
            data = b""
        assert data == b"" and len(seen) == 1  # refused in the handshake: the handler never ran
        # the client verifies the server too: a server name not in the SANs fails
        ctx = ssl.create_default_context(cafile=str(tmp_path / "ca.crt"))
        with pytest.raises(ssl.SSLCertVerificationError):
            await asyncio.open_connection("127.0.0.1", port, ssl=ctx, server_hostname="not-listed.example")
    finally:
        server.close()
        await server.wait_closed()


def test_names_past_x509s_64_characters(tmp_path):
    """A cluster name of NAME_MAX (52) in a CA's label (``vkube-front-proxy-ca-NAME`` is 73)
    is cut to 64 with a hash keeping names apart; an identity too long for a CN is refused
    with a message, never cut (another user would be authenticated)."""
    from vkube.pki.cluster import ClusterPKI

    names = ["x" * 52, "x" * 51 + "y"]
    labels = set()
    for name in names:
        pki = ClusterPKI(tmp_path / name, name=name)
        cn = pki.front_proxy_ca.cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
        assert len(cn[0].value) == 64 and cn[0].value.startswith("vkube-front-proxy-ca-xxx")
        labels.add(cn[0].value)
        assert pki.front_proxy_client()  # it still issues
    assert len(labels) == 2
    long_user = "system:serviceaccount:vkube-" + "x" * 52 + ":vkube-" + "x" * 52
    with pytest.raises(CertificateError, match="at most 64 characters"):
        CertificateAuthority.create("ca").issue_client(long_user)
    with pytest.raises(CertificateError, match="group holds at most 64"):
        CertificateAuthority.create("ca").issue_client("u", ["g" * 65])
    assert CertificateAuthority.create("ca").issue_client("u" * 64, ["g" * 64])
