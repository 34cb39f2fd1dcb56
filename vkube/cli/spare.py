"""``python -m vkube.cli.spare --socket PATH --room ...``: a fork server for ``vkube serve``.

Why: a new control plane spent most of its start importing (~770 modules, 0.45–0.6 s of CPU)
and then kept a private copy of every module's code (~17 MiB) for its life. This process
imports what ``vkube serve`` runs once, freezes those objects out of the garbage collector,
and forks a child per request, so a cluster's process starts with every module loaded and
shares their pages (copy-on-write) with the spare and with every other cluster's process.

The embedded host runs one spare beside it (``vkube.cli.hosting``); a cluster's supervisor
(``vkube.cli.supervise --spare PATH``) asks it for its ``serve`` and falls back to fork + exec
whenever the spare is absent, busy failing, or refuses (other interpreter, changed code).

Protocol, over a unix socket only its user may open (and the peer must be this user):
the supervisor sends one message — ``cwd \\0 argc \\0 argv... \\0 KEY=VALUE...`` — with its
stdout and stderr as SCM_RIGHTS; the forked child answers ``pid N\\n`` and, as it ends,
``exit N\\n``; the spare itself answers ``refused REASON\\n``. The connection then belongs to
the child: when the supervisor dies, the child reads EOF and stops itself (SIGTERM), as a
child of the supervisor would through ``PR_SET_PDEATHSIG``; when the child dies, the
supervisor reads EOF (killed) or its exit code.

The child's ``/proc/PID/cmdline`` is rewritten to the requested command line (what ``ps``,
``vkube describe`` and a second look at a cluster's processes read): the spare is started
with ``--room`` padding, and the child writes the NUL-separated argv over that area, as
setproctitle(3) does. A command line that does not fit is refused (fork + exec then).
"""

from __future__ import annotations

import argparse
import array
import contextlib
import ctypes
import gc
import os
import signal
import socket
import struct
import sys
import threading
import time
from pathlib import Path

#: what ``vkube serve`` imports on its way to serving, so a child imports nothing more
WARM = ("vkube.cli.main", "vkube.cli.serve", "vkube.cli.serving", "vkube.cli.datalock",
        "vkube.cli.values_files", "vkube.cluster.virtual", "vkube.cluster.incluster",
        "vkube.cluster.inprocess", "vkube.cluster.stores", "vkube.apiserver.server",
        "vkube.apiserver.admission.config", "vkube.apiserver.audit",
        "vkube.apiserver.encryption", "vkube.apiserver.tokenauth", "vkube.apiserver.metrics",
        "vkube.apiserver.dialpolicy", "vkube.api.openapi", "vkube.api.tables",
        "vkube.client", "vkube.client.resources", "vkube.controllers.registry",
        "vkube.controllers.runtime", "vkube.controllers.informer", "vkube.controllers.leader",
        "vkube.controllers.nohost", "vkube.dns.server", "vkube.store.base",
        "vkube.syncer.syncer", "vkube.syncer.translate", "vkube.syncer.values", "uvloop")
# (not ``vkube.host.scheduler``: only ``enableScheduler`` runs it, and every child's RSS counts
# what the spare holds)
#: the kinds whose schemas a starting control plane resolves (leader election, the
#: ``kubernetes`` Service and its Endpoints, the root CA ConfigMap)
WARM_SCHEMAS = (("coordination.k8s.io", "v1", "Lease"), ("", "v1", "Service"),
                ("", "v1", "Endpoints"), ("", "v1", "ConfigMap"))
#: what a child may be asked to run: ``serve`` (for a supervisor) and the CLI commands
#: ``vkube.cli.forward`` hands over
COMMANDS = frozenset({"serve", "create", "delete", "pause", "resume"})
ROOM = 4096  # bytes of command line a child can show (``--room`` pads the spare's own)
MAX_REQUEST = 1 << 20


def _say(msg: str) -> None:
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} vkube-spare[{os.getpid()}]: {msg}",
          file=sys.stderr, flush=True)


def socket_name(path: str) -> tuple[str, int | None]:
    """A name ``bind``/``connect`` accept for ``path`` (unix socket paths are limited to 107
    bytes): the path itself, or ``/proc/self/fd/N/NAME`` through an open directory ``N``
    (returned, for the caller to close)."""
    if len(path.encode()) < 100:
        return path, None
    d, name = os.path.split(path)
    fd = os.open(d, os.O_PATH | os.O_DIRECTORY)
    return f"/proc/self/fd/{fd}/{name}", fd


def fingerprint() -> tuple[str, int]:
    """The interpreter and a digest of the code this process runs: a child must run the code a
    fresh ``python -m vkube`` would. Each loaded vkube source counts by inode, size, mtime
    and ctime (an edit whose mtime was put back with ``touch -r``, or a file replaced by
    ``cp -p``/``rsync -t``/``tar x``, still changes its ctime or inode), and each
    site-packages directory by its mtime (installing, upgrading or removing a dependency adds
    or renames entries there; not the working directory ``-m`` puts on ``sys.path``, which
    changes for unrelated reasons). ~1 ms for ~400 files."""
    import site

    parts: list[tuple[object, ...]] = []
    for name, mod in list(sys.modules.items()):
        f = getattr(mod, "__file__", None)
        if f and (name == "vkube" or name.startswith("vkube.")):
            try:
                st = os.stat(f)
            except OSError:
                parts.append((f, None))
                continue
            parts.append((f, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns))
    for d in [*site.getsitepackages(), site.getusersitepackages()]:
        with contextlib.suppress(OSError):
            parts.append((d, os.stat(d).st_mtime_ns))
    return sys.executable, hash(tuple(parts))


def _arg_area() -> tuple[int, int] | None:
    """[start, end) of this process's argv strings (``/proc/self/stat`` fields 48 and 49)."""
    try:
        fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[45]), int(fields[46])
    except (OSError, IndexError, ValueError):
        return None


def set_cmdline(argv: list[str], area: tuple[int, int]) -> None:
    """Write ``argv`` NUL-separated over the argv area (the rest NUL): ``/proc/PID/cmdline``
    then reads the new command line (with trailing empty arguments)."""
    start, end = area
    data = b"".join(a.encode() + b"\0" for a in argv)
    ctypes.memmove(start, data.ljust(end - start, b"\0"), end - start)


class Spare:
    def __init__(self, path: str) -> None:
        self.path = path
        self.parser: argparse.ArgumentParser | None = None
        self.area = _arg_area()
        self.print: tuple[str, int] = ("", 0)
        self.parent = os.getppid()
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.ino = 0

    def bind(self) -> None:
        """Listen before importing: a supervisor that connects meanwhile waits in the backlog
        (for less than a serve of its own would spend importing) instead of falling back."""
        name, dfd = socket_name(self.path)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        mask = os.umask(0o177)  # created 0600: no moment when another user may connect
        try:
            self.sock.bind(name)
        finally:
            os.umask(mask)
            if dfd is not None:
                os.close(dfd)
        self.ino = os.stat(self.path).st_ino
        self.sock.listen(16)

    def serve(self) -> int:
        self.print = fingerprint()
        _say(f"ready on {self.path} ({len(sys.modules)} modules loaded)")
        # a child is reaped as it ends (its CPU time then counts in this process's children's)
        signal.signal(signal.SIGCHLD, lambda *_: self._reap())
        self.sock.settimeout(1.0)
        try:
            while True:
                self._reap()
                try:
                    conn, _ = self.sock.accept()
                except TimeoutError:
                    if os.getppid() != self.parent:  # the host is gone (and so should we be)
                        return 0
                    continue
                with conn:
                    conn.settimeout(10.0)
                    if self._handle(conn, self.sock) == "stale":
                        return 0
        finally:
            self.close()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            if os.stat(self.path).st_ino == self.ino:  # not a successor's
                os.unlink(self.path)
        self.sock.close()

    def _reap(self) -> None:
        """Collect every child that ended (they are the only children this process has)."""
        while True:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if not pid:
                return

    def _handle(self, conn: socket.socket, listener: socket.socket) -> str:
        creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        _pid, uid, _gid = struct.unpack("3i", creds)
        if uid != os.getuid():
            return self._refuse(conn, "another user")
        try:
            cwd, argv, env, fds = _receive(conn)
        except (OSError, ValueError) as e:
            return self._refuse(conn, f"bad request: {e}")
        try:
            why = self._unfit(argv)
            if why:
                return self._refuse(conn, why)
            if fingerprint() != self.print:
                self._refuse(conn, "vkube's code changed since this spare started")
                return "stale"
            if threading.active_count() != 1:
                return self._refuse(conn, "the spare runs threads; forking it is unsafe")
            sys.stdout.flush()
            sys.stderr.flush()
            pid = os.fork()
            if pid == 0:
                listener.close()
                _child(conn, cwd, argv, env, fds, self.area, self.parser)  # never returns
            return "forked"
        finally:
            for fd in fds:
                os.close(fd)

    def _unfit(self, argv: list[str]) -> str | None:
        if argv[:3] != [sys.executable, "-m", "vkube"] or len(argv) < 4 or argv[3] not in COMMANDS:
            return f"not a `{sys.executable} -m vkube {'|'.join(sorted(COMMANDS))}` command"
        if self.area is None:
            return "cannot show the command line"
        if sum(len(a.encode()) + 1 for a in argv) > self.area[1] - self.area[0]:
            return "command line too long"
        return None

    @staticmethod
    def _refuse(conn: socket.socket, reason: str) -> str:
        with contextlib.suppress(OSError):
            conn.sendall(f"refused {reason}\n".encode())
        return "refused"


def _receive(conn: socket.socket) -> tuple[str, list[str], dict[str, str], list[int]]:
    """One request: a 4-byte length, then the NUL-separated fields; alongside, stdout and
    stderr (a supervisor: the cluster's log), or stdin, stdout and stderr (a CLI command)."""
    fds = array.array("i")
    msg, anc, _flags, _addr = conn.recvmsg(4, socket.CMSG_SPACE(3 * fds.itemsize))
    for level, kind, data in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(data[:len(data) - len(data) % fds.itemsize])
    try:
        if len(msg) != 4:
            raise ValueError("short header")
        (n,) = struct.unpack("!I", msg)
        if n > MAX_REQUEST or len(fds) not in (2, 3):
            raise ValueError("oversized request, or not [stdin,] stdout and stderr")
        body = b""
        while len(body) < n:
            chunk = conn.recv(n - len(body))
            if not chunk:
                raise ValueError("truncated request")
            body += chunk
        parts = body.decode("utf-8", "surrogateescape").split("\0")
        cwd, argc = parts[0], int(parts[1])
    except (OSError, ValueError, IndexError) as e:
        for fd in fds:
            os.close(fd)
        raise ValueError(str(e)) from None
    argv, rest = parts[2:2 + argc], parts[2 + argc:]
    env = dict(kv.split("=", 1) for kv in rest if "=" in kv)
    return cwd, argv, env, list(fds)


def _child(conn: socket.socket, cwd: str, argv: list[str], env: dict[str, str],
           fds: list[int], area: tuple[int, int] | None,
           parser: argparse.ArgumentParser | None) -> None:
    """In the forked child: become the requested ``vkube`` command and never return."""
    code = 1
    try:
        if argv[3] == "serve":
            os.setsid()  # its own session, as an exec'd child started with a new session
        for sig in (signal.SIGTERM, signal.SIGCHLD):  # not the spare's handlers
            signal.signal(sig, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        for target, fd in zip((0, 1, 2)[3 - len(fds):], fds):
            os.dup2(fd, target)
        for fd in fds:
            os.close(fd)
        _std_streams()
        os.chdir(cwd)
        os.environ.clear()
        os.environ.update(env)
        if area is not None:
            set_cmdline(argv, area)
        sys.argv = ["vkube", *argv[3:]]
        conn.settimeout(None)
        conn.sendall(f"pid {os.getpid()}\n".encode())
        threading.Thread(target=_watch, args=(conn,), daemon=True,
                         name="supervisor watch").start()
        from vkube.cli.main import main

        code = main(argv[3:], parser)
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except BaseException:  # noqa: BLE001 — report it as an exec'd serve's traceback would
        import traceback

        traceback.print_exc()
        code = 1
    finally:
        with contextlib.suppress(BaseException):
            import logging

            logging.shutdown()
            sys.stdout.flush()
            sys.stderr.flush()
        with contextlib.suppress(BaseException):
            conn.sendall(f"exit {code}\n".encode())
        os._exit(code & 0xFF)


def _std_streams() -> None:
    """New sys.stdin/stdout/stderr on fds 0-2, buffered as Python buffers them for what they
    now are (stdout line-buffered on a terminal), in the spare's encodings."""
    for fd, name, mode in ((0, "stdin", "r"), (1, "stdout", "w"), (2, "stderr", "w")):
        old = getattr(sys, name)
        line = fd == 2 or (fd == 1 and os.isatty(1))
        new = open(fd, mode, buffering=1 if line else -1, encoding=old.encoding,  # noqa: SIM115
                   errors=old.errors, closefd=False)
        setattr(sys, name, new)


def _watch(conn: socket.socket) -> None:
    """The supervisor's end closing means it died: stop, as PR_SET_PDEATHSIG would."""
    with contextlib.suppress(OSError):
        while conn.recv(64):
            pass
    os.kill(os.getpid(), signal.SIGTERM)


def warm() -> argparse.ArgumentParser:
    """Import what serve runs and build what every serve builds the same (the CLI parser,
    the built-in schemas' index, the bootstrap RBAC policy: per-process caches of derived
    data), then keep the collector off those objects (fewer pages a child copies when the
    collector walks them). Returns the parser."""
    from vkube.netio.trust import defer_aiohttp_trust_store

    defer_aiohttp_trust_store()
    import importlib

    from vkube.api import openapi_convert

    # the built-in schemas' compact source (~0.6 MiB) first: parsing the file frees ~3 MiB of
    # small blocks, which the imports below fill (parsed after them, those holes stayed
    # resident here; a child fills them with its own start-up, so its RSS is the same)
    openapi_convert.gvk_index()
    for name in WARM:
        importlib.import_module(name)
    from vkube.api.rbac.bootstrap import bootstrap_policy
    from vkube.cli.main import build_parser

    parser = build_parser()
    # the schemas every control plane resolves as it starts (~25 definitions); the rest on a
    # child's first use: all ~600 resolved here put ~6 MiB in every child's RSS
    resolver = openapi_convert.builtin_resolver()
    for gvk in WARM_SCHEMAS:
        resolver.definition(openapi_convert.gvk_index()[gvk])
    bootstrap_policy()
    gc.collect()
    gc.freeze()
    return parser


def _close_inherited() -> None:
    """Close every descriptor above stdio this process was started with. The host starts the
    spare on its uvloop loop, whose spawn leaves copies of the host's stdio (its log, opened
    for writing) at high descriptors; every ``serve`` forked from here would hold them too.
    Called first thing, when no object of this process owns a descriptor above 2."""
    for fd in [int(n) for n in os.listdir("/proc/self/fd") if n.isdigit()]:
        if fd > 2:
            with contextlib.suppress(OSError):
                os.close(fd)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m vkube.cli.spare")
    p.add_argument("--socket", required=True)
    p.add_argument("--room", default="", help="padding: room for a child's command line")
    args = p.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    _close_inherited()
    spare = Spare(args.socket)
    try:
        spare.bind()
        spare.parser = warm()
        return spare.serve()
    except SystemExit:
        return 0
    finally:
        spare.close()


def command(socket_path: str) -> list[str]:
    """How the host starts a spare."""
    return [sys.executable, "-m", "vkube.cli.spare", "--socket", socket_path, "--room", "." * ROOM]


if __name__ == "__main__":
    raise SystemExit(main())
