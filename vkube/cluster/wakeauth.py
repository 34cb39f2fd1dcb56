"""Who may wake a sleeping shared cluster, or keep an awake one from sleeping.

Only a request that could authenticate to the cluster counts as activity: a bearer token
(checked by the woken server, as every request is), or a client certificate that this
cluster's own CA or front-proxy CA issued. A port scanner, an anonymous health check or a
client of another cluster must neither wake a tenant's cluster nor keep it awake; while it
sleeps such a request is answered without starting anything (401, or 503 on the health paths
anonymous clients may read), as the woken server would have refused it anyway."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from aiohttp import web

log = logging.getLogger(__name__)

#: paths anonymous clients may read on an awake cluster (vkube's anonymous policy)
HEALTH_PATHS = ("/healthz", "/livez", "/readyz", "/version")


class WakeCredentials:
    """Per cluster: the CA certificates whose client certificates count (read once, lazily,
    from the cluster's ``pki`` directory; the files are the cluster's own and never change
    while it lives)."""

    #: verdicts remembered per certificate (a signature check costs ~0.4 ms; a client sends
    #: the same certificate on every request)
    CACHE = 32

    def __init__(self, pki_dir: Path | None) -> None:
        self.pki_dir = pki_dir
        self._cas: list[Any] | None = None
        self._seen: dict[bytes, bool] = {}

    def _authorities(self) -> list[Any]:
        if self._cas is None:
            from cryptography import x509

            cas = []
            for name in ("ca.crt", "front-proxy-ca.crt"):
                path = self.pki_dir / name if self.pki_dir is not None else None
                try:
                    if path is not None and path.exists():
                        cas.append(x509.load_pem_x509_certificate(path.read_bytes()))
                except (OSError, ValueError) as exc:
                    log.warning("wake: cannot read %s: %s", path, exc)
            self._cas = cas
        return self._cas

    def may_authenticate(self, request: web.Request) -> bool:
        """Whether ``request`` carries a credential this cluster could accept."""
        auth = request.headers.get("Authorization", "")
        if auth.lower().startswith("bearer ") and auth[7:].strip():
            return True
        transport = request.transport
        sslobj = transport.get_extra_info("ssl_object") if transport is not None else None
        der = sslobj.getpeercert(binary_form=True) if sslobj is not None else None
        if not der:
            return False
        known = self._seen.get(der)
        if known is None:
            if len(self._seen) >= self.CACHE:
                self._seen.clear()
            known = self._seen[der] = self._issued_here(der)
        return known

    def _issued_here(self, der: bytes) -> bool:
        from cryptography import x509

        from vkube.pki.certs import signed_by

        try:
            cert = x509.load_der_x509_certificate(der)
        except ValueError:
            return False
        return any(signed_by(cert, ca) for ca in self._authorities())


def refusal(path: str, name: str) -> web.StreamResponse:
    """The answer a sleeping cluster gives a request that could not authenticate."""
    from vkube.api import errors
    from vkube.apiserver import http as api_http

    if path.split("?", 1)[0] in HEALTH_PATHS:
        return api_http.status_response(errors.ServiceUnavailable(
            f"virtual cluster {name} is asleep: an authenticated request wakes it", retry_after=5))
    return api_http.status_response(errors.Unauthorized("Unauthorized"))
