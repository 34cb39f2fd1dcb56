"""What ``vkube serve`` runs: one ``VirtualCluster`` built from the parsed flags, until SIGTERM.
The CLI only turns flags into a ``ClusterConfig``; the cluster package composes the rest."""

from __future__ import annotations

import argparse
import asyncio
import logging
from pathlib import Path

from vkube.cli.runproc import run_async, stop_event

log = logging.getLogger("vkube.serve")


def run(args: argparse.Namespace) -> int:
    return run_async(lambda: serve(args))


def config_from_args(args: argparse.Namespace) -> "ClusterConfig":  # noqa: F821
    """The flags of ``vkube serve`` as a configuration (``args`` is not changed)."""
    from vkube.cli.values_files import load_files
    from vkube.cluster.config import ClusterConfig, HostConnection, HostFromFile

    host: HostConnection | HostFromFile | None = None
    if args.host_from:
        host = HostFromFile(Path(args.host_from), namespace=args.host_namespace)
    elif args.host_kubeconfig:
        host = HostConnection(args.host_kubeconfig, context=args.host_context,
                              namespace=args.host_namespace)
    values = None
    if host is not None:
        from vkube.syncer.values import parse_values

        values = parse_values(load_files(args.values, check=False))
    elif args.values:
        from vkube.cli.output import CLIError

        raise CLIError("-f/--values configures the syncer: give --host-kubeconfig or "
                       "--host-from too, or drop -f")
    return ClusterConfig(name=args.name, data_dir=Path(args.data_dir), store_url=args.store,
                         address=args.address, port=args.port, host=host, values=values,
                         controllers=not args.no_controllers)


async def serve(args: argparse.Namespace) -> int:
    from vkube.cluster.virtual import VirtualCluster

    vc = VirtualCluster(config_from_args(args))
    ready_file = Path(args.data_dir) / "ready"
    await vc.start()
    stop = stop_event()
    try:
        # Ready as soon as the API answers (kubeconfig written, system namespaces there): the
        # other components start right after; they are level-based, so nothing is missed,
        # and `vkube create` returns sooner.
        ready_file.write_text(vc.url + "\n")
        log.info("control plane %s serving at %s (kubeconfig %s)", vc.name, vc.url,
                 Path(args.data_dir) / "kubeconfig")
        waiter = asyncio.ensure_future(stop.wait())
        stopped = asyncio.ensure_future(vc.stopped.wait())
        await asyncio.wait({waiter, stopped}, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        stopped.cancel()
        return 1 if vc.error is not None else 0
    finally:
        ready_file.unlink(missing_ok=True)
        await vc.stop()
