"""One way for the benchmarks to run `vkube serve --no-controllers` in a child process on a
free loopback port and wait for it, so each benchmark measures its own requests only."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_ready(base: str, timeout: float = 180) -> None:
    """Until ``base``/readyz answers ``ok``; TimeoutError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if urllib.request.urlopen(base + "/readyz", timeout=1).read() == b"ok":
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{base} not ready within {timeout}s")
        time.sleep(0.02)


@contextlib.contextmanager
def serve_api(*extra: str) -> Iterator[str]:
    """A fresh `vkube serve --no-controllers` (plus ``extra`` flags); yields its base URL and
    stops it on exit."""
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        proc = subprocess.Popen([sys.executable, "-m", "vkube", "serve", "--data-dir", tmp,
                                 "--port", str(port), "--no-controllers", *extra],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        base = f"http://127.0.0.1:{port}"
        try:
            wait_ready(base)
            yield base
        finally:
            proc.terminate()
            proc.wait()
