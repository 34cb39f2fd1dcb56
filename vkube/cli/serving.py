"""What ``vkube serve`` runs: the control plane, the controllers and (for a virtual cluster)
the syncer, until SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import socket
from pathlib import Path
from typing import Any

from vkube.cli.runproc import run_async, stop_event

log = logging.getLogger("vkube.serve")


def run(args: argparse.Namespace) -> int:
    return run_async(lambda: serve(args))


async def serve(args: argparse.Namespace) -> int:
    from vkube.apiserver.server import ControlPlane

    virtual = bool(args.host_kubeconfig or args.host_from)
    cp = ControlPlane(data_dir=args.data_dir, store_url=args.store, port=args.port, name=args.name,
                      host=args.address,
                      allocate_service_ips=not virtual)
    await cp.start()
    log.info("control plane %s serving at %s (kubeconfig %s)", args.name, cp.url,
             Path(args.data_dir) / "kubeconfig")
    stop = stop_event()
    tasks: list[asyncio.Task[Any]] = []
    clients: list[Any] = []
    try:
        # Ready as soon as the API answers (kubeconfig written, system namespaces there): the
        # controllers and the syncer start right after; they are level-based, so nothing is
        # missed, and `vkube create` returns ~50 ms sooner.
        (Path(args.data_dir) / "ready").write_text(cp.url + "\n")
        if not args.no_controllers:
            from vkube.client import Client
            from vkube.controllers.registry import default_controllers
            from vkube.controllers.runtime import ControllerManager

            client = Client(cp.url, user_agent=f"vkube-controller-manager/{args.name}")
            clients.append(client)
            mgr = ControllerManager(client, identity=f"{socket.gethostname()}-{os.getpid()}",
                                    leader_election=True)
            for ctrl in default_controllers():
                mgr.add(ctrl)
            tasks.append(asyncio.create_task(mgr.run(), name="controllers"))
        if virtual:
            tasks.append(asyncio.create_task(_run_syncer(args, cp.url, clients), name="syncer"))
        waiter = asyncio.create_task(stop.wait())
        done, _ = await asyncio.wait([waiter, *tasks], return_when=asyncio.FIRST_COMPLETED)
        for t in done:
            if t is not waiter and t.exception() is not None:
                log.error("component %s failed", t.get_name(), exc_info=t.exception())
                return 1
        return 0
    finally:
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        for c in clients:
            await c.close()
        with contextlib.suppress(FileNotFoundError):
            (Path(args.data_dir) / "ready").unlink()
        await cp.stop()


async def _run_syncer(args: argparse.Namespace, url: str, clients: list[Any]) -> None:
    from vkube.cli.values_files import load_files
    from vkube.client import Client, load_kubeconfig
    from vkube.syncer.syncer import Syncer
    from vkube.syncer.values import parse_values

    if args.host_from:
        await _await_host_file(args)
    values = parse_values(load_files(args.values))
    host = load_kubeconfig(args.host_kubeconfig, args.host_context)
    virtual = Client(url, user_agent=f"vkube-syncer/{args.name}")
    clients += [host, virtual]
    syncer = Syncer(name=args.name, virtual=virtual, host=host,
                    host_namespace=args.host_namespace or f"vkube-{args.name}", values=values)
    await syncer.run()


HOST_FILE_POLL = 0.02


async def _await_host_file(args: argparse.Namespace) -> None:
    """``vkube create`` starts this process before it knows the host (resolving it costs the
    CLI ~0.3 s of imports and round trips) and writes FILE once the host namespace is claimed:
    the API comes up meanwhile and only the syncer waits. FILE is renamed into place, so a
    file that exists is complete; it wins over the --host-* flags."""
    import json

    path = Path(args.host_from)
    told = False
    while True:
        try:
            doc = json.loads(path.read_text())
            break
        except FileNotFoundError:
            pass
        if not told:
            log.info("syncer waiting for the host to be named in %s", path)
            told = True
        await asyncio.sleep(HOST_FILE_POLL)
    args.host_kubeconfig = doc["kubeconfig"]
    args.host_context = doc.get("context") or None
    args.host_namespace = doc.get("namespace") or args.host_namespace
    log.info("syncer host: %s (context %s), namespace %s", args.host_kubeconfig,
             args.host_context or "current", args.host_namespace or f"vkube-{args.name}")
