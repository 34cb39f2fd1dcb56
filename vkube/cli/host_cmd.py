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
    start.add_argument("--nodes", type=int, default=3, help="number of simulated nodes (default 3)")
    start.add_argument("--node-cpu", default="4", help="cpu capacity per node (default 4)")
    start.add_argument("--node-memory", default="8Gi", help="memory capacity per node (default 8Gi)")
    start.add_argument("--node-devices", default="", metavar="DRIVER=COUNT[,...]",
                       help="simulated DRA devices per node, published as ResourceSlices "
                            "(e.g. gpu.example.com=2)")
    start.add_argument("--timeout", type=float, default=60.0, help="seconds to wait until ready")
    start.set_defaults(func=cmd_start)
    stop = sub.add_parser("stop", help="stop the embedded host (data is kept)")
    stop.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for it to exit")
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


def cmd_start(args: argparse.Namespace) -> int:
    from vkube.cluster.config import parse_devices

    try:
        parse_devices(args.node_devices)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        print("  for example: vkube host start --node-devices gpu.example.com=2", file=sys.stderr)
        return 2
    d = host_dir()
    pid = running_pid(d)
    if pid is not None:
        print(f"vkube host is already running (pid {pid}) at {_state(d).get('url', '?')}")
        print(f"kubeconfig: {d / 'kubeconfig'}")
        return 0
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


def cmd_stop(args: argparse.Namespace) -> int:
    d = host_dir()
    pid = running_pid(d)
    if pid is None:
        print("vkube host is not running")
        return 0
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
