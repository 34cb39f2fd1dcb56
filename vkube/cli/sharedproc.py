"""The shared server process (``vkube serve --shared``) as the CLI drives it: started on first
use under the same supervisor as a dedicated cluster, in ``$VKUBE_HOME/shared``; clusters are
added, removed, put to sleep and woken by writing their member file and sending the server
SIGHUP (it reconciles; see ``vkube.cluster.shared``). The server answers through files in the
cluster's own data dir: ``ready`` (its URL), ``sleeping``, ``error``. Standard library only:
every verb of a shared cluster runs through here without an event loop."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from vkube.cli import state
from vkube.cli.output import CLIError
from vkube.cli.state import ClusterState

START_TIMEOUT = 60.0
#: how long one cluster may take to start inside the server (the server is busy with others)
MEMBER_TIMEOUT = 120.0
SLEEPING, RUNNING = "Sleeping", "Running"


def shared_dir() -> Path:
    return state.home() / "shared"


def data_dir() -> Path:
    return shared_dir() / "data"


def members_dir() -> Path:
    return data_dir() / "members"


def member_file(name: str) -> Path:
    return members_dir() / f"{name}.json"


def pid_file() -> Path:
    return shared_dir() / "supervisor.pid"


def log_file() -> Path:
    return shared_dir() / "vkube.log"


def _ready_file() -> Path:
    return data_dir() / "ready"


def server_url() -> str | None:
    try:
        return _ready_file().read_text().strip() or None
    except FileNotFoundError:
        return None


def supervisor_pid() -> int | None:
    from vkube.cli import process

    try:
        pid = int(pid_file().read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    cmd = process._cmdline(pid)
    if b"supervise" in cmd and str(pid_file()).encode() in cmd:
        return pid
    return None


def serve_pid() -> int | None:
    """The ``vkube serve --shared`` process (the supervisor's child)."""
    from vkube.cli import process

    sup = supervisor_pid()
    if sup is None:
        return None
    children = process.child_pids(sup)
    return children[0] if children else None


def pids() -> list[int]:
    sup = supervisor_pid()
    if sup is None:
        return []
    from vkube.cli import process

    return [sup, *process.child_pids(sup)]


@contextlib.contextmanager
def _start_lock() -> Iterator[None]:
    """Held while the server is started (or stopped when idle) and a member is written: two
    commands at once start one server, and an idle stop never races a member being added."""
    import fcntl

    shared_dir().mkdir(parents=True, exist_ok=True)
    with open(shared_dir() / "start.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def ensure_server(timeout: float = START_TIMEOUT) -> str:
    """The shared server's base URL, starting it (supervised, detached) if it is not running."""
    with _start_lock():
        return _ensure_server(timeout)


def _serve_member(st: ClusterState, desired: str, **extra: str) -> None:
    """Ensure the server runs and hand it ``st`` (under the start lock, see ``stop_if_idle``)."""
    with _start_lock():
        _ensure_server(START_TIMEOUT)
        _write_member(st, desired, **extra)


def stop_if_idle() -> bool:
    """Stop the shared server once it serves no cluster (every one paused, deleted or
    restored): it holds memory and a port for nothing. Whether it was stopped."""
    with _start_lock():
        if any(members_dir().glob("*.json")) or supervisor_pid() is None:
            return False
        return stop_server()


def _ensure_server(timeout: float) -> str:
    from vkube.cli import process

    if supervisor_pid() is not None and (url := server_url()) and serve_pid() is not None:
        return url
    if supervisor_pid() is not None:  # alive but not ready: starting, or restarting serve
        return _wait_server(None, 0, timeout)
    shared_dir().mkdir(parents=True, exist_ok=True)
    data_dir().mkdir(parents=True, exist_ok=True)
    members_dir().mkdir(parents=True, exist_ok=True)
    _ready_file().unlink(missing_ok=True)
    port_file = shared_dir() / "port"
    try:
        port = int(port_file.read_text())
    except (FileNotFoundError, ValueError):
        port = 0
    if not port or not process.port_free(port):
        port = process.free_port()
        port_file.write_text(f"{port}\n")
    serve = [sys.executable, "-m", "vkube", "serve", "--shared", "--data-dir", str(data_dir()),
             "--port", str(port)]
    cmd = [sys.executable, "-S", "-P", str(process.SUPERVISOR), "--pid-file", str(pid_file()),
           "--ready-file", str(_ready_file()), "--", *serve]
    offset = log_file().stat().st_size if log_file().exists() else 0
    with open(log_file(), "ab") as log:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                start_new_session=True, cwd=str(shared_dir()))
    return _wait_server(proc, offset, timeout)


def _wait_server(proc: subprocess.Popen[bytes] | None, offset: int, timeout: float) -> str:
    from vkube.cli import process

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        url = server_url()
        if url and serve_pid() is not None:
            if proc is not None:
                proc.returncode = 0  # detached on purpose
            return url
        if proc is not None and proc.poll() is not None:
            break
        time.sleep(0.01)
    raise CLIError("the shared server did not become ready — see "
                   f"{log_file()}; last lines:\n{process._tail(log_file(), offset)}")


def _signal_server() -> None:
    pid = serve_pid()
    if pid is None:
        raise CLIError("the shared server is not running — `vkube create --shared NAME` "
                       "starts it")
    os.kill(pid, signal.SIGHUP)


def registered(st: ClusterState) -> bool:
    return member_file(st.name).exists()


def _read_member(name: str) -> dict[str, object]:
    try:
        return json.loads(member_file(name).read_text())
    except (FileNotFoundError, ValueError):
        return {}


def _write_member(st: ClusterState, desired: str, **extra: str) -> None:
    from vkube.cli import syncercred

    old = _read_member(st.name)
    # the syncer's confined credential (its host ServiceAccount's token), as a dedicated
    # cluster's serve gets it: never the user's own host credential when one was confined
    kubeconfig, context = syncercred.for_syncer(st)
    doc = {"name": st.name, "dataDir": str(st.data_dir),
           "host": {"kubeconfig": kubeconfig, "context": context,
                    "namespace": st.namespace, "kind": st.host_kind},
           "valuesFile": str(st.values_file) if st.values_file.exists() else None,
           "logFile": str(st.log_file),  # the cluster's own lines (``vkube logs NAME``)
           "generation": int(old.get("generation") or 0) + 1,  # type: ignore[call-overload]
           "desired": desired, **extra}
    members_dir().mkdir(parents=True, exist_ok=True)
    tmp = members_dir() / f".{st.name}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(doc, indent=2) + "\n")
    tmp.replace(member_file(st.name))


def start(st: ClusterState, timeout: float = MEMBER_TIMEOUT) -> str:
    """Serve ``st`` in the shared server (started on first use); its URL once it answers."""
    for name in ("ready", "error", "sleeping"):
        (st.data_dir / name).unlink(missing_ok=True)
    st.data_dir.mkdir(parents=True, exist_ok=True)
    _serve_member(st, RUNNING)
    _signal_server()
    return wait_member(st, timeout)


def wait_member(st: ClusterState, timeout: float = MEMBER_TIMEOUT) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            url = (st.data_dir / "ready").read_text().strip()
            if url:
                return url
        except FileNotFoundError:
            pass
        try:
            error = (st.data_dir / "error").read_text().strip()
        except FileNotFoundError:
            error = ""
        if error:
            raise CLIError(f"the shared server could not start {st.name!r}: {error} — see "
                           f"{log_file()}")
        if supervisor_pid() is None:
            raise CLIError(f"the shared server stopped — see {log_file()}")
        time.sleep(0.01)
    raise CLIError(f"{st.name!r} did not start in the shared server within {timeout:.0f}s — "
                   f"see {log_file()}")


def stop(st: ClusterState, timeout: float = 60.0) -> bool:
    """Stop serving ``st`` (its data stays in the shared store); whether it was served."""
    if not registered(st):
        return False
    member_file(st.name).unlink(missing_ok=True)
    if serve_pid() is None:
        return True
    _signal_server()
    deadline = time.monotonic() + timeout
    while (st.data_dir / "ready").exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    return True


def delete(st: ClusterState, timeout: float = MEMBER_TIMEOUT) -> bool:
    """Stop serving ``st`` and remove its data from the shared store (the server does both
    and then removes the member file); whether it was being served."""
    was = registered(st) and _read_member(st.name).get("desired") != "Deleted"
    _serve_member(st, "Deleted")
    _signal_server()
    deadline = time.monotonic() + timeout
    while registered(st):
        if time.monotonic() > deadline:
            raise CLIError(f"the shared server did not remove {st.name!r} within "
                           f"{timeout:.0f}s — see {log_file()}")
        if supervisor_pid() is None:
            raise CLIError(f"the shared server stopped — see {log_file()}")
        time.sleep(0.01)
    return was


def restore(st: ClusterState, snapshot: str, timeout: float = 600.0,
            allow: frozenset[str] = frozenset(), key_file: str = "") -> dict[str, int]:
    """Have the shared server restore ``snapshot`` under ``st``'s prefix (the cluster is not
    served meanwhile), allowing the grants named in ``allow`` (all of them if the file is
    signed with the key in ``key_file``); the counts it reports."""
    result, error = st.data_dir / "restored", st.data_dir / "error"
    result.unlink(missing_ok=True)
    error.unlink(missing_ok=True)
    st.data_dir.mkdir(parents=True, exist_ok=True)
    _serve_member(st, "Restore", snapshot=str(Path(snapshot).resolve()),
                  allow=",".join(sorted(allow)), keyFile=key_file)
    _signal_server()
    deadline = time.monotonic() + timeout
    while registered(st):
        if time.monotonic() > deadline:
            raise CLIError(f"the shared server did not restore {st.name!r} within "
                           f"{timeout:.0f}s — see {log_file()}")
        time.sleep(0.02)
    if error.exists():
        raise CLIError(f"restore of {st.name!r} failed: {error.read_text().strip()}")
    try:
        return json.loads(result.read_text())  # type: ignore[no-any-return]
    except (FileNotFoundError, ValueError):
        raise CLIError(f"the shared server reported no restore of {st.name!r} — see "
                       f"{log_file()}") from None


def set_sleeping(st: ClusterState, sleeping: bool, timeout: float = MEMBER_TIMEOUT) -> None:
    """``vkube sleep`` / ``vkube wake``: returns once the server did it."""
    if not registered(st) or serve_pid() is None:
        raise CLIError(f"virtual cluster {st.name!r} is not running — `vkube resume {st.name}` "
                       "first")
    _write_member(st, SLEEPING if sleeping else RUNNING)
    _signal_server()
    marker = st.data_dir / "sleeping"
    deadline = time.monotonic() + timeout
    while marker.exists() != sleeping:
        if time.monotonic() > deadline:
            raise CLIError(f"{st.name!r} did not {'sleep' if sleeping else 'wake'} within "
                           f"{timeout:.0f}s — see {log_file()}")
        time.sleep(0.01)
    if not sleeping:
        wait_member(st, timeout)


def is_sleeping(st: ClusterState) -> bool:
    return registered(st) and (st.data_dir / "sleeping").exists()


def stop_server(timeout: float = 30.0) -> bool:
    """Stop the shared server (every shared cluster with it)."""
    sup = supervisor_pid()
    if sup is None:
        return False
    from vkube.cli import process

    children = process.child_pids(sup)
    os.kill(sup, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not process._alive(sup) and not any(process._alive(c) for c in children):
            return True
        time.sleep(0.02)
    for p in [sup, *children]:
        if process._alive(p):
            os.kill(p, signal.SIGKILL)
    return True
