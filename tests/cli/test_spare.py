"""The embedded host's spare (``vkube.cli.spare``): a cluster's ``serve`` is forked from it
with every module loaded, shows its own command line, and every crash is handled — serve
killed (the supervisor asks again), the spare killed (the host starts another, running
clusters keep serving), the supervisor killed (serve stops itself). ``vkube create`` and the
other lifecycle commands run in a child of the spare too (``vkube.cli.forward``): the command
the user started imports none of the client, with the child's output and exit code. A request
that is not a vkube command the spare runs is refused."""

from __future__ import annotations

import array
import os
import signal
import socket
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli.conftest import User, cleanup, eventually, make_user


def _ppid(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except OSError:
        return -1  # gone


def _cmdline(pid: int) -> list[bytes]:
    return [a for a in _safe_cmdline(Path(f"/proc/{pid}")).split(b"\0") if a]


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _spare_pid(u: User) -> int:
    """The live spare of ``u``'s host (one, listening)."""
    sock = str(u.home / "host" / "spare.sock").encode()
    pids = [int(d.name) for d in Path("/proc").iterdir() if d.name.isdigit()
            and _alive(int(d.name)) and b"vkube.cli.spare" in _safe_cmdline(d)
            and sock in _safe_cmdline(d)]
    assert len(pids) == 1, pids
    assert (u.home / "host" / "spare.sock").is_socket()
    return pids[0]


def _safe_cmdline(d: Path) -> bytes:
    try:
        return (d / "cmdline").read_bytes()
    except OSError:
        return b""


def _forked(u: User, name: str, spare: int) -> tuple[int, int]:
    """(supervisor, serve) of cluster ``name``, serve a child of ``spare``, serving."""
    pids = u.describe(name)["process"]["pids"]
    assert len(pids) == 2, pids
    sup, serve = pids
    assert _ppid(serve) == spare, (serve, _ppid(serve), spare)
    cmd = _cmdline(serve)  # what ps and describe read: the serve command, not the spare's
    assert cmd[1:4] == [b"-m", b"vkube", b"serve"] and b"--name" in cmd and name.encode() in cmd, cmd
    u.kubectl("get", "ns", "kube-system", "-o", "name")
    return sup, serve


def _request(path: Path, argv: list[str]) -> bytes:
    """What a supervisor sends, for ``argv``; returns the spare's answer."""
    payload = "\0".join([os.getcwd(), str(len(argv)), *argv]).encode()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(60)
        s.connect(str(path))
        s.sendmsg([struct.pack("!I", len(payload))],
                   [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [1, 2]))])
        s.sendall(payload)
        out = b""
        while chunk := s.recv(256):
            out += chunk
        return out


@pytest.mark.timeout(600)
def test_serve_forked_from_the_spare_survives_every_crash(tmp_path: Path) -> None:
    u = make_user(tmp_path / "u")
    try:
        u.vkube("host", "start", "--nodes", "1")
        spare = eventually(lambda: _spare_pid(u), timeout=120, delay=0.2)
        create = [sys.executable, "-m", "vkube", "create", "sp", "--connect"]
        traced = {**u.env, "PYTHONPROFILEIMPORTTIME": "1"}  # what the started process imports
        out = subprocess.run(create, env=traced, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        assert "control plane ready" in out.stderr + out.stdout, out
        imported = {line.split("|")[-1].strip() for line in out.stderr.splitlines()
                    if line.startswith("import time:")}
        assert "vkube.cli.forward" in imported, sorted(imported)
        assert not imported & {"asyncio", "aiohttp", "cryptography", "vkube.client"}, sorted(imported)
        assert u.current_context() == "vkube_sp"
        sup, serve = _forked(u, "sp", spare)
        again = subprocess.run(create, env=u.env, capture_output=True, text=True, timeout=120)
        assert again.returncode == 1 and "virtual cluster 'sp' already exists" in again.stderr, again

        # anything but `python -m vkube serve` is refused, and nothing is forked
        sock = u.home / "host" / "spare.sock"
        answer = _request(sock, [sys.executable, "-c", "print('hello')"])
        assert answer.startswith(b"refused not a"), answer
        assert _request(sock, ["/bin/sh", "-m", "vkube", "serve"]).startswith(b"refused"), answer

        # serve killed: the supervisor starts it again, from the spare
        os.kill(serve, signal.SIGKILL)

        def restarted() -> tuple[int, int]:
            s, new = _forked(u, "sp", spare)
            assert s == sup and new != serve
            return s, new

        sup, serve = eventually(restarted, timeout=120, delay=0.5)
        assert "exited with code 255" in (u.home / "clusters" / "sp" / "vkube.log").read_text()

        # the spare killed: the cluster keeps serving; the host starts another spare
        os.kill(spare, signal.SIGKILL)
        u.kubectl("get", "ns", "default", "-o", "name")
        assert _alive(serve)
        spare = eventually(lambda: _spare_pid(u), timeout=120, delay=0.2)
        u.vkube("pause", "sp")
        assert not _alive(serve)
        u.vkube("resume", "sp")
        sup, serve = _forked(u, "sp", spare)

        # the supervisor killed outright: serve reads EOF and stops, as its child would
        os.kill(sup, signal.SIGKILL)
        eventually(lambda: not _alive(serve) or (_ for _ in ()).throw(AssertionError(serve)),
                   timeout=60, delay=0.2)
        u.vkube("resume", "sp")  # the next start is forked again, from the same spare
        _forked(u, "sp", spare)
        u.vkube("delete", "sp")
        assert _alive(spare)
        u.vkube("host", "stop")  # the spare goes with the host
        eventually(lambda: not _alive(spare) or (_ for _ in ()).throw(AssertionError(spare)),
                   timeout=60, delay=0.2)
        assert not sock.exists()
    finally:
        cleanup(u)
