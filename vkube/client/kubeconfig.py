"""Kubeconfig files → a ready ``Client`` (server, TLS trust, client certificate or token).

Why here: the syncer talks to the host through a user's kubeconfig and the CLI writes
kubeconfigs for virtual clusters; both need the same reading of the format kubectl uses.
"""

from __future__ import annotations

import base64
import os
import ssl
import tempfile
from dataclasses import dataclass
from typing import Any

from vkube.api import yamlio

from vkube.client.client import Client


@dataclass(frozen=True, slots=True)
class KubeconfigContext:
    """The parts of one kubeconfig context a client needs, already resolved."""

    server: str
    namespace: str = "default"
    ca_data: bytes | None = None
    insecure: bool = False
    cert_data: bytes | None = None
    key_data: bytes | None = None
    token: str | None = None
    tls_server_name: str | None = None


def _named(items: list[dict[str, Any]] | None, name: str, what: str) -> dict[str, Any]:
    for it in items or []:
        if it.get("name") == name:
            return it.get(what) or {}
    raise ValueError(f"kubeconfig: {what} {name!r} not found")


def _read(base_dir: str, data: str | None, path: str | None) -> bytes | None:
    """``X-data`` (base64) wins over ``X`` (a path, relative to the kubeconfig's folder)."""
    if data:
        return base64.b64decode(data)
    if path:
        full = path if os.path.isabs(path) else os.path.join(base_dir, path)
        with open(full, "rb") as f:
            return f.read()
    return None


def parse_kubeconfig(doc: dict[str, Any], context: str | None = None, *,
                     base_dir: str = ".") -> KubeconfigContext:
    """Resolve a (current or named) context of a parsed kubeconfig document."""
    ctx_name = context or doc.get("current-context")
    if not ctx_name:
        raise ValueError("kubeconfig: no context given and no current-context")
    ctx = _named(doc.get("contexts"), ctx_name, "context")
    cluster = _named(doc.get("clusters"), ctx["cluster"], "cluster")
    user = _named(doc.get("users"), ctx["user"], "user") if ctx.get("user") else {}
    token = user.get("token")
    if not token and user.get("tokenFile"):
        tf = _read(base_dir, None, user["tokenFile"])
        token = tf.decode().strip() if tf else None
    return KubeconfigContext(
        server=cluster["server"],
        namespace=ctx.get("namespace") or "default",
        ca_data=_read(base_dir, cluster.get("certificate-authority-data"),
                      cluster.get("certificate-authority")),
        insecure=bool(cluster.get("insecure-skip-tls-verify")),
        cert_data=_read(base_dir, user.get("client-certificate-data"),
                        user.get("client-certificate")),
        key_data=_read(base_dir, user.get("client-key-data"), user.get("client-key")),
        token=token,
        tls_server_name=cluster.get("tls-server-name"),
    )


def ssl_context(kc: KubeconfigContext) -> ssl.SSLContext | bool | None:
    """An SSLContext for https servers (None for plain http): trust, verification, client cert."""
    if not kc.server.startswith("https"):
        return None
    if kc.insecure:  # no verification, so no trust store to load (~55 ms of CPU)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    elif kc.ca_data:
        ctx = ssl.create_default_context(cadata=kc.ca_data.decode())
    else:
        ctx = ssl.create_default_context()
    if kc.cert_data and kc.key_data:
        # load_cert_chain only reads files: write both to a private temp folder, then remove.
        with tempfile.TemporaryDirectory(prefix="vkube-kc-") as d:
            cert, key = os.path.join(d, "tls.crt"), os.path.join(d, "tls.key")
            for p, data in ((cert, kc.cert_data), (key, kc.key_data)):
                fd = os.open(p, os.O_WRONLY | os.O_CREAT, 0o600)
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
            ctx.load_cert_chain(cert, key)
    return ctx


def client_from_kubeconfig(path: str, context: str | None = None, **kw: Any) -> Client:
    with open(path, "rb") as f:
        doc = yamlio.load(f) or {}
    kc = parse_kubeconfig(doc, context, base_dir=os.path.dirname(os.path.abspath(path)))
    client = Client(kc.server, token=kc.token, ssl=ssl_context(kc),
                    server_hostname=kc.tls_server_name, **kw)
    client.namespace = kc.namespace
    return client
