"""A server restarting on its port while another process's connection holds that port (as an
outgoing connection's source port may, after ``kill -9`` of the server) logs one line and
retries until it is free — no traceback, no waiting out the supervisor's back-off; and the
ports vkube picks lie outside the kernel's ephemeral range, so that rarely happens at all."""

from __future__ import annotations

import os
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import kubectl
from vkube.cli import process


def test_free_ports_are_outside_the_ephemeral_range() -> None:
    low, high = process._ephemeral_range()
    for _ in range(20):
        port = process.free_port()
        assert not low <= port <= high and port >= 1024, port
        assert process.port_free(port)


def test_serve_waits_for_its_port_held_by_a_connection_then_serves(tmp_path: Path) -> None:
    port = process.free_port()
    listener = socket.create_server(("127.0.0.1", 0))
    holder = socket.socket()
    holder.bind(("127.0.0.1", port))  # as an outgoing connection given this source port
    holder.connect(listener.getsockname())
    data = tmp_path / "data"
    log = open(tmp_path / "serve.log", "w+")
    proc = subprocess.Popen([sys.executable, "-m", "vkube", "serve", "--name", "pr", "--data-dir",
                             str(data), "--port", str(port), "--no-controllers"],
                            env={**os.environ, "VKUBE_HOME": str(tmp_path / "home")},
                            stdout=log, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 120
        while f"port {port} of virtual cluster pr is in use" not in _read(tmp_path):
            assert proc.poll() is None and time.monotonic() < deadline, _read(tmp_path)
            time.sleep(0.2)
        assert not (data / "ready").exists()
        # closed with a reset: a plain close would keep the port in TIME_WAIT for 60 s more
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        holder.close()
        while not (data / "ready").exists():
            assert proc.poll() is None and time.monotonic() < deadline, _read(tmp_path)
            time.sleep(0.2)
        assert kubectl(data / "kubeconfig", "get", "ns", "default", "-o", "name").stdout.strip() \
            == "namespace/default"
        assert "Traceback" not in _read(tmp_path)
    finally:
        holder.close()
        listener.close()
        proc.terminate()
        proc.wait(timeout=60)
        log.close()


def _read(tmp_path: Path) -> str:
    return (tmp_path / "serve.log").read_text(errors="replace")
