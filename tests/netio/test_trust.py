"""vkube.netio.trust: aiohttp imported under the hook builds its default contexts without
reading the system trust store, and ``ssl=True`` still verifies against the system's CAs —
read from the environment when the first connection needs them, not at import."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from vkube.pki.certs import CertificateAuthority

CHILD = textwrap.dedent("""
    import asyncio, os, ssl, sys
    from vkube.netio.trust import LazyTrustContext, defer_aiohttp_trust_store

    assert defer_aiohttp_trust_store()
    before = dict(os.environ)
    import aiohttp
    import aiohttp.connector as c
    from aiohttp import web
    assert dict(os.environ) == before, "the environment is restored"
    assert not defer_aiohttp_trust_store(), "too late once aiohttp is imported"
    verified, unverified = c._SSL_CONTEXT_VERIFIED, c._SSL_CONTEXT_UNVERIFIED
    assert type(verified) is LazyTrustContext and type(unverified) is ssl.SSLContext
    assert verified.cert_store_stats()["x509_ca"] == 0, "nothing read at import"
    assert verified.verify_mode == ssl.CERT_REQUIRED and verified.check_hostname

    cert, key, ca = sys.argv[1:4]

    async def main():
        server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        server_ctx.load_cert_chain(cert, key)
        app = web.Application()
        app.router.add_get("/", lambda r: web.Response(text="ok"))
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_ctx)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        url = f"https://localhost:{port}/"
        try:
            # the system store is loaded now, from the environment as it is now: here it
            # trusts only the test CA, so the default (ssl=True) connection verifies with it
            os.environ["SSL_CERT_FILE"], os.environ["SSL_CERT_DIR"] = ca, "/nonexistent"
            async with aiohttp.ClientSession() as s:
                async with s.get(url) as resp:
                    assert await resp.text() == "ok"
            assert verified.cert_store_stats()["x509_ca"] == 1
            # and it does verify: a server the store does not vouch for is refused
            async with aiohttp.ClientSession() as s:
                try:
                    await s.get(f"https://127.0.0.1:{port}/")  # name not in the certificate
                except aiohttp.ClientConnectorCertificateError:
                    pass
                else:
                    raise AssertionError("an unverifiable server was accepted")
        finally:
            await runner.cleanup()
        print("OK")

    asyncio.run(main())
""")


def test_the_default_context_loads_the_system_store_on_first_use_and_verifies(tmp_path: Path):
    ca = CertificateAuthority.create("trust-test-ca")
    pair = ca.issue_serving(["localhost"])
    (tmp_path / "tls.crt").write_bytes(pair.cert_pem)
    (tmp_path / "tls.key").write_bytes(pair.key_pem)
    (tmp_path / "ca.crt").write_bytes(ca.cert_pem)
    proc = subprocess.run([sys.executable, "-c", CHILD, str(tmp_path / "tls.crt"), str(tmp_path / "tls.key"),
                           str(tmp_path / "ca.crt")], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONWARNINGS": "error::ResourceWarning"})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "OK"


def test_the_vkube_entry_point_installs_it_before_aiohttp_is_imported():
    code = "import sys; from vkube.cli import main; print('aiohttp' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "False", out.stderr  # importing the CLI does not import aiohttp
    code = ("import sys; from vkube.cli import main\n"
            "try:\n    main.main(['serve', '--help'])\nexcept SystemExit:\n    pass\n"
            "import aiohttp.connector as c; print(type(c._SSL_CONTEXT_VERIFIED).__name__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip().splitlines()[-1] == "LazyTrustContext", out.stderr


@pytest.mark.parametrize("cert_file", [None, "/etc/ssl/certs/ca-certificates.crt"])
def test_the_environment_comes_back_as_it_was(cert_file):
    env = {k: v for k, v in os.environ.items() if k not in ("SSL_CERT_FILE", "SSL_CERT_DIR")}
    if cert_file:
        env["SSL_CERT_FILE"] = cert_file
    code = ("import os; from vkube.netio.trust import defer_aiohttp_trust_store as d; d(); import aiohttp; "
            "print(os.environ.get('SSL_CERT_FILE'), os.environ.get('SSL_CERT_DIR'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert out.stdout.split() == [str(cert_file), "None"], out.stderr
