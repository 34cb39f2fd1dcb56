"""Request-header authentication (kube-apiserver's ``--requestheader-*``): a client certificate
from the cluster's front-proxy CA with an allowed CN makes ``X-Remote-User``/``-Group``/
``-Extra-*`` the caller's identity; the same headers from anyone else are ignored, and a
front-proxy certificate with another CN is refused. Driven over HTTPS with the official
``kubernetes`` client (``SelfSubjectReview``, what ``kubectl auth whoami`` posts) and aiohttp."""

from __future__ import annotations

import asyncio
import json
import ssl
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import kubernetes
import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from kubernetes import client as k
from kubernetes.client.rest import ApiException
from multidict import CIMultiDict

from tests.conftest import RunningControlPlane, kubectl
from vkube.apiserver.authn import RequestHeader
from vkube.pki import CertificateAuthority, client_context
from vkube.pki.certs import KeyPair
from vkube.pki.cluster import FRONT_PROXY_CLIENT

HEADERS = {"X-Remote-User": "alice", "X-Remote-Extra-Scopes": "read",
           "X-Remote-Extra-Acme.example%2Fproject": "p1"}


def _official_client(cp: RunningControlPlane, pair: KeyPair, tmp: Path, headers: dict[str, str]) -> k.ApiClient:
    assert cp.cp.pki is not None
    return _client_for(cp.url, cp.cp.pki.ca_pem, pair, tmp, headers)


def _client_for(url: str, ca_pem: bytes, pair: KeyPair, tmp: Path, headers: dict[str, str]) -> k.ApiClient:
    """The official client presenting ``pair`` and sending ``headers`` on every request."""
    (tmp / "ca.crt").write_bytes(ca_pem)
    (tmp / "tls.crt").write_bytes(pair.cert_pem)
    (tmp / "tls.key").write_bytes(pair.key_pem)
    conf = kubernetes.client.Configuration()
    conf.host = url
    conf.ssl_ca_cert, conf.cert_file, conf.key_file = str(tmp / "ca.crt"), str(tmp / "tls.crt"), str(tmp / "tls.key")
    api = k.ApiClient(conf)
    for key, value in headers.items():
        api.set_default_header(key, value)
    return api


def _whoami(api: k.ApiClient) -> k.V1UserInfo:
    review = k.AuthenticationV1Api(api).create_self_subject_review(k.V1SelfSubjectReview())
    return review.status.user_info


async def _post_review(cp: RunningControlPlane, context: ssl.SSLContext, headers: list[tuple[str, str]]) -> int:
    body = {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context)) as s, \
            s.post(cp.url + "/apis/authentication.k8s.io/v1/selfsubjectreviews", json=body, headers=headers) as r:
        return r.status


async def test_front_proxy_headers_are_the_identity_only_with_the_front_proxy_certificate(
        control_plane: RunningControlPlane, tmp_path: Path) -> None:
    cp = control_plane
    pki = cp.cp.pki
    assert pki is not None
    proxy = pki.front_proxy_client()
    assert proxy.certificate.subject.rfc4514_string() == f"CN={FRONT_PROXY_CLIENT}"

    def as_proxy() -> None:
        with _official_client(cp, proxy, tmp_path, HEADERS) as api:
            api.default_headers["X-Remote-Group"] = "team-a"
            user = _whoami(api)
            assert user.username == "alice"
            assert user.groups == ["team-a", "system:authenticated"]
            assert user.extra == {"scopes": ["read"], "acme.example/project": ["p1"]}
            # alice is authorized as alice, not as the proxy
            with pytest.raises(ApiException) as refused:
                k.CoreV1Api(api).list_namespaced_secret("default")
            assert refused.value.status == 403
            assert 'User "alice" cannot list resource "secrets"' in json.loads(refused.value.body)["message"]

    await asyncio.to_thread(as_proxy)

    def as_admin() -> None:  # the cluster CA's certificate: the headers are ignored
        admin = pki.client_pair("kubernetes-admin", ("system:masters",))
        with _official_client(cp, admin, tmp_path, {**HEADERS, "X-Remote-Group": "team-a"}) as api:
            user = _whoami(api)
            assert user.username == "kubernetes-admin"
            assert "team-a" not in user.groups and not user.extra

    await asyncio.to_thread(as_admin)

    # a front-proxy certificate whose CN is not an allowed name is refused, headers or not;
    # the allowed one without X-Remote-User is nobody
    intruder = pki.front_proxy_ca.issue_client("intruder", ())
    headers = [("X-Remote-User", "alice"), ("X-Remote-Group", "system:masters")]
    assert await _post_review(cp, client_context(pki.ca_pem, intruder), headers) == 401
    assert await _post_review(cp, client_context(pki.ca_pem, proxy), []) == 401
    assert await _post_review(cp, client_context(pki.ca_pem, proxy), headers) == 201


def test_allowed_names_and_header_parsing() -> None:
    """Empty allowed names trust any CN of the front-proxy CA (upstream's default); other CAs
    are never trusted; users come from the first username header, groups from every value."""
    front, other = CertificateAuthority.create("front"), CertificateAuthority.create("other")
    anyone, named = RequestHeader(front, ()), RequestHeader(front, ("aggregator",))
    der = _der(front.issue_client("someone", ()))
    assert anyone.trusts(der) and not named.trusts(der)
    assert named.trusts(_der(front.issue_client("aggregator", ())))
    assert not anyone.trusts(_der(other.issue_client("aggregator", ())))
    headers = CIMultiDict([("x-remote-user", "bob"), ("X-Remote-User", "eve"), ("X-Remote-Group", "a"),
                           ("X-Remote-Group", ""), ("x-remote-group", "b"), ("X-Remote-Extra-Bad%zz", "x"),
                           ("X-Remote-Extra-K", "1"), ("x-remote-extra-k", "2")])
    user = anyone.user(headers)
    assert user is not None and user.name == "bob"
    assert user.groups == ("a", "b", "system:authenticated")
    assert dict(user.extra) == {"bad%zz": ("x",), "k": ("1", "2")}
    assert anyone.user(CIMultiDict([("X-Remote-Group", "a")])) is None


def _der(pair: KeyPair) -> bytes:
    return pair.certificate.public_bytes(serialization.Encoding.DER)


def test_front_proxy_headers_are_removed_after_authentication() -> None:
    """Handlers never see X-Remote-* (upstream's ClearAuthenticationHeaders), whoever sent them."""
    from aiohttp.test_utils import make_mocked_request

    from vkube.apiserver.authn import without_front_proxy_headers

    plain = make_mocked_request("GET", "/api", headers={"Accept": "application/json"})
    assert without_front_proxy_headers(plain) is plain
    claimed = make_mocked_request("GET", "/api", headers=CIMultiDict([
        ("Accept", "application/json"), ("X-Remote-User", "alice"), ("x-remote-group", "system:masters"),
        ("X-Remote-Extra-Scopes", "all")]))
    assert dict(without_front_proxy_headers(claimed).headers) == {"Accept": "application/json"}


def test_vkube_serve_requestheader_allowed_names(tmp_path: Path) -> None:
    """``vkube serve --requestheader-allowed-names``: the named CN is trusted, the default one
    no longer is, and extension-apiserver-authentication publishes the same list."""
    data = tmp_path / "d"
    proc = subprocess.Popen([sys.executable, "-m", "vkube", "serve", "--no-controllers", "--data-dir", str(data),
                             "--requestheader-allowed-names", "metrics-proxy"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while not (data / "ready").exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert (data / "ready").exists(), proc.stderr.read().decode() if proc.poll() is not None else "not ready"
        cfg = data / "kubeconfig"
        server = yaml.safe_load(cfg.read_text())["clusters"][0]["cluster"]["server"]
        pki = data / "pki"
        ca_pem = (pki / "ca.crt").read_bytes()
        front = CertificateAuthority((pki / "front-proxy-ca.crt").read_bytes(), (pki / "front-proxy-ca.key").read_bytes())
        with _client_for(server, ca_pem, front.issue_client("metrics-proxy", ()), tmp_path, HEADERS) as api:
            assert _whoami(api).username == "alice"
        with _client_for(server, ca_pem, front.issue_client(FRONT_PROXY_CLIENT, ()), tmp_path, HEADERS) as api, \
                pytest.raises(ApiException) as refused:
            _whoami(api)
        assert refused.value.status == 401
        for _ in range(600):
            published = kubectl(cfg, "get", "cm", "-n", "kube-system", "extension-apiserver-authentication",
                                "-o", "jsonpath={.data.requestheader-allowed-names}", check=False).stdout
            if published:
                break
            time.sleep(0.2)
        assert json.loads(published) == ["metrics-proxy"]
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    shared = subprocess.run([sys.executable, "-m", "vkube", "serve", "--shared", "--data-dir", str(tmp_path / "s"),
                             "--requestheader-allowed-names="], capture_output=True, text=True, timeout=120)
    assert shared.returncode == 2
    assert "--requestheader-allowed-names is not supported in shared mode" in shared.stderr
