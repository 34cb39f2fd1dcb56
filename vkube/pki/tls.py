"""TLS contexts for vkube's servers and clients, and a serving certificate that renews itself.

- :func:`server_context`: TLS 1.2+, our serving certificate, the cluster CA as the only client
  CA; client certificates are *optional* at the TLS layer (as kube-apiserver: anonymous requests
  reach ``/healthz`` and get 401 elsewhere; the x509 authenticator reads the peer certificate);
  ``require_client_cert`` for endpoints only the API server may call (kubelets);
- :func:`client_context`: verifies the server against the cluster CA (never skips
  verification), optionally presenting a client certificate;
- :class:`ServingCertificate`: keeps ``<dir>/<name>.crt``/``.key`` issued by the cluster CA for
  every wanted name; :meth:`ServingCertificate.ensure` re-issues when :func:`needs_renewal` says so
  and reloads the live context in place, so new handshakes get the new certificate while open
  connections carry on undisturbed.
"""

from __future__ import annotations

import ssl
import tempfile
from collections.abc import Sequence
from pathlib import Path

from vkube.pki.certs import (
    CertificateAuthority, KeyPair, load_certificate, needs_renewal, write_private, write_public)

__all__ = ["server_context", "client_context", "ServingCertificate"]


def _load_chain(ctx: ssl.SSLContext, pair: KeyPair) -> None:
    """``load_cert_chain`` wants files: write them to a private temp dir for the call only."""
    with tempfile.TemporaryDirectory(prefix="vkube-tls-") as tmp:
        cert, key = Path(tmp) / "tls.crt", Path(tmp) / "tls.key"
        write_public(cert, pair.cert_pem)
        write_private(key, pair.key_pem)
        ctx.load_cert_chain(cert, key)


def server_context(pair: KeyPair, ca_pem: bytes, *, require_client_cert: bool = False) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    _load_chain(ctx, pair)
    ctx.load_verify_locations(cadata=ca_pem.decode())
    ctx.verify_mode = ssl.CERT_REQUIRED if require_client_cert else ssl.CERT_OPTIONAL
    return ctx


def client_context(ca_pem: bytes, client: KeyPair | None = None) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # check_hostname and CERT_REQUIRED by default
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_verify_locations(cadata=ca_pem.decode())
    if client is not None:
        _load_chain(ctx, client)
    return ctx


class ServingCertificate:
    """A server's certificate kept in ``directory`` and renewed before it expires."""

    def __init__(self, ca: CertificateAuthority, directory: str | Path, *, name: str = "apiserver",
                 common_name: str = "kube-apiserver", require_client_cert: bool = False,
                 client_ca_pem: bytes | None = None) -> None:
        self.ca = ca
        #: the CAs whose client certificates the TLS layer accepts (default: ``ca``); an API
        #: server adds its front-proxy CA (``--requestheader-client-ca-file``)
        self.client_ca_pem = client_ca_pem
        self.cert_path = Path(directory) / f"{name}.crt"
        self.key_path = Path(directory) / f"{name}.key"
        self.common_name = common_name
        self.require_client_cert = require_client_cert
        self.context: ssl.SSLContext | None = None

    def _current(self) -> KeyPair | None:
        if not (self.cert_path.exists() and self.key_path.exists()):
            return None
        return KeyPair(self.cert_path.read_bytes(), self.key_path.read_bytes())

    def ensure(self, names: Sequence[str]) -> str | None:
        """Make the certificate cover ``names`` and be fresh; returns why it was re-issued (or None).

        The first call builds :attr:`context`; later calls reload it in place when renewed.
        """
        pair = self._current()
        reason = "missing" if pair is None else needs_renewal(load_certificate(pair.cert_pem),
                                                              names=names, ca=self.ca)
        if reason is not None:
            pair = self.ca.issue_serving(names, common_name=self.common_name)
            write_private(self.key_path, pair.key_pem)
            write_public(self.cert_path, pair.cert_pem)
        assert pair is not None
        if self.context is None:
            self.context = server_context(pair, self.client_ca_pem or self.ca.cert_pem,
                                          require_client_cert=self.require_client_cert)
        elif reason is not None:
            self.context.load_cert_chain(self.cert_path, self.key_path)
        return reason
