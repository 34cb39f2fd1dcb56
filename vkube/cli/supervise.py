"""``python -S -P .../vkube/cli/supervise.py --pid-file F --ready-file R -- CMD...`` (or
``python -m vkube.cli.supervise ...``): a tiny supervisor that keeps one ``vkube serve``
running — restarting it with backoff when it dies unexpectedly — until SIGTERM, which it
forwards and waits for. It imports only the standard library (it runs as a file, without
site) so it starts fast and costs a few MB of RSS.

``--pid-file F --children SPEC.json`` keeps several children running instead (``enableHA``:
one ``serve`` per replica and the loopback front that kubectl talks to), each restarted on
its own; SPEC is ``[{"name", "cmd", "ready", "essential", "env"}]``.

It gives up (exit 1) after several quick failures in a row: a control plane that cannot start
should show as Failed, not burn a core. With several children, a replica that keeps failing
is left down while the others serve; the supervisor gives up when an essential child (the
front) does, or when no other child is left.

Children die with it, even when it is killed with SIGKILL: on Linux each child asks the kernel
for SIGTERM when its parent dies (``prctl(PR_SET_PDEATHSIG)``, set between fork and exec), so
``serve`` shuts down cleanly instead of serving on, unsupervised, a store that the next
supervisor's ``serve`` would open too. As a second line, the supervisor records its children
(pid and start time) in ``PIDFILE.children``; a new supervisor, or ``vkube pause``/``delete``
finding none alive, first stops any recorded child still running (SIGTERM, then SIGKILL after
``STOP_GRACE``)."""

from __future__ import annotations

import _signal as signal  # the C module: ``signal`` adds enum, functools, collections (~0.8 MiB)
import os
import sys
import time
from collections.abc import Callable  # already loaded by the interpreter's start-up

# Only os, signal, sys and time at module level: ``subprocess`` (with threading and selectors),
# ``json`` (with re) and ``typing`` cost ~3 MiB of RSS here, for the life of every cluster. Children
# are started with fork + exec (``Process``); json is imported on the rare paths that read it.

BACKOFF = (0.5, 1, 2, 4, 8, 15, 30)
QUICK = 10.0  # a child that lived less than this counts as a quick failure
MAX_QUICK_FAILURES = 5
STOP_GRACE = 20.0
POLL = 0.05
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


class Child:
    """One supervised command and the ready file its process writes (removed when it dies)."""

    def __init__(self, name: str, cmd: list[str], ready: str, essential: bool = False,
                 env: dict[str, str] | None = None, spare: str | None = None) -> None:
        self.name = name
        #: the socket of a fork server to ask first (``vkube.cli.spare``)
        self.spare = spare
        self.env = {**os.environ, **env} if env else None
        self.cmd = cmd
        self.ready = ready
        self.essential = essential
        self.proc: Process | RemoteProcess | None = None
        self.started = 0.0
        self.restart_at = 0.0
        self.quick_failures = 0
        self.gave_up = False

    def start(self, preexec: Callable[[], Callable[[], None] | None] = lambda: None) -> None:
        """``preexec()``: the ``preexec_fn`` of a fork + exec (asked only for one: it loads
        ctypes, which a serve forked by the spare does not need)."""
        self.started = time.monotonic()
        if self.spare is not None:
            self.proc = RemoteProcess.spawn(self.spare, self.cmd, self.env or dict(os.environ))
            if self.proc is not None:
                return
        self.proc = Process.spawn(self.cmd, env=self.env, preexec=preexec())

    def exited(self) -> int | None:
        """The exit code once the process is gone (reaped), else None."""
        return None if self.proc is None else self.proc.poll()

    def unready(self) -> None:
        _unlink(self.ready)


class _Ending:
    """What the supervisor does with a child, given ``poll`` (None while it runs): wait for
    it, signal it only while it is known to run (a reaped pid may be reused; a spare's child
    whose EOF is not yet read is still the child's), kill it."""

    pid: int

    def poll(self) -> int | None:
        raise NotImplementedError

    def wait(self, timeout: float | None = None) -> int:
        """Until the child exits; ``TimeoutError`` after ``timeout`` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while (rc := self.poll()) is None:
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"pid {self.pid} still running after {timeout}s")
            time.sleep(0.01)
        return rc

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:
            _signal(self.pid, sig)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


class Process(_Ending):
    """A child started with fork + exec, as ``subprocess.Popen(cmd, stdin=DEVNULL, env=env,
    preexec_fn=preexec)`` starts it (stdout/stderr inherited; signals the interpreter ignores
    are reset to their defaults, so the child sees SIGPIPE) — with the few methods the
    supervisor uses. This process is single-threaded, so running Python between fork and exec
    is safe. A command that cannot be executed exits 127, as a shell's would."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None

    @classmethod
    def spawn(cls, cmd: list[str], *, env: dict[str, str] | None = None,
              preexec: Callable[[], None] | None = None) -> "Process":
        pid = os.fork()
        if pid == 0:  # the child: never return into the supervisor's code
            try:
                for sig in (signal.SIGTERM, signal.SIGINT):  # not the supervisor's handlers
                    signal.signal(sig, signal.SIG_DFL)
                null = os.open(os.devnull, os.O_RDONLY)
                os.dup2(null, 0)
                for name in ("SIGPIPE", "SIGXFZ", "SIGXFSZ"):
                    if hasattr(signal, name):
                        signal.signal(getattr(signal, name), signal.SIG_DFL)
                if preexec is not None:
                    preexec()
                os.execvpe(cmd[0], cmd, os.environ if env is None else env)
            except BaseException as e:  # noqa: BLE001 — report and leave, whatever it was
                try:
                    os.write(2, f"vkube-supervisor: cannot run {cmd[0]}: {e}\n".encode())
                finally:
                    os._exit(127)
        return cls(pid)

    def poll(self) -> int | None:
        """The exit code once the child is gone (reaped), else None; -N for signal N."""
        if self.returncode is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:  # reaped elsewhere: gone, code unknown
                self.returncode = 255
                return self.returncode
            if pid == self.pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode



class RemoteProcess(_Ending):
    """A child forked by the spare (``vkube.cli.spare``) at our request: not our child, so
    its end is read from its connection — ``exit N`` as it ends, EOF alone when it was killed
    (its code is then unknown: 255). The child stops itself when this process dies and the
    connection closes, as ``PR_SET_PDEATHSIG`` makes an exec'd child do."""

    TIMEOUT = 60.0  # a spare still importing after its start answers within this

    def __init__(self, sock: "object", pid: int) -> None:
        self.sock = sock
        self.pid = pid
        self.returncode: int | None = None
        self.buf = b""

    @classmethod
    def spawn(cls, path: str, cmd: list[str], env: dict[str, str]) -> "RemoteProcess | None":
        """Ask the spare at ``path`` to fork ``cmd``; None (said why) when it cannot."""
        import _socket as socket  # the C module: ``socket`` would import selectors, enum, ...
        import array
        import _struct as struct

        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        dfd = None
        try:
            s.settimeout(cls.TIMEOUT)
            name = path
            if len(path.encode()) >= 100:  # unix socket paths are limited to 107 bytes
                d, base = os.path.split(path)
                dfd = os.open(d, os.O_PATH | os.O_DIRECTORY)
                name = f"/proc/self/fd/{dfd}/{base}"
            s.connect(name)
            # the listener must run as us: our environment goes to it and we signal the pid
            # it names (vkube.cli.forward.listener_is_ours; this file runs without vkube)
            if struct.unpack("3i", s.getsockopt(1, 17, 12))[1] != os.getuid():  # SO_PEERCRED
                _say(f"the spare at {path} runs as another user; starting serve without it")
                s.close()
                return None
            payload = "\0".join([os.getcwd(), str(len(cmd)), *cmd,
                                  *(f"{k}={v}" for k, v in env.items())]).encode("utf-8", "surrogateescape")
            s.sendmsg([len(payload).to_bytes(4, "big")],
                      [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [1, 2]))])
            s.sendall(payload)
            line = b""
            while not line.endswith(b"\n"):
                chunk = s.recv(256)
                if not chunk:
                    break
                line += chunk
        except OSError as e:
            s.close()
            if not isinstance(e, (FileNotFoundError, ConnectionRefusedError)):  # no spare: quiet
                _say(f"the spare at {path} did not answer ({e}); starting serve without it")
            return None
        finally:
            if dfd is not None:
                os.close(dfd)
        first, _, rest = line.partition(b"\n")
        if first.startswith(b"pid ") and first[4:].isdigit():
            proc = cls(s, int(first[4:]))
            proc.buf = rest
            s.setblocking(False)
            return proc
        s.close()
        _say(f"the spare at {path} did not start serve "
             f"({first.decode(errors='replace') or 'no answer'}); starting it without the spare")
        return None

    def poll(self) -> int | None:
        if self.returncode is not None:
            return self.returncode
        while True:
            try:
                chunk = self.sock.recv(256)  # type: ignore[attr-defined]
            except BlockingIOError:
                return None
            except OSError:
                chunk = b""
            if not chunk:  # the child is gone: its last words, else killed
                code = 255
                for line in self.buf.split(b"\n"):
                    if line.startswith(b"exit ") and line[5:].lstrip(b"-").isdigit():
                        code = int(line[5:])
                self.returncode = code
                self.sock.close()  # type: ignore[attr-defined]
                return code
            self.buf = (self.buf + chunk)[-1024:]



def _die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` making the child get SIGTERM when this process dies (Linux), or None
    where ``prctl`` is missing. libc is loaded here, before any fork."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def preexec() -> None:  # in the child, between fork and exec: no allocation-heavy work
        prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    return preexec


def _start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (with the pid, names it uniquely);
    None when it is gone or a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return None if fields[0] in ("Z", "X") else int(fields[19])


def record_file(pid_file: str) -> str:
    return pid_file + ".children"


def stop_leftovers(pid_file: str, grace: float = STOP_GRACE) -> list[int]:
    """Stop the children an earlier supervisor of ``pid_file`` recorded that still run (it
    died without stopping them): SIGTERM, SIGKILL after ``grace``. Returns their pids."""
    path = record_file(pid_file)
    try:
        with open(path) as f:
            text = f.read()
        import json  # only here: a supervisor died without cleaning up (rare)

        entries = [(int(pid), int(start)) for pid, start in json.loads(text)]
    except (OSError, ValueError, TypeError):
        return []
    left = {pid: start for pid, start in entries
            if pid != os.getpid() and _start_time(pid) == start}

    def running() -> list[int]:  # still the recorded process, not another that got its pid
        return [pid for pid, start in left.items() if _start_time(pid) == start]

    for pid in left:
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while running() and time.monotonic() < deadline:
        time.sleep(POLL)
    for pid in running():
        _signal(pid, signal.SIGKILL)
    _unlink(path)
    return list(left)


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


class Supervisor:
    def __init__(self, children: list[Child], pid_file: str) -> None:
        self.children = children
        self.pid_file = pid_file
        self.stopping = False
        self.single = len(children) == 1
        self._preexec: list[Callable[[], None] | None] = []  # made on first use

    def preexec(self) -> Callable[[], None] | None:
        if not self._preexec:
            self._preexec.append(_die_with_parent())
        return self._preexec[0]

    def _record(self) -> None:
        """Write which children run now (pid, start time), for a successor to clean up."""
        live = [f"[{c.proc.pid}, {t}]" for c in self.children
                if c.proc is not None and (t := _start_time(c.proc.pid)) is not None]
        path = record_file(self.pid_file)
        try:
            with open(path + ".tmp", "w") as f:
                f.write(f"[{', '.join(live)}]\n")  # JSON, without importing json
            os.replace(path + ".tmp", path)
        except OSError as e:
            _say(f"cannot record the children in {path}: {e}")

    def _on_signal(self, signum: int, _frame: object) -> None:
        self.stopping = True
        for c in self.children:
            if c.proc is not None and c.proc.poll() is None:
                c.proc.send_signal(signal.SIGTERM)

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        left = stop_leftovers(self.pid_file)
        if left:
            _say(f"stopped {len(left)} process(es) an earlier supervisor left running: "
                 + ", ".join(map(str, left)))
        with open(self.pid_file, "w") as f:
            f.write(f"{os.getpid()}\n")
        try:
            return self._loop()
        finally:
            self._stop_all()
            _unlink(record_file(self.pid_file))
            try:
                with open(self.pid_file) as f:
                    if f.read().strip() == str(os.getpid()):
                        os.unlink(self.pid_file)
            except OSError:
                pass

    def _loop(self) -> int:
        while not self.stopping:
            now = time.monotonic()
            for c in self.children:
                if c.gave_up:
                    continue
                if c.proc is None:
                    if now >= c.restart_at:
                        c.start(self.preexec)
                        self._record()
                        if self.stopping:  # SIGTERM came between the test and the start
                            c.proc.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
                    continue
                rc = c.exited()
                if rc is None:
                    continue
                c.unready()  # a killed serve cannot remove it itself
                c.proc = None
                self._record()
                if self.stopping:
                    return 0
                if self._failed(c, rc, now) and self._hopeless(c):
                    return 1
            time.sleep(POLL)
        return 0

    def _failed(self, c: Child, rc: int, now: float) -> bool:
        """Schedule the restart of ``c`` with back-off; True if it is given up."""
        lived = now - c.started
        c.quick_failures = c.quick_failures + 1 if lived < QUICK else 0
        who = "serve" if self.single else c.name
        if c.quick_failures >= MAX_QUICK_FAILURES:
            _say(f"{who} failed {c.quick_failures} times in a row (last exit code {rc}); "
                 "giving up" + ("" if self.single else " on it"))
            c.gave_up = True
            return True
        delay = BACKOFF[min(c.quick_failures, len(BACKOFF) - 1)]
        _say(f"{who} exited with code {rc} after {lived:.1f}s; restarting in {delay}s")
        c.restart_at = now + delay
        return False

    def _hopeless(self, c: Child) -> bool:
        return c.essential or all(o.gave_up or o.essential for o in self.children)

    def _stop_all(self) -> None:
        """SIGTERM every child still running, wait up to STOP_GRACE, then SIGKILL."""
        running = [c for c in self.children if c.proc is not None and c.proc.poll() is None]
        if not self.stopping:  # else the signal handler has sent it: a second may cut cleanup
            for c in running:
                c.proc.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
        deadline = time.monotonic() + STOP_GRACE
        for c in running:
            assert c.proc is not None
            try:
                c.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                _say(f"{'serve' if self.single else c.name} did not stop within "
                     f"{STOP_GRACE:g}s; killing it")
                c.proc.kill()
                c.proc.wait()
        for c in self.children:
            c.unready()


def _say(msg: str) -> None:
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} vkube-supervisor: {msg}", file=sys.stderr,
          flush=True)


USAGE = ("usage: python -m vkube.cli.supervise --pid-file FILE --ready-file FILE [--spare SOCKET] -- CMD...\n"
         "       python -m vkube.cli.supervise --pid-file FILE --children SPEC.json")


def main(argv: list[str]) -> int:
    if len(argv) == 4 and argv[0] == "--pid-file" and argv[2] == "--children":
        import json

        try:
            with open(argv[3]) as f:
                spec = json.load(f)
            children = [Child(c["name"], list(c["cmd"]), c["ready"], bool(c.get("essential")),
                              {str(k): str(v) for k, v in (c.get("env") or {}).items()})
                        for c in spec]
        except (OSError, ValueError, KeyError, TypeError) as e:
            print(f"vkube-supervisor: {argv[3]}: {e}", file=sys.stderr)
            return 2
        if not children:
            print(f"vkube-supervisor: {argv[3]} names no child", file=sys.stderr)
            return 2
        return Supervisor(children, argv[1]).run()
    spare = None
    if len(argv) > 6 and argv[4] == "--spare":
        spare = argv[5]
        argv = argv[:4] + argv[6:]
    if len(argv) < 6 or argv[0] != "--pid-file" or argv[2] != "--ready-file" or argv[4] != "--":
        print(USAGE, file=sys.stderr)
        return 2
    return Supervisor([Child("serve", argv[5:], argv[3], spare=spare)], argv[1]).run()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
