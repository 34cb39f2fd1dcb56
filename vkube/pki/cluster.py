"""All key material of one cluster in one place: its CA, its service-account signing key, and the
client certificates of its components and admin.

Why one object: every credential a cluster hands out must come from *its own* CA and key, so
that credentials of one cluster are worthless on another; the API server, the kubeconfig
writers and the in-process components (controllers, scheduler, kubelets, syncer) all draw from
the same :class:`ClusterPKI`. With a directory the CA and signing key are created once and kept
(``ca.crt``, ``ca.key`` 0600, ``sa.key`` 0600); without one they live in memory only.
"""

from __future__ import annotations

import base64
import ssl
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vkube.pki.certs import (
    CertificateAuthority, CertificateError, KeyPair, authenticate_client_certificate, write_private,
    write_public)
from vkube.pki.tls import client_context, server_context
from vkube.pki.tokens import SigningKey

__all__ = ["ClusterPKI", "Identity", "ADMIN", "CONTROLLER_MANAGER", "SCHEDULER", "SYNCER",
           "APISERVER_KUBELET_CLIENT", "APISERVER", "DNS", "NETWORK", "LEADER_ELECTION", "node_identity", "embedded_kubeconfig", "KubeletTLS",
           "FRONT_PROXY_CA", "FRONT_PROXY_CLIENT"]

Identity = tuple[str, tuple[str, ...]]
#: kubeadm's admin.conf identity: in system:masters, allowed everything.
ADMIN: Identity = ("kubernetes-admin", ("system:masters",))
CONTROLLER_MANAGER: Identity = ("system:kube-controller-manager", ())
SCHEDULER: Identity = ("system:kube-scheduler", ())
#: The syncer inside its virtual cluster (upstream vcluster runs it as cluster-admin: it reads
#: and writes every synced kind in every namespace).
SYNCER: Identity = ("system:vkube-syncer", ("system:masters",))
#: The API server's loopback client (kube-apiserver's ``system:apiserver`` in system:masters): it
#: maintains ``default/kubernetes`` and the cluster DNS Service.
APISERVER: Identity = ("system:apiserver", ("system:masters",))
#: The cluster DNS (CoreDNS' ``system:coredns`` rules: read services, endpoints, pods, namespaces).
DNS: Identity = ("system:vkube-dns", ())
#: The embedded host's pod network (reads NetworkPolicies, Services, Endpoints, Namespaces).
NETWORK: Identity = ("system:vkube-network", ())
#: The replica lease of an HA cluster (``kube-system/vkube-leader`` only).
LEADER_ELECTION: Identity = ("system:vkube-leader-election", ())
#: The API server's own client certificate for the kubelet hop (logs, exec, attach, port-forward).
APISERVER_KUBELET_CLIENT: Identity = ("kube-apiserver-kubelet-client", ("system:masters",))


#: file stem of the front-proxy CA in the pki directory, and the proxy's client name (kubeadm's)
FRONT_PROXY_CA = "front-proxy-ca"
FRONT_PROXY_CLIENT = "front-proxy-client"


def node_identity(node: str) -> Identity:
    """A kubelet's identity (the Node authorizer's ``system:node:NAME`` in ``system:nodes``)."""
    return (f"system:node:{node}", ("system:nodes",))


class ClusterPKI:
    """The CA and signing key of one cluster, and the certificates issued from them."""

    def __init__(self, directory: str | Path | None = None, *, name: str = "vkube",
                 key_type: str = "ecdsa", signing_alg: str = "ES256") -> None:
        self.directory = Path(directory) if directory is not None else None
        self.name = name
        self.key_type = key_type
        self.ca = self._load_or_create_ca()
        self.signing_key = self._load_or_create_signing_key(signing_alg)
        self._issued: dict[Identity, KeyPair] = {}
        self._lock = threading.Lock()  # clients may be built from worker threads (tests, CLI)
        self._front_proxy: CertificateAuthority | None = None
        self._front_proxy_client: KeyPair | None = None

    def _load_or_create_ca(self, stem: str = "ca", common_name: str = "") -> CertificateAuthority:
        if self.directory is not None:
            crt, key = self.directory / f"{stem}.crt", self.directory / f"{stem}.key"
            if crt.exists() and key.exists():
                return CertificateAuthority(crt.read_bytes(), key.read_bytes())
        ca = CertificateAuthority.create(common_name or f"vkube-ca-{self.name}", key_type=self.key_type)
        if self.directory is not None:
            write_private(self.directory / f"{stem}.key", ca.key_pem)
            write_public(self.directory / f"{stem}.crt", ca.cert_pem)
        return ca

    @property
    def front_proxy_ca(self) -> CertificateAuthority:
        """kube-apiserver's ``--requestheader-client-ca-file`` (kubeadm's ``front-proxy-ca``):
        a CA of its own, so that the aggregator's proxy certificate, which aggregated servers
        trust to assert any user in ``X-Remote-User``, is no credential on this API server.
        Created on first use; a data dir from before it existed gets one then."""
        with self._lock:
            if self._front_proxy is None:
                self._front_proxy = self._load_or_create_ca(FRONT_PROXY_CA, f"vkube-front-proxy-ca-{self.name}")
            return self._front_proxy

    def front_proxy_client(self) -> KeyPair:
        """The aggregator proxy's client certificate (``front-proxy-client``, kubeadm's name)."""
        ca = self.front_proxy_ca
        with self._lock:
            if self._front_proxy_client is None:
                self._front_proxy_client = ca.issue_client(FRONT_PROXY_CLIENT, (), key_type=self.key_type)
            return self._front_proxy_client

    def _load_or_create_signing_key(self, alg: str) -> SigningKey:
        path = self.directory / "sa.key" if self.directory is not None else None
        if path is not None and path.exists():
            return SigningKey.from_pem(path.read_bytes())
        key = SigningKey.generate(alg)
        if path is not None:
            write_private(path, key.private_pem())
        return key

    @property
    def ca_pem(self) -> bytes:
        return self.ca.cert_pem

    def client_pair(self, user: str, groups: Sequence[str] = ()) -> KeyPair:
        """A client certificate for ``user`` in ``groups``; issued once per process and reused."""
        ident = (user, tuple(groups))
        with self._lock:
            pair = self._issued.get(ident)
            if pair is None:
                pair = self.ca.issue_client(user, ident[1], key_type=self.key_type)
                self._issued[ident] = pair
            return pair

    def client_ssl(self, user: str, groups: Sequence[str] = ()) -> ssl.SSLContext:
        """A TLS context that verifies this cluster's servers and presents ``user``'s certificate."""
        return client_context(self.ca_pem, self.client_pair(user, groups))

    def kubeconfig(self, server: str, *, context: str, user: str = ADMIN[0],
                   groups: Sequence[str] = ADMIN[1], namespace: str | None = None) -> dict[str, Any]:
        """A self-contained kubeconfig (embedded CA, client certificate and key) for ``user``."""
        return embedded_kubeconfig(server, context=context, ca_pem=self.ca_pem,
                                   client=self.client_pair(user, groups), namespace=namespace)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def embedded_kubeconfig(server: str, *, context: str, ca_pem: bytes, client: KeyPair | None = None,
                        token: str | None = None, namespace: str | None = None) -> dict[str, Any]:
    """One context whose trust and credentials are all *embedded*: one file works anywhere, and
    kopf (which reads only ``*-data``) logs in with it. The server is always verified."""
    user: dict[str, Any] = {}
    if client is not None:
        user["client-certificate-data"] = _b64(client.cert_pem)
        user["client-key-data"] = _b64(client.key_pem)
    if token:
        user["token"] = token
    ctx: dict[str, Any] = {"cluster": context, "user": context}
    if namespace:
        ctx["namespace"] = namespace
    return {"apiVersion": "v1", "kind": "Config", "preferences": {},
            "clusters": [{"name": context, "cluster": {"server": server,
                                                       "certificate-authority-data": _b64(ca_pem)}}],
            "users": [{"name": context, "user": user}],
            "contexts": [{"name": context, "context": ctx}],
            "current-context": context}


class KubeletTLS:
    """TLS for a kubelet endpoint (a simulated kubelet's server, the syncer's kubelet proxy):
    a serving certificate from the cluster CA, and only the API server's kubelet-client
    certificate accepted — the handshake demands a certificate of this CA, and
    :meth:`allowed` checks it names the API server (kubelet authn+authz in one rule)."""

    def __init__(self, pki: ClusterPKI, names: Sequence[str] = ("127.0.0.1", "localhost")) -> None:
        self.ca = pki.ca
        pair = pki.ca.issue_serving(list(names), common_name="kubelet", key_type=pki.key_type)
        self.context = server_context(pair, pki.ca_pem, require_client_cert=True)

    def allowed(self, ssl_object: Any) -> bool:
        """Whether the peer of this TLS connection is the API server of this cluster."""
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        if not der:
            return False
        try:
            ident = authenticate_client_certificate(der, self.ca)
        except CertificateError:
            return False
        return ident.user == APISERVER_KUBELET_CLIENT[0]

    def middleware(self) -> Any:
        """An aiohttp middleware answering 401 to every peer but the API server."""
        from aiohttp import web

        @web.middleware
        async def only_apiserver(request: Any, handler: Any) -> Any:
            transport = request.transport
            if transport is None or not self.allowed(transport.get_extra_info("ssl_object")):
                return web.Response(status=401, text="Unauthorized")
            return await handler(request)

        return only_apiserver
