"""The shared listener's connection limits through ``vkube serve --shared`` and its flags:
connections over the per-client or per-process cap are closed at accept, a connection that
never finishes its TLS handshake is closed after ``--tls-handshake-timeout``, one without a
request after ``--idle-timeout``; other clients are served meanwhile. The flags are refused
where they do not apply. Clients come from several loopback addresses (127.0.0.2, .3, .4)."""

from __future__ import annotations

import os
import socket
import ssl
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli.conftest import eventually

VKUBE = [sys.executable, "-m", "vkube"]


def _run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*VKUBE, *args], env=env, capture_output=True, text=True, timeout=120)


def _connect(port: int, source: str) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=30, source_address=(source, 0))


def _closed(sock: socket.socket, wait: float = 0.5) -> bool:
    """The server closed ``sock`` (EOF or reset) within ``wait`` seconds."""
    sock.settimeout(wait)
    try:
        return sock.recv(1) == b""
    except TimeoutError:
        return False
    except OSError:
        return True


def _health(port: int, ca: Path) -> str:
    ctx = ssl.create_default_context(cafile=str(ca))
    with socket.create_connection(("127.0.0.1", port), timeout=30) as raw, \
            ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
        tls.sendall(b"GET /readyz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := tls.recv(4096):
            data += chunk
    return data.decode()


@pytest.mark.timeout(300)
def test_connection_limits_of_serve_shared(tmp_path: Path) -> None:
    env = {**os.environ, "VKUBE_HOME": str(tmp_path / "home"), "KUBECONFIG": str(tmp_path / "kc")}
    data = tmp_path / "shared"
    out = _run("serve", "--data-dir", str(data), "--max-connections", "5", env=env)
    assert out.returncode == 2 and "--max-connections limits the shared listener only" in out.stderr, out.stderr
    out = _run("serve", "--shared", "--data-dir", str(data), "--max-connections-per-client", "0", env=env)
    assert out.returncode == 2 and "--max-connections-per-client 0: must be between 1" in out.stderr, out.stderr

    proc = subprocess.Popen([*VKUBE, "serve", "--shared", "--data-dir", str(data), "--max-connections", "5",
                             "--max-connections-per-client", "3", "--tls-handshake-timeout", "20",
                             "--idle-timeout", "3"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    socks: list[socket.socket] = []
    try:
        def ready() -> None:
            assert (data / "ready").exists() and (data / "ready").read_text().strip(), proc.poll()
        eventually(ready, timeout=120, delay=0.5)
        port = int((data / "ready").read_text().strip().rsplit(":", 1)[1])
        ca = data / "pki" / "ca.crt"
        assert "ok" in _health(port, ca)
        # one client address: three connections that never say a word are kept, the fourth closed
        held = [_connect(port, "127.0.0.2") for _ in range(3)]
        socks += held
        extra = _connect(port, "127.0.0.2")
        socks.append(extra)
        assert _closed(extra, wait=20), "a 4th connection from one address was kept"
        assert not any(_closed(s, wait=0.2) for s in held)
        # the process: two more from another address fill it (the per-client cap alone would
        # let a third in); then a third address is refused too
        third = [_connect(port, "127.0.0.3") for _ in range(3)]
        socks += third
        assert any(_closed(s, wait=10) for s in third), "no connection refused at --max-connections"
        other = _connect(port, "127.0.0.4")
        socks.append(other)
        assert _closed(other, wait=20), "a connection over --max-connections was kept"
        # no TLS handshake within --tls-handshake-timeout: closed, and the places come back
        def all_closed() -> None:
            assert all(_closed(s, wait=0.2) for s in held)
        eventually(all_closed, timeout=120, delay=1)
        assert "ok" in _health(port, ca)
        # a TLS connection without a request is closed after --idle-timeout
        ctx = ssl.create_default_context(cafile=str(ca))
        idle = ctx.wrap_socket(_connect(port, "127.0.0.1"), server_hostname="127.0.0.1")
        socks.append(idle)
        def idle_closed() -> None:
            assert _closed(idle, wait=0.5)
        eventually(idle_closed, timeout=60, delay=0.5)
        assert proc.poll() is None
    finally:
        for s in socks:
            s.close()
        proc.terminate()
        try:
            _, err = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
    assert "Traceback" not in err, err
    assert "connection refused (client)" in err and "connection refused (process)" in err, err
