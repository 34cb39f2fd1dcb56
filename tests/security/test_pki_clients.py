"""Our certificates as real clients see them: the pinned kubectl (Go's TLS and x509 checks) and the
official ``kubernetes`` Python client talk to an HTTPS endpoint served with :class:`ServingCertificate`,
using a kubeconfig that embeds the CA and a client certificate; the server reads the user back
from the peer certificate. Certificates of another CA are refused on both sides."""

from __future__ import annotations

import asyncio
import base64
import json
import os
from pathlib import Path

import yaml
from aiohttp import web

from tests.conftest import KUBECTL
from vkube.pki import CertificateAuthority, KeyPair, authenticate_client_certificate
from vkube.pki.tls import ServingCertificate

VERSION = {"major": "1", "minor": "37", "gitVersion": "v1.37.0-vkube", "gitCommit": "0", "gitTreeState": "clean",
           "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.25", "compiler": "gc", "platform": "linux/amd64"}


def kubeconfig(path: Path, port: int, ca_pem: bytes, client: KeyPair) -> Path:
    b64 = lambda data: base64.b64encode(data).decode()  # noqa: E731
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "c", "cluster": {"server": f"https://127.0.0.1:{port}",
                                               "certificate-authority-data": b64(ca_pem)}}],
        "users": [{"name": "u", "user": {"client-certificate-data": b64(client.cert_pem),
                                         "client-key-data": b64(client.key_pem)}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}]}))
    return path


async def run_kubectl(config: Path, *args: str) -> tuple[int, str, str]:
    env = {**os.environ, "KUBECONFIG": str(config), "KUBECTL_KUBERC": "false"}
    proc = await asyncio.create_subprocess_exec(KUBECTL, *args, env=env, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), timeout=120)
    return proc.returncode, out.decode(), err.decode()


async def test_kubectl_and_python_client_accept_our_certificates(tmp_path):
    ca = CertificateAuthority.create("vkube-ca-clients")
    serving = ServingCertificate(ca, tmp_path / "pki")
    serving.ensure(["127.0.0.1", "localhost"])
    users: list[tuple[str, tuple[str, ...]]] = []

    async def version(request: web.Request) -> web.Response:
        der = request.transport.get_extra_info("ssl_object").getpeercert(binary_form=True)
        if der:
            ident = authenticate_client_certificate(der, ca)
            users.append((ident.user, ident.groups))
        return web.json_response(VERSION)

    app = web.Application()
    app.router.add_get("/version", version)
    app.router.add_get("/version/", version)  # the Python client asks with a trailing slash
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=serving.context)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    try:
        alice = ca.issue_client("alice", ["devs"])
        good = kubeconfig(tmp_path / "good.yaml", port, ca.cert_pem, alice)
        code, out, err = await run_kubectl(good, "version", "-o", "json")
        assert code == 0, err
        assert json.loads(out)["serverVersion"]["gitVersion"] == "v1.37.0-vkube"
        assert users[-1] == ("alice", ("devs",))

        from kubernetes import client, config  # the official client: urllib3 over OpenSSL
        api_client = config.new_client_from_config(str(good))
        info = await asyncio.to_thread(lambda: client.VersionApi(api_client).get_code())
        api_client.close()
        assert info.git_version == "v1.37.0-vkube" and users[-1] == ("alice", ("devs",))

        # a client certificate of another CA: refused in the handshake, the handler never runs
        stranger = CertificateAuthority.create("vkube-ca-clients").issue_client("admin", ["system:masters"])
        before = len(users)
        code, _, err = await run_kubectl(kubeconfig(tmp_path / "forged.yaml", port, ca.cert_pem, stranger),
                                         "version", "-o", "json", "--request-timeout=20s")
        assert code != 0 and len(users) == before
        # kubectl trusting another CA refuses our server
        other_ca = CertificateAuthority.create("elsewhere")
        code, _, err = await run_kubectl(kubeconfig(tmp_path / "wrong-ca.yaml", port, other_ca.cert_pem, alice),
                                         "version", "-o", "json", "--request-timeout=20s")
        assert code != 0 and "certificate signed by unknown authority" in err
    finally:
        await runner.cleanup()
