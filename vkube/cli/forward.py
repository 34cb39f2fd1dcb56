"""Run a lifecycle command (``vkube create|delete|pause|resume``) in a child of the embedded
host's spare (``vkube.cli.spare``) rather than in this process.

Why: such a command spent ~0.5 s of CPU importing (aiohttp alone ~0.2 s, cryptography,
the values schema) before its first request, on every run. The spare has all of it loaded;
this process only starts Python, hands over its arguments, environment, working directory and
stdin/stdout/stderr, relays Ctrl-C and similar signals, and exits with the child's code.

Nothing is forwarded when no spare listens, or it refuses (other interpreter, changed code):
the caller then runs the command itself. Once the request is sent it is the spare's: the
answer is waited for (a spare still importing after its start answers when done), so a
command never runs twice. Only the standard library, imported here, on this path.
"""

from __future__ import annotations

import os
import sys

#: the commands worth forwarding: they import the client and the PKI, and run often
COMMANDS = frozenset({"create", "delete", "pause", "resume"})
RELAYED = ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT")


def spare_socket() -> str:
    home = os.environ.get("VKUBE_HOME") or os.path.join(os.path.expanduser("~"), ".vkube")
    return os.path.join(home, "host", "spare.sock")


def listener_is_ours(s: "object") -> bool:
    """Whether the process listening on connected unix socket ``s`` runs as our user
    (``SO_PEERCRED``). Our arguments, environment (credentials included) and terminal go to
    it, and a supervisor signals the pid it names: a listener another user planted at the
    path (a ``VKUBE_HOME`` others may write) must get none of it. ``s``: a ``socket`` or
    ``_socket`` socket."""
    import struct

    sol, peercred = 1, 17  # SOL_SOCKET, SO_PEERCRED (Linux; the spare is Linux-only)
    try:
        _pid, uid, _gid = struct.unpack("3i", s.getsockopt(sol, peercred, 12))  # type: ignore[attr-defined]
    except OSError:
        return False
    return uid == os.getuid()


def forward(argv: list[str]) -> int | None:
    """The exit code of ``vkube ARGV`` run by a child of the spare; None: run it here."""
    if not argv or argv[0] not in COMMANDS or os.environ.get("VKUBE_NO_SPARE"):
        return None
    path = spare_socket()
    import stat

    try:
        if not stat.S_ISSOCK(os.stat(path).st_mode):
            return None
    except OSError:
        return None
    import array
    import socket

    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dfd = None
    try:
        name = path
        if len(path.encode()) >= 100:  # unix socket paths are limited to 107 bytes
            d, base = os.path.split(path)
            dfd = os.open(d, os.O_PATH | os.O_DIRECTORY)
            name = f"/proc/self/fd/{dfd}/{base}"
        s.settimeout(2.0)
        s.connect(name)
        if not listener_is_ours(s):
            raise OSError("the spare's socket is another user's")
    except OSError:
        s.close()
        return None
    finally:
        if dfd is not None:
            os.close(dfd)
    cmd = [sys.executable, "-m", "vkube", *argv]
    payload = "\0".join([os.getcwd(), str(len(cmd)), *cmd,
                         *(f"{k}={v}" for k, v in os.environ.items())]).encode("utf-8", "surrogateescape")
    try:
        s.settimeout(None)  # from here the request is the spare's: wait for its answer
        s.sendmsg([len(payload).to_bytes(4, "big")],
                  [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [0, 1, 2]))])
        s.sendall(payload)
        buf = b""
        while b"\n" not in buf:
            chunk = s.recv(256)
            if not chunk:
                break
            buf += chunk
    except OSError:
        s.close()
        return None
    first, _, rest = buf.partition(b"\n")
    if not (first.startswith(b"pid ") and first[4:].isdigit()):
        s.close()
        return None  # refused, or the spare died before forking: nothing ran
    return _follow(s, int(first[4:]), rest)


def _follow(s: "object", pid: int, buf: bytes) -> int:
    """Relay signals to the child until its connection ends; its exit code (killed: 255)."""
    import signal

    def relay(signum: int, _frame: object) -> None:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass

    for name in RELAYED:
        signal.signal(getattr(signal, name), relay)
    while True:
        try:
            chunk = s.recv(256)  # type: ignore[attr-defined]
        except InterruptedError:
            continue
        except OSError:
            chunk = b""
        if not chunk:
            break
        buf = (buf + chunk)[-1024:]
    s.close()  # type: ignore[attr-defined]
    for line in buf.split(b"\n"):
        if line.startswith(b"exit ") and line[5:].lstrip(b"-").isdigit():
            return int(line[5:]) & 0xFF
    return 255
