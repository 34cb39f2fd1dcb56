"""Serving-certificate renewal in shared mode.

A dedicated cluster renews its serving certificate in place from its own timer
(``ControlPlane._renew``). In shared mode one listener serves every cluster with the TLS
context chosen by SNI (and each cluster's in-cluster port with the same context), and that
context lives for the process: a cluster that wakes builds a new control plane, but
handshakes still use the first context. So one loop for the whole process (no timer per
cluster) keeps each cluster's certificate fresh — awake clusters through their control plane
(``ServingCertificate.ensure`` with every name it serves), sleeping ones from their files,
keeping the names the certificate already has (a request must be able to reach a sleeping
cluster to wake it, so its certificate must not lapse while it sleeps) — and reloads the
context the listener uses in place: new handshakes get the new certificate, open connections
carry on."""

from __future__ import annotations

import logging
import ssl
from pathlib import Path
from typing import Any

from vkube.pki.certs import certificate_sans, load_certificate, needs_renewal

log = logging.getLogger(__name__)


def renew(member: Any) -> str | None:
    """Renew ``member``'s serving certificate if due and reload its listener context;
    returns why it was re-issued (None: nothing to do). ``member``: a shared ``Member``."""
    data = member.config.data_dir
    if data is None or member.ssl is None:
        return None
    pki_dir = Path(data) / "pki"
    vc = member.vc
    serving = vc.control_plane.serving if vc is not None else None
    if serving is not None:
        reason = serving.ensure(vc.control_plane.serving_names())
    else:
        reason = _renew_sleeping(member.name, pki_dir)
    reload(member)
    return reason


def reload(member: Any) -> bool:
    """Load the certificate on disk into the listener's context if it is not the one loaded
    (re-issued by a wake or by ``renew``). Returns whether it reloaded."""
    ctx: ssl.SSLContext | None = member.ssl
    data = member.config.data_dir
    if ctx is None or data is None:
        return False
    pki_dir = Path(data) / "pki"
    try:
        current = (pki_dir / "apiserver.crt").read_bytes()
    except OSError:
        return False
    if current == member.ssl_cert:
        return False
    if member.ssl_cert is not None:  # the first call only records what the context holds
        ctx.load_cert_chain(pki_dir / "apiserver.crt", pki_dir / "apiserver.key")
    member.ssl_cert = current
    return True


def _renew_sleeping(name: str, pki_dir: Path) -> str | None:
    from vkube.pki.cluster import ClusterPKI
    from vkube.pki.tls import ServingCertificate

    try:
        cert = load_certificate((pki_dir / "apiserver.crt").read_bytes())
    except (OSError, ValueError):
        return None
    if needs_renewal(cert) is None:  # cheap: dates only, no key material loaded
        return None
    pki = ClusterPKI(pki_dir, name=name)
    return ServingCertificate(pki.ca, pki_dir).ensure(sorted(certificate_sans(cert)))
