"""The control-plane process of one virtual cluster: start it detached under the supervisor,
wait until ``vkube serve`` reports ready, stop it, and measure it (pids, RSS)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from vkube.cli import supervise, syncercred
from vkube.cli.output import CLIError
from vkube.cli.state import ClusterState

START_TIMEOUT = 60.0
# A stat() every 5 ms costs nothing; a growing back-off used to notice "ready" up to 100 ms late.
READY_POLL = 0.005
STOP_TIMEOUT = 30.0
SUPERVISOR = Path(__file__).resolve().with_name("supervise.py")
FRONT = Path(__file__).resolve().with_name("front.py")


#: where a server's port is picked when the kernel's ephemeral range is unknown (Linux default)
EPHEMERAL_DEFAULT = (32768, 60999)
PORT_FLOOR = 10000  # below: well-known and registered services


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[:2]
        return int(low), int(high)
    except (OSError, ValueError):
        return EPHEMERAL_DEFAULT


def free_port() -> int:
    """A free port outside the kernel's ephemeral range: a port from that range (what binding
    port 0 gives) can be taken by any outgoing connection as its source port while the server
    is down, and its restart (after ``kill -9``, a crash, a pause) then fails with "address
    already in use" — SO_REUSEADDR does not help against a connected socket. Falls back to an
    ephemeral port when the range leaves no room."""
    import random

    low, high = _ephemeral_range()
    spans = [(a, b) for a, b in ((PORT_FLOOR, low - 1), (high + 1, 65535)) if b - a > 1000]
    for _ in range(64 if spans else 0):
        a, b = random.choice(spans)
        port = random.randint(a, b)
        if port_free(port):
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def ensure_port(st: ClusterState) -> None:
    """Keep the port of earlier runs (kubeconfig contexts stay valid) unless it is taken."""
    if st.shared:  # the shared server's port is its own
        return
    if not st.port or not port_free(st.port):
        st.port = free_port()
        st.save()


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def running_pid(st: ClusterState) -> int | None:
    """The live supervisor of this virtual cluster (a stale pid file is ignored); for a
    shared cluster, the shared server's, while it serves this cluster."""
    if st.shared:
        from vkube.cli import sharedproc

        return sharedproc.supervisor_pid() if sharedproc.registered(st) else None
    try:
        pid = int(st.pid_file.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    cmd = _cmdline(pid)
    if (b"vkube.cli.supervise" in cmd or str(SUPERVISOR).encode() in cmd) \
            and str(st.pid_file).encode() in cmd:
        return pid
    return None


def ready_url(st: ClusterState) -> str | None:
    try:
        return (st.data_dir / "ready").read_text().strip() or None
    except FileNotFoundError:
        return None


def dns_address(st: ClusterState) -> str | None:
    """``HOST:PORT`` of the cluster DNS, written by serve once it listens (with replicas, by
    the one that leads: it runs the DNS)."""
    for d in [st.data_dir, *(r for r in replica_dirs(st) if (r / "ready").exists())]:
        try:
            return (d / "dns").read_text().strip() or None
        except FileNotFoundError:
            continue
    return None


def exposed_url(st: ClusterState) -> str | None:
    """The exposed API address (``expose: true``), written by serve once it works."""
    try:
        return (st.data_dir / "exposed").read_text().strip() or None
    except FileNotFoundError:
        return None


def wait_exposed(st: ClusterState, timeout: float = 60.0) -> str:
    deadline = time.monotonic() + timeout
    while (url := exposed_url(st)) is None:
        if time.monotonic() > deadline:
            raise CLIError(f"{st.name}: the API server was not exposed within {timeout:.0f}s — "
                           f"see `vkube logs {st.name}`")
        time.sleep(0.05)
    return url


def host_file(st: ClusterState) -> Path:
    """Where ``create`` names the host for a control plane started with ``--host-from``."""
    return st.dir / "host.json"


def write_host_file(st: ClusterState) -> None:
    """Atomically (tmp + rename): serve reads the file as soon as it exists."""
    kubeconfig, context = syncercred.for_syncer(st)
    doc = {"kubeconfig": kubeconfig, "context": context,
           "namespace": st.namespace, "kind": st.host_kind}
    tmp = st.dir / f"host.json.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(doc) + "\n")
    tmp.replace(host_file(st))


def replica_count(st: ClusterState) -> int:
    """API server replicas this cluster runs locally (``enableHA`` on a shared store)."""
    from vkube.cli.replicas import wanted

    return wanted(st.values or {})


def replica_dirs(st: ClusterState) -> list[Path]:
    """One data dir per replica (its ready file, kubeconfig, DNS address, audit log); the
    objects live in the shared store. Empty for a single-process cluster."""
    n = replica_count(st)
    return [st.data_dir / f"replica-{i}" for i in range(n)] if n > 1 else []


def serve_command(st: ClusterState, *, host_from: bool = False, data_dir: Path | None = None,
                  port: int | None = None) -> list[str]:
    """``host_from``: the host is not known yet, serve waits for ``host_file(st)``.
    ``data_dir``/``port``: one replica of several (default: the cluster's own)."""
    cmd = [sys.executable, "-m", "vkube", "serve", "--name", st.name,
           "--data-dir", str(data_dir or st.data_dir),
           "--port", str(st.port if port is None else port)]
    if host_from:
        cmd += ["--host-from", str(host_file(st)), "--host-namespace", st.namespace]
    else:
        kubeconfig, context = syncercred.for_syncer(st)  # confined on the embedded host
        cmd += ["--host-kubeconfig", kubeconfig, "--host-namespace", st.namespace,
                "--host-kind", st.host_kind]
        if context:  # pinned: `vkube connect` later changes the file's current context
            cmd += ["--host-context", context]
    if st.values_file.exists():
        cmd += ["-f", str(st.values_file)]
    if (st.values or {}).get("enableHA"):
        # one secrets key for every replica, given to each, rather than one kept in the store
        # next to the secrets it encrypts (what replicas without the flag agree on)
        from vkube.cluster.config import shared_encryption_config

        cmd += ["--encryption-config", str(shared_encryption_config(st.data_dir))]
    return cmd


@dataclass
class Spawned:
    """A supervisor just started, not yet ready."""

    proc: subprocess.Popen[bytes]
    log_offset: int


def start(st: ClusterState, timeout: float = START_TIMEOUT) -> str:
    """Spawn the supervisor (new session, output to the log) and wait for ``data/ready``;
    returns the API server URL. Keeps the port of earlier runs when it is still free."""
    if running_pid(st) is not None:
        raise CLIError(f"virtual cluster {st.name!r} is already running — "
                       f"use `vkube pause {st.name}` first")
    if st.shared:
        from vkube.cli import sharedproc

        return sharedproc.start(st)
    ensure_port(st)
    return wait_ready(st, spawn(st), timeout)


def _replicated_command(st: ClusterState, host_from: bool) -> list[str]:
    """The supervisor of N ``serve`` replicas (each on a free port, in its own data dir) and
    of the front on the cluster's port; its spec goes to a file next to the pid file."""
    dirs = replica_dirs(st)
    children = []
    for i, d in enumerate(dirs):
        d.mkdir(parents=True, exist_ok=True)
        (d / "ready").unlink(missing_ok=True)
        children.append({"name": f"replica {i}", "ready": str(d / "ready"),
                         "env": {"VKUBE_LOG_TAG": f"replica-{i}"},
                         "cmd": serve_command(st, host_from=host_from, data_dir=d, port=0)})
    children.append({"name": "front", "ready": str(st.data_dir / "ready"), "essential": True,
                     "cmd": [sys.executable, "-S", "-P", str(FRONT), "--listen", str(st.port),
                             "--data-dir", str(st.data_dir), *map(str, dirs)]})
    spec = st.dir / "supervise.json"
    spec.write_text(json.dumps(children, indent=2) + "\n")
    return [sys.executable, "-S", "-P", str(SUPERVISOR), "--pid-file", str(st.pid_file),
            "--children", str(spec)]


def spawn(st: ClusterState, *, host_from: bool = False) -> Spawned:
    """Start the supervisor and return at once (``st.port`` must be set; the state file is
    not touched, so ``create`` can start the control plane before it knows the host)."""
    st.data_dir.mkdir(parents=True, exist_ok=True)
    (st.data_dir / "ready").unlink(missing_ok=True)
    st.pid_file.unlink(missing_ok=True)
    if replica_count(st) > 1:
        cmd = _replicated_command(st, host_from)
    else:
        # -S and a file path: the supervisor is stdlib-only, so it skips site and the package
        # finder and starts serve ~10 ms sooner (-P: its directory must not shadow the stdlib).
        cmd = [sys.executable, "-S", "-P", str(SUPERVISOR), "--pid-file", str(st.pid_file),
               "--ready-file", str(st.data_dir / "ready"), *_spare_flag(), "--",
               *serve_command(st, host_from=host_from)]
    log_offset = st.log_file.stat().st_size if st.log_file.exists() else 0
    with open(st.log_file, "ab") as log:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                start_new_session=True, cwd=str(st.dir))
    return Spawned(proc, log_offset)


def spare_socket() -> Path:
    """Where the embedded host's spare (``vkube.cli.spare``) listens."""
    from vkube.cli.state import home

    return home() / "host" / "spare.sock"


def _spare_flag() -> list[str]:
    """``--spare SOCKET`` when a spare listens: serve is forked from it, modules loaded."""
    sock = spare_socket()
    return ["--spare", str(sock)] if sock.is_socket() else []


def wait_ready(st: ClusterState, sp: Spawned, timeout: float = START_TIMEOUT) -> str:
    proc = sp.proc
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        url = ready_url(st)
        if url:
            proc.returncode = 0  # detached on purpose: no "still running" warning at exit
            return url
        if proc.poll() is not None:
            break
        time.sleep(READY_POLL)
    if proc.poll() is None:
        proc.terminate()
        proc.wait(10)
    tail = _tail(st.log_file, sp.log_offset)
    raise CLIError(f"the control plane of {st.name!r} did not become ready — see "
                   f"`vkube logs {st.name}`; last lines:\n{tail}")


def abort(sp: Spawned, timeout: float = STOP_TIMEOUT) -> None:
    """Stop a supervisor we spawned, whether or not it got as far as its pid file: SIGTERM to
    its whole session (supervisor and serve), wait for both, SIGKILL what is left."""
    proc = sp.proc
    children = child_pids(proc.pid)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None and not any(_alive(c) for c in children):
            return
        time.sleep(0.01)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def stop(st: ClusterState, timeout: float = STOP_TIMEOUT) -> bool:
    """SIGTERM the supervisor (it stops serve) and wait; returns whether one was running.
    A shared cluster leaves the shared server, which keeps serving the others."""
    if st.shared:
        from vkube.cli import sharedproc

        return sharedproc.stop(st, timeout)
    pid = running_pid(st)
    if pid is None:
        # a supervisor killed outright: its children got SIGTERM from the kernel; any that
        # is still running (or predates that) is stopped from its record
        return bool(supervise.stop_leftovers(str(st.pid_file), timeout))
    children = supervised_pids(pid, st.pid_file)
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    delay = 0.01
    while time.monotonic() < deadline:
        if not _alive(pid) and not any(_alive(c) for c in children):
            return True
        time.sleep(delay)
        delay = min(delay * 1.5, 0.02)
    for p in [pid, *children]:
        if _alive(p):
            os.kill(p, signal.SIGKILL)
    return True


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def supervised_pids(pid: int, pid_file: Path) -> list[int]:
    """The children of supervisor ``pid``: its own, and those it recorded that are not (a
    serve forked by the spare, ``vkube.cli.spare``), while still the recorded processes."""
    out = child_pids(pid)
    try:
        entries = json.loads(Path(supervise.record_file(str(pid_file))).read_text())
        recorded = [(int(p), int(t)) for p, t in entries]
    except (OSError, ValueError, TypeError):
        return out
    return out + [p for p, t in recorded if p not in out and supervise._start_time(p) == t]


def child_pids(pid: int) -> list[int]:
    out: list[int] = []
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return out
    for t in tasks:
        try:
            out += [int(c) for c in (t / "children").read_text().split()]
        except OSError:
            continue
    return out


def process_tree(st: ClusterState) -> list[int]:
    if st.shared:  # the shared server's supervisor and serve, while it serves this cluster
        from vkube.cli import sharedproc

        return sharedproc.pids() if sharedproc.registered(st) else []
    pid = running_pid(st)
    if pid is None:
        return []
    return [pid, *supervised_pids(pid, st.pid_file)]


def rss_bytes(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            continue
    return total


def _tail(path: Path, offset: int, lines: int = 15) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            text = f.read().decode(errors="replace")
    except FileNotFoundError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:]) or "(log is empty)"


def replicas_of(st: ClusterState) -> list[dict[str, object]]:
    """Each local replica: index, serve pid (None while down or restarting), URL once it
    serves. Empty for a single-process cluster."""
    dirs = replica_dirs(st)
    if not dirs:
        return []
    sup = running_pid(st)
    children = child_pids(sup) if sup is not None else []
    out: list[dict[str, object]] = []
    for i, d in enumerate(dirs):
        marker = f"\0--data-dir\0{d}\0".encode()
        pid = next((c for c in children if marker in _cmdline(c) and _alive(c)), None)
        try:
            url = (d / "ready").read_text().strip() if pid is not None else ""
        except FileNotFoundError:
            url = ""
        out.append({"index": i, "pid": pid, "url": url, "ready": bool(url)})
    return out


def leader_index(replicas: list[dict[str, object]], holder: str, name: str) -> int | None:
    """Which local replica holds the ``vkube-leader`` Lease (identity ``HOST-PID-NAME``)."""
    host = socket.gethostname()
    return next((int(r["index"]) for r in replicas  # type: ignore[call-overload]
                 if r["pid"] is not None and holder == f"{host}-{r['pid']}-{name}"), None)
