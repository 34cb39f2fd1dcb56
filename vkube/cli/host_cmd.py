"""``vkube host start|stop|status``: the embedded host as a background process
(``python -m vkube.cli.hosting``), so a laptop needs no cluster."""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any


def host_dir() -> Path:
    """Imported late: vkube.host imports asyncio (~40 ms), which `vkube create` must not pay
    before it has started its control plane."""
    from vkube.cli.hosting import host_dir as embedded_host_dir

    return embedded_host_dir()


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("host", help="the embedded host: a local cluster with simulated nodes",
                              description="Run a local Kubernetes API server with a scheduler and "
                                          "simulated nodes and kubelets (no real containers).")
    sub = p.add_subparsers(dest="host_command", metavar="ACTION")
    start = sub.add_parser("start", help="start the embedded host in the background",
                           epilog="example: vkube host start --nodes 5 --node-cpu 8 --node-memory 16Gi")
    # defaults are filled in by cmd_start: None tells a flag the user gave from one left out,
    # so a second start with different flags is refused instead of silently ignored
    start.add_argument("--nodes", type=int, default=None, help="number of simulated nodes (default 3)")
    start.add_argument("--node-cpu", default=None, help="cpu capacity per node (default 4)")
    start.add_argument("--node-memory", default=None, help="memory capacity per node (default 8Gi)")
    start.add_argument("--node-devices", default=None, metavar="DRIVER=COUNT[,...]",
                       help="simulated DRA devices per node, published as ResourceSlices "
                            "(e.g. gpu.example.com=2)")
    start.add_argument("--timeout", type=float, default=60.0, help="seconds to wait until ready")
    start.set_defaults(func=cmd_start)
    stop = sub.add_parser("stop", help="stop the embedded host (data is kept)",
                          epilog="example: vkube host stop --force   # pauses its virtual clusters first")
    stop.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for it to exit")
    stop.add_argument("--force", action="store_true",
                      help="pause the virtual clusters that run on it first (`vkube pause NAME`, "
                           "data kept), then stop it")
    stop.set_defaults(func=cmd_stop)
    status = sub.add_parser("status", help="show the embedded host's address, nodes and pid")
    status.set_defaults(func=cmd_status)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def running_pid(d: Path | None = None) -> int | None:
    """The pid of a live embedded host process, or None (stale pid files are ignored)."""
    d = d or host_dir()
    try:
        pid = int((d / "host.pid").read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        try:
            os.kill(pid, 0)
        except OSError:
            return None
        return pid
    return pid if b"vkube.cli.hosting" in cmdline else None


def _state(d: Path) -> dict[str, Any]:
    try:
        return json.loads((d / "state.json").read_text())
    except (FileNotFoundError, ValueError):
        return {}


#: start flag -> (state.json key, default)
START_FLAGS = {"nodes": ("nodes", 3), "node_cpu": ("nodeCpu", "4"),
               "node_memory": ("nodeMemory", "8Gi"), "node_devices": ("nodeDevices", "")}


def differing_flags(args: argparse.Namespace, state: dict[str, Any]) -> list[str]:
    """The start flags the user gave whose value differs from the running host's
    (a host started before these were recorded differs on any flag given but --nodes)."""
    from vkube.cluster.config import parse_devices

    out = []
    for attr, (key, _default) in START_FLAGS.items():
        given = getattr(args, attr)
        if given is None:
            continue
        running = state.get(key)
        if attr == "node_devices" and running is not None:
            same = parse_devices(given) == parse_devices(running)
        else:
            same = running is not None and str(given) == str(running)
        if not same:
            shown = "(unknown)" if running is None else (running if running != "" else '""')
            out.append(f"--{attr.replace('_', '-')} {given or chr(34) * 2} (running: {shown})")
    return out


def cmd_start(args: argparse.Namespace) -> int:
    from vkube.cluster.config import parse_devices

    try:
        parse_devices(args.node_devices or "")
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        print("  for example: vkube host start --node-devices gpu.example.com=2", file=sys.stderr)
        return 2
    from vkube.cli import datalock

    d = host_dir()
    # concurrent starters (two `vkube create` at once) wait here, then find the first one's host
    with datalock.starting(d):
        return _start_locked(args, d)


def _start_locked(args: argparse.Namespace, d: Path) -> int:
    from vkube.cli import datalock

    pid = running_pid(d)
    deadline = time.monotonic() + args.timeout
    while pid is None and datalock.held(d) and time.monotonic() < deadline:
        time.sleep(0.05)  # a host started by other means is on its way up: use it, not a second
        pid = running_pid(d)
    if pid is not None:
        differ = differing_flags(args, _state(d))
        if differ:
            print(f"error: vkube host is already running (pid {pid}) with other settings: "
                  f"{', '.join(differ)}; to apply them: vkube host stop && vkube host start "
                  f"{_given_flags(args)}", file=sys.stderr)
            return 1
        print(f"vkube host is already running (pid {pid}) at {_state(d).get('url', '?')}")
        print(f"kubeconfig: {d / 'kubeconfig'}")
        return 0
    for attr, (_key, default) in START_FLAGS.items():
        if getattr(args, attr) is None:
            setattr(args, attr, default)
    d.mkdir(parents=True, exist_ok=True)
    (d / "host.pid").unlink(missing_ok=True)
    log = open(d / "host.log", "ab")
    cmd = [sys.executable, "-m", "vkube.cli.hosting", "--home", str(d.parent), "--nodes", str(args.nodes),
           "--node-cpu", args.node_cpu, "--node-memory", args.node_memory, "--node-devices", args.node_devices]
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
    log.close()
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        if running_pid(d) == proc.pid:
            st = _state(d)
            print(f"vkube host running at {st.get('url')} with {args.nodes} nodes (pid {proc.pid})")
            print(f"kubeconfig: {d / 'kubeconfig'}")
            print(f"  export KUBECONFIG={d / 'kubeconfig'}")
            return 0
        if proc.poll() is not None:
            break
        time.sleep(0.01)  # a cheap check; `vkube create` may be waiting on it
    if proc.poll() is None:
        proc.terminate()
    print(f"vkube host failed to start; see {d / 'host.log'}:", file=sys.stderr)
    tail = (d / "host.log").read_text(errors="replace").splitlines()[-15:]
    print("\n".join(tail), file=sys.stderr)
    return 1


def _given_flags(args: argparse.Namespace) -> str:
    return " ".join(f"--{a.replace('_', '-')} {getattr(args, a)}" for a in START_FLAGS
                    if getattr(args, a) is not None)


def clusters_on_embedded_host() -> list[str]:
    """The virtual clusters of this machine that use the embedded host and are not paused:
    stopping the host under them would leave them saying Running while nothing of theirs runs."""
    from vkube.cli import state
    from vkube.cli.hostresolve import embedded_kubeconfig

    embedded = str(embedded_kubeconfig())
    out = []
    for name in state.local_names():
        st = state.ClusterState.load(name)
        if st is None or st.status == state.PAUSED:
            continue
        if st.host_kind == "embedded" or st.host_kubeconfig == embedded:
            out.append(st.name)
    return sorted(out)


def _pause_all(names: list[str]) -> int:
    import asyncio

    from vkube.cli import ops
    from vkube.cli.output import guarded

    for name in names:
        rc = guarded(lambda a: asyncio.run(ops.pause(a)))(argparse.Namespace(name=name))
        if rc != 0:
            print(f"error: could not pause {name}; the host is still running — fix that, or "
                  f"`vkube delete {name}`, then `vkube host stop`", file=sys.stderr)
            return rc
    return 0


def cmd_stop(args: argparse.Namespace) -> int:
    d = host_dir()
    pid = running_pid(d)
    if pid is None:
        print("vkube host is not running")
        return 0
    on_it = clusters_on_embedded_host()
    if on_it and not getattr(args, "force", False):
        pauses = " && ".join(f"vkube pause {n}" for n in on_it)
        print(f"error: virtual cluster{'s' if len(on_it) > 1 else ''} {', '.join(on_it)} "
              f"run{'' if len(on_it) > 1 else 's'} on the embedded host — `{pauses}` first, or "
              "`vkube host stop --force` to pause them and stop it", file=sys.stderr)
        return 1
    if on_it:
        print(f"pausing {', '.join(on_it)} before stopping the host (data kept; "
              "`vkube resume NAME` after `vkube host start`)")
        rc = _pause_all(on_it)
        if rc != 0:
            return rc
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        if running_pid(d) != pid and not Path(f"/proc/{pid}").exists():
            print(f"vkube host stopped (pid {pid}); data kept in {d / 'data'}")
            return 0
        time.sleep(0.1)
    print(f"vkube host (pid {pid}) did not stop within {args.timeout:g}s", file=sys.stderr)
    return 1


def cmd_status(args: argparse.Namespace) -> int:
    d = host_dir()
    pid = running_pid(d)
    if pid is None:
        print("vkube host is not running")
        return 3
    st = _state(d)
    print(f"vkube host running (pid {pid})")
    print(f"address:    {st.get('url')}")
    print(f"kubeconfig: {d / 'kubeconfig'}")
    import asyncio

    try:
        nodes = asyncio.run(_nodes(d / "kubeconfig"))
    except Exception as e:  # status is informative; a failing API still shows the pid
        print(f"nodes:      unavailable ({e})")
        return 1
    print(f"nodes:      {len(nodes)}")
    for name, ready in nodes:
        print(f"  {name}  {ready}")
    return 0


async def _nodes(kubeconfig: Path) -> list[tuple[str, str]]:
    from vkube.client import load_kubeconfig
    from vkube.client.resources import NODES

    async with load_kubeconfig(str(kubeconfig)) as c:
        items = (await c.list(NODES)).get("items", [])
    out = []
    for n in items:
        ready = next((c.get("status") for c in n.get("status", {}).get("conditions") or []
                      if c.get("type") == "Ready"), "Unknown")
        state = "Ready" if ready == "True" else "NotReady"
        if n.get("spec", {}).get("unschedulable"):
            state += ",SchedulingDisabled"
        out.append((n["metadata"]["name"], state))
    return out
