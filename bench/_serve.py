"""One way for the benchmarks to run `vkube serve --no-controllers` in a child process on a
free loopback port and wait for it, so each benchmark measures its own requests only."""

from __future__ import annotations

import contextlib
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_ready(base: str, data_dir: str, timeout: float = 180) -> None:
    """Until ``base``/readyz answers ``ok`` over TLS verified with the cluster CA (anonymous
    may read /readyz); TimeoutError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    ca = Path(data_dir, "pki", "ca.crt")
    while True:
        try:
            if ca.exists():
                ctx = ssl.create_default_context(cafile=str(ca))
                if urllib.request.urlopen(base + "/readyz", timeout=1, context=ctx).read() == b"ok":
                    return
        except (OSError, ssl.SSLError):
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{base} not ready within {timeout}s")
        time.sleep(0.02)


def admin_tls(data_dir: str) -> ssl.SSLContext:
    """The admin's TLS context from the kubeconfig `vkube serve` wrote (CA + client cert)."""
    import yaml

    from vkube.client.kubeconfig import parse_kubeconfig, ssl_context

    doc = yaml.safe_load(Path(data_dir, "kubeconfig").read_text())
    return ssl_context(parse_kubeconfig(doc))


@contextlib.contextmanager
def serve_api(*extra: str) -> Iterator[tuple[str, ssl.SSLContext]]:
    """A fresh `vkube serve --no-controllers` (plus ``extra`` flags); yields its base URL and
    the admin's TLS context, and stops it on exit."""
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        proc = subprocess.Popen([sys.executable, "-m", "vkube", "serve", "--data-dir", tmp,
                                 "--port", str(port), "--no-controllers", *extra],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        base = f"https://127.0.0.1:{port}"
        try:
            wait_ready(base, tmp)
            yield base, admin_tls(tmp)
        finally:
            proc.terminate()
            proc.wait()
