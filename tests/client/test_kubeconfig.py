"""Kubeconfig loading: plain http with a token, and TLS with a CA and a client certificate
against a real aiohttp TLS server that requires one."""

from __future__ import annotations

import base64
import shutil
import ssl
import subprocess
from pathlib import Path

import pytest
import yaml
from aiohttp import web

from vkube.api import errors
from vkube.client import load_kubeconfig
from vkube.client.kubeconfig import parse_kubeconfig
from vkube.client.resources import PODS


def _kubeconfig(path: Path, cluster: dict, user: dict, namespace: str = "team") -> None:
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "k", "cluster": cluster}],
        "users": [{"name": "u", "user": user}],
        "contexts": [{"name": "c", "context": {"cluster": "k", "user": "u",
                                                "namespace": namespace}},
                     {"name": "other", "context": {"cluster": "k", "user": "u"}}],
    }))


async def _serve(handler, ssl_ctx=None):
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_ctx)
    await site.start()
    return runner, site._server.sockets[0].getsockname()[1]


async def test_http_token(tmp_path: Path) -> None:
    seen = {}

    async def handler(req: web.Request) -> web.Response:
        seen["auth"] = req.headers.get("Authorization")
        return web.json_response({"kind": "PodList", "items": [], "metadata": {}})

    runner, port = await _serve(handler)
    try:
        (tmp_path / "tok").write_text("abc\n")
        _kubeconfig(tmp_path / "kc", {"server": f"http://127.0.0.1:{port}"}, {"tokenFile": "tok"})
        async with load_kubeconfig(str(tmp_path / "kc")) as c:
            assert c.namespace == "team"
            await c.list(PODS)
        assert seen["auth"] == "Bearer abc"
        assert load_kubeconfig(str(tmp_path / "kc"), "other").namespace == "default"
        with pytest.raises(ValueError):
            load_kubeconfig(str(tmp_path / "kc"), "missing")
    finally:
        await runner.cleanup()


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture
def pki(tmp_path: Path) -> Path:
    if not shutil.which("openssl"):
        pytest.skip("openssl not installed")
    d = tmp_path
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out",
             "ca.crt", "-days", "1", "-subj", "/CN=test-ca", cwd=d)
    (d / "san.cnf").write_text("subjectAltName=IP:127.0.0.1\n")
    for name in ("server", "client"):
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out",
                 f"{name}.csr", "-subj", f"/CN={name}/O=system:masters", cwd=d)
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                 "-CAcreateserial", "-out", f"{name}.crt", "-days", "1", "-extfile", "san.cnf",
                 cwd=d)
    return d


async def test_tls_with_client_certificate(pki: Path) -> None:
    sctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(pki / "ca.crt"))
    sctx.load_cert_chain(pki / "server.crt", pki / "server.key")
    sctx.verify_mode = ssl.CERT_REQUIRED
    seen = {}

    async def handler(req: web.Request) -> web.Response:
        cert = req.transport.get_extra_info("peercert")
        seen["cn"] = dict(x[0] for x in cert["subject"])["commonName"]
        return web.json_response({"kind": "Pod", "metadata": {"name": "p"}})

    runner, port = await _serve(handler, sctx)
    try:
        b64 = lambda p: base64.b64encode((pki / p).read_bytes()).decode()  # noqa: E731
        _kubeconfig(pki / "kc", {"server": f"https://127.0.0.1:{port}",
                                 "certificate-authority-data": b64("ca.crt")},
                    {"client-certificate-data": b64("client.crt"),
                     "client-key": str(pki / "client.key")})
        async with load_kubeconfig(str(pki / "kc")) as c:
            assert (await c.get(PODS, "p", namespace="n"))["metadata"]["name"] == "p"
        assert seen["cn"] == "client"
        # without the CA the server's certificate is refused — as a StatusError, not ssl's
        _kubeconfig(pki / "kc2", {"server": f"https://127.0.0.1:{port}"},
                    {"client-certificate": "client.crt", "client-key": "client.key"})
        async with load_kubeconfig(str(pki / "kc2")) as c:
            with pytest.raises(errors.ServiceUnavailable):
                await c.get(PODS, "p", namespace="n")
        _kubeconfig(pki / "kc3", {"server": f"https://127.0.0.1:{port}",
                                  "insecure-skip-tls-verify": True},
                    {"client-certificate": "client.crt", "client-key": "client.key"})
        async with load_kubeconfig(str(pki / "kc3")) as c:
            await c.get(PODS, "p", namespace="n")
    finally:
        await runner.cleanup()


def test_parse_prefers_data_and_reports_missing_context() -> None:
    doc = {"clusters": [{"name": "k", "cluster": {"server": "http://x"}}],
           "contexts": [{"name": "c", "context": {"cluster": "k"}}], "users": []}
    with pytest.raises(ValueError):
        parse_kubeconfig(doc)
    kc = parse_kubeconfig(doc, "c")
    assert kc.server == "http://x" and kc.token is None and kc.namespace == "default"
