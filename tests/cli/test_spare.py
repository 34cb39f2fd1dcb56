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
        # neither the spare nor a serve forked from it holds the host's stdio (its log, open
        # for writing) beyond its own 0-2; the home and every store in it are the user's only
        for pid in (spare, serve):
            inherited = [(fd.name, os.readlink(fd)) for fd in Path(f"/proc/{pid}/fd").iterdir()
                         if int(fd.name) > 2 and not os.readlink(fd).startswith(("socket:", "anon_inode:", "pipe:"))]
            assert not [f for f in inherited if f[1].endswith("host.log")], (pid, inherited)
        assert u.home.stat().st_mode & 0o777 == 0o700
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


def test_the_spare_notices_code_edited_under_it_with_its_mtime_put_back(tmp_path: Path) -> None:
    """``touch -r`` puts an edited file's mtime back; ``cp -p`` copies it: the fingerprint
    still changes (ctime, inode), so the spare refuses as stale instead of running old code."""
    import types

    from vkube.cli import spare

    src = tmp_path / "probe.py"
    src.write_text("X = 1\n")
    mod = types.ModuleType("vkube._fingerprint_probe")
    mod.__file__ = str(src)
    sys.modules[mod.__name__] = mod
    try:
        before = spare.fingerprint()
        assert spare.fingerprint() == before
        st = src.stat()
        src.write_text("X = 2\n")  # same size
        os.utime(src, ns=(st.st_atime_ns, st.st_mtime_ns))
        assert src.stat().st_mtime_ns == st.st_mtime_ns and src.stat().st_size == st.st_size
        edited = spare.fingerprint()
        assert edited != before
        copy = tmp_path / "copy.py"
        subprocess.run(["cp", "-p", str(src), str(copy)], check=True)
        os.replace(copy, src)  # same content, size and mtime; another inode
        assert spare.fingerprint() != edited
    finally:
        del sys.modules[mod.__name__]


@pytest.mark.skipif(os.getuid() != 0, reason="needs root to listen as another user")
def test_commands_are_not_sent_to_a_listener_of_another_user(request: pytest.FixtureRequest) -> None:
    """A spare socket planted by another user (a VKUBE_HOME others may write) gets neither the
    command nor its environment: the command runs in the caller's own process instead."""
    import shutil
    import tempfile

    from vkube.cli import forward

    top = Path(tempfile.mkdtemp())  # pytest's tmp_path is under a 0700 directory
    request.addfinalizer(lambda: shutil.rmtree(top, ignore_errors=True))
    os.chmod(top, 0o755)
    home = top / "home"
    (home / "host").mkdir(parents=True)
    os.chmod(home, 0o777)
    os.chmod(home / "host", 0o777)
    path = home / "host" / "spare.sock"
    ready_r, ready_w = os.pipe()
    got_r, got_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the other user's listener: reports what it received
        try:
            os.close(ready_r)
            os.close(got_r)
            os.setgid(65534)
            os.setuid(65534)
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as ls:
                ls.bind(str(path))
                ls.listen(1)
                os.write(ready_w, b"ok")
                ls.settimeout(30)
                conn, _ = ls.accept()
                conn.settimeout(5)
                data = b""
                try:
                    while chunk := conn.recv(4096):
                        data += chunk
                except OSError:
                    pass
                os.write(got_w, str(len(data)).encode())
        finally:
            os._exit(0)
    os.close(ready_w)
    os.close(got_w)
    try:
        assert os.read(ready_r, 2) == b"ok"
        env = {"VKUBE_HOME": str(home), "SECRET_FOR_TEST": "s3cr3t"}
        old = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        try:
            assert forward.forward(["create", "victim"]) is None  # run here, not there
        finally:
            for k, v in old.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        assert os.read(got_r, 32) == b"0"  # it accepted the connection and received nothing
    finally:
        os.waitpid(pid, 0)
