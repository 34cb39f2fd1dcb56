"""``python -m vkube.cli.hosting``: the embedded host process — one ``EmbeddedHostCluster``
(control plane, controllers, simulated nodes/scheduler/kubelets) — until SIGTERM. ``vkube host
start`` runs it in the background; state lives in ``$VKUBE_HOME/host`` (data, kubeconfig, pid file, state.json).
asyncio is imported by the functions that run the host: ``vkube host start|status|stop`` and
``vkube create`` import this module for ``host_dir`` alone."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vkube.cli import datalock
from vkube.cli.process import free_port, port_free

if TYPE_CHECKING:
    import asyncio

log = logging.getLogger("vkube.host")


def host_dir(home: str | None = None) -> Path:
    base = Path(home or os.environ.get("VKUBE_HOME") or Path.home() / ".vkube")
    return base / "host"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m vkube.cli.hosting", description="Run the vkube embedded host.")
    p.add_argument("--home", default=None, help="VKUBE_HOME (default ~/.vkube)")
    p.add_argument("--nodes", type=int, default=3)
    p.add_argument("--node-cpu", default="4")
    p.add_argument("--node-memory", default="8Gi")
    p.add_argument("--node-devices", default="", help="simulated DRA devices per node: DRIVER=COUNT[,...]")
    p.add_argument("--port", type=int, default=None, help="API server port (default: last one, if free)")
    return p.parse_args(argv)


async def run(args: argparse.Namespace) -> int:
    import asyncio

    from vkube.cli.runproc import stop_event
    from vkube.cluster.host import EmbeddedHostCluster, HostConfig

    d = host_dir(args.home)
    try:  # one host per directory: a second one would serve the same state.db beside it
        owner = datalock.hold(d, wait=10.0)
    except datalock.Busy as e:
        log.error("%s: a vkube host already runs on it; not starting another "
                  "(`vkube host status` shows it, `vkube host stop` stops it)", e)
        return 1
    state_file, pid_file = d / "state.json", d / "host.pid"
    state: dict[str, Any] = {}
    with contextlib.suppress(FileNotFoundError, ValueError):
        state = json.loads(state_file.read_text())
    port = args.port
    if port is None:
        last = int(state.get("port") or 0)
        port = last if last and port_free(last) else free_port()
    from vkube.cluster.config import parse_devices

    host = EmbeddedHostCluster(HostConfig(data_dir=d / "data", port=port, nodes=args.nodes,
                                          node_cpu=args.node_cpu, node_memory=args.node_memory,
                                          node_devices=parse_devices(args.node_devices)))
    stop = stop_event()
    spare: asyncio.Future[None] | None = None
    try:
        await host.start()
        host.control_plane.write_kubeconfig(d / "kubeconfig")
        state_file.write_text(json.dumps({"url": host.url, "port": host.port, "pid": os.getpid(),
                                          "nodes": args.nodes, "nodeCpu": args.node_cpu,
                                          "nodeMemory": args.node_memory,
                                          "nodeDevices": args.node_devices,
                                          "kubeletPort": host.kubelet_port}))
        pid_file.write_text(f"{os.getpid()}\n")  # last: its presence means "ready"
        # after: its imports would compete with the host's start for the CPU
        spare = asyncio.ensure_future(keep_spare(d / "spare.sock"))
        log.info("vkube host ready at %s with %d nodes (kubeconfig %s; start-up CPU %.0f ms)", host.url,
                 args.nodes, d / "kubeconfig", time.process_time() * 1000)
        waiter = asyncio.ensure_future(stop.wait())
        stopped = asyncio.ensure_future(host.stopped.wait())
        await asyncio.wait({waiter, stopped}, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        stopped.cancel()
        return 1 if host.error is not None else 0
    finally:
        log.info("vkube host stopping")
        if spare is not None:
            spare.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await spare
        await host.stop()
        with contextlib.suppress(FileNotFoundError):
            if pid_file.read_text().strip() == str(os.getpid()):
                pid_file.unlink()
        owner.close()


#: a spare that lived this long before it ended is restarted at once, else after back-off
SPARE_SETTLED = 60.0


async def keep_spare(sock: Path) -> None:
    """Run the fork server clusters' supervisors start ``serve`` from (``vkube.cli.spare``;
    a supervisor that connects while it still imports waits for it); restarted when it ends (a
    crash, or vkube's code changed under it), stopped with the host. Without it a supervisor
    starts serve itself, so its absence slows starts and nothing else."""
    import asyncio
    import time

    from vkube.cli import spare

    delay = 0.5
    while True:
        proc = await asyncio.create_subprocess_exec(*spare.command(str(sock)),
                                                    stdin=asyncio.subprocess.DEVNULL)
        began = time.monotonic()
        try:
            rc = await proc.wait()
        except asyncio.CancelledError:
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 10.0)
            except asyncio.TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
            raise
        delay = 0.5 if time.monotonic() - began > SPARE_SETTLED else min(delay * 2, 30.0)
        log.warning("the spare serve process exited with code %s; starting another in %.1fs",
                    rc, delay)
        await asyncio.sleep(delay)


def main(argv: list[str] | None = None) -> int:
    from vkube.cli.runproc import run_async
    from vkube.netio.trust import defer_aiohttp_trust_store

    defer_aiohttp_trust_store()  # as the vkube entry point: aiohttp's trust store when used
    args = parse_args(argv)
    return run_async(lambda: run(args))


if __name__ == "__main__":
    raise SystemExit(main())
