"""What ``vkube serve`` runs: one ``VirtualCluster`` built from the parsed flags, until SIGTERM.
The CLI only turns flags into a ``ClusterConfig``; the cluster package composes the rest."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vkube.cli.output import CLIError, read_user_file
from vkube.cli.runproc import run_async, stop_event
from vkube.pki.cluster import FRONT_PROXY_CLIENT

if TYPE_CHECKING:
    from vkube.cluster.config import ClusterConfig
    from vkube.cluster.listener import ListenerLimits

log = logging.getLogger("vkube.serve")


#: flags of the shared listener (``vkube.cluster.listener.ListenerLimits``): --shared only
_LISTENER_FLAGS = {"max_connections": (1, 1_000_000), "max_connections_per_client": (1, 1_000_000),
                   "tls_handshake_timeout": (0.1, 3600.0), "idle_timeout": (0.1, 86400.0)}


def run(args: argparse.Namespace) -> int:
    if getattr(args, "shared", False):
        return _run_shared(args)
    for name in _LISTENER_FLAGS:
        if getattr(args, name, None) is not None:
            print(f"vkube serve: --{name.replace('_', '-')} limits the shared listener only — "
                  "add --shared, or drop it", file=sys.stderr)
            return 2
    try:
        config = config_from_args(args)
    except CLIError as e:
        print(f"vkube serve: {e}", file=sys.stderr)
        return e.code
    assert config.data_dir is not None
    with _own(config.data_dir) as owned:
        return run_async(lambda: serve(config)) if owned else 1


@contextlib.contextmanager
def _own(data_dir: Path) -> Iterator[bool]:
    """Hold ``data_dir`` for this process (see ``datalock``): whether it is ours; if another
    live serve has it, say so in one line (a supervisor gives up after a few such exits)."""
    from vkube.cli import datalock

    try:
        lock = datalock.hold(data_dir, wait=10.0)  # a predecessor may be on its way out
    except datalock.Busy as e:
        print(f"vkube serve: {e}, which serves it — not starting a second server on the same "
              "data; stop that one first (`vkube pause NAME`, or kill the pid)", file=sys.stderr)
        yield False
        return
    with lock:
        yield True


def config_from_args(args: argparse.Namespace) -> "ClusterConfig":
    """The flags of ``vkube serve`` as a configuration (``args`` is left as parsed)."""
    from vkube.cli.values_files import load_files
    from vkube.cluster.config import ClusterConfig, HostConnection, HostFromFile

    host: HostConnection | HostFromFile | None = None
    if args.host_from:
        host = HostFromFile(Path(args.host_from), namespace=args.host_namespace)
    elif args.host_kubeconfig:
        host = HostConnection(args.host_kubeconfig, context=args.host_context,
                              namespace=args.host_namespace,
                              kind=getattr(args, "host_kind", "kubeconfig"))
    values = None
    if host is not None:
        from vkube.syncer.values import ValuesError, parse_values

        try:
            values = parse_values(load_files(args.values, check=False))
        except ValuesError as e:
            raise CLIError(f"invalid values: {e} — see `vkube create --help`", code=2) from e
    elif args.values:
        raise CLIError("-f/--values configures the syncer of a virtual cluster: give "
                       "--host-kubeconfig or --host-from too, or drop -f", code=2)
    # --store, else controlPlane.store of the values, else sqlite in the data dir
    # ("sqlite" in the values names that default, as `vkube values` documents)
    store = args.store or (values.control_plane.store if values is not None else None) or None
    if store == "sqlite" and not args.store:
        store = None
    tls = {"ca_file": args.etcd_cafile, "cert_file": args.etcd_certfile,
           "key_file": args.etcd_keyfile}
    return ClusterConfig(name=args.name, data_dir=Path(args.data_dir), store_url=store,
                         store_options={k: v for k, v in tls.items() if v},
                         address=args.address, port=args.port, host=host, values=values,
                         controllers=not args.no_controllers,
                         encryption_config=_file_arg(args, "encryption_config"),
                         audit_policy=_file_arg(args, "audit_policy_file"),
                         audit_rotation=_audit_rotation(args),
                         token_auth_file=_file_arg(args, "token_auth_file"),
                         requestheader_allowed_names=_names(getattr(args, "requestheader_allowed_names", None)),
                         **_inflight(args),
                         admission_config=_file_arg(args, "admission_control_config_file"),
                         dns_port=getattr(args, "dns_port", 0) or 0,
                         advertise_address=getattr(args, "advertise_address", None),
                         dns_upstream=dns_upstream(getattr(args, "dns_upstream", None)),
                         # enableHA: one of several replicas; lead before running the rest
                         ha=bool(values is not None and values.enable_ha),
                         tls_sans=tuple(getattr(args, "tls_san", None) or ()))


def _names(value: str | None) -> tuple[str, ...] | None:
    """A comma-separated flag (pflag's StringSlice): None when not given, () when empty."""
    if value is None:
        return None
    return tuple(n.strip() for n in value.split(",") if n.strip())


def _inflight(args: argparse.Namespace) -> dict[str, int]:
    """--max-requests-inflight and --max-mutating-requests-inflight, checked as kube-apiserver
    checks them with priority and fairness on."""
    reads = int(getattr(args, "max_requests_inflight", 400))
    writes = int(getattr(args, "max_mutating_requests_inflight", 200))
    for flag, v in (("max-requests-inflight", reads), ("max-mutating-requests-inflight", writes)):
        if v < 0:
            raise CLIError(f"--{flag} can not be negative value", code=2)
    if reads + writes <= 0:
        raise CLIError("--max-requests-inflight + --max-mutating-requests-inflight must be positive "
                       "(API Priority and Fairness divides them between priority levels) — e.g. `vkube serve "
                       "--max-requests-inflight 400 --max-mutating-requests-inflight 200 ...`", code=2)
    return {"max_requests_inflight": reads, "max_mutating_requests_inflight": writes}


def _audit_rotation(args: argparse.Namespace) -> tuple[int, int, int]:
    """(maxsize MB, maxbackup, maxage days) as kube-apiserver's --audit-log-* flags."""
    values = tuple(int(getattr(args, f"audit_log_{k}", 0) or 0) for k in ("maxsize", "maxbackup", "maxage"))
    for flag, v in zip(("maxsize", "maxbackup", "maxage"), values):
        if v < 0:
            raise CLIError(f"--audit-log-{flag} {v}: must be 0 or more", code=2)
    return values  # type: ignore[return-value]


def _file_arg(args: argparse.Namespace, name: str) -> Path | None:
    value = getattr(args, name, None)
    if value is None:
        return None
    flag = f"--{name.replace('_', '-')}"
    try:  # read once here: a directory or a binary file is named now, not a traceback later
        read_user_file(value, flag, f"give {flag} a readable UTF-8 file")
    except CLIError as e:
        raise CLIError(str(e), code=2) from None
    return Path(value)


def dns_upstream(flag: str | None) -> tuple[str, int] | None:
    """``--dns-upstream``: IP[:PORT] (IPv6 in brackets with a port), 'none', or the system's
    first resolver from /etc/resolv.conf."""
    import ipaddress

    if flag is None:
        try:
            for line in Path("/etc/resolv.conf").read_text().splitlines():
                parts = line.split()
                if len(parts) >= 2 and parts[0] == "nameserver":
                    return parts[1].split("%")[0], 53
        except OSError:
            pass
        return None
    if flag.lower() == "none":
        return None
    host, port = flag, 53
    if flag.startswith("["):
        host, _, rest = flag[1:].partition("]")
        port = int(rest[1:]) if rest.startswith(":") and rest[1:].isdigit() else 53
    elif flag.count(":") == 1:
        host, p = flag.split(":")
        if not p.isdigit():
            raise CLIError(f"--dns-upstream {flag!r}: the port must be a number", code=2)
        port = int(p)
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise CLIError(f"--dns-upstream {flag!r}: give an IP address (IP or IP:PORT)", code=2) from None
    if not 0 < port < 65536:
        raise CLIError(f"--dns-upstream {flag!r}: port out of range", code=2)
    return host, port


#: how long a start waits for its port to be released before it gives up: longer than the
#: 60 s a connection that took it as source port stays in TIME_WAIT after it closes
PORT_WAIT = 90.0


class PortBusy(Exception):
    """The port stayed in use for ``PORT_WAIT`` seconds (said in one line already)."""


async def start_retrying(make: Callable[[], Any], port: int, what: str,
                         stop_on: tuple[type[BaseException], ...] = ()) -> Any:
    """``make()``'s server, started; while its port is in use, stop that attempt, log one line
    and try again each second (a fixed port is the one clients were given: another would
    strand them). Other failures propagate (the attempt stopped first for ``stop_on``)."""
    import errno
    import time

    deadline = time.monotonic() + PORT_WAIT
    while True:
        server = make()
        try:
            await server.start()
            return server
        except OSError as exc:
            await server.stop()
            if exc.errno != errno.EADDRINUSE or not port:
                raise
            if time.monotonic() >= deadline:
                print(f"vkube serve: port {port} of {what} is still in use by another process "
                      f"after {PORT_WAIT:.0f}s — find it with `ss -tanp | grep :{port}`; "
                      "`vkube pause NAME && vkube resume NAME` moves the cluster to a free port",
                      file=sys.stderr)
                raise PortBusy() from None
            log.warning("port %d of %s is in use by another process (a connection may hold it "
                        "as its source port); retrying every second for up to %.0fs",
                        port, what, deadline - time.monotonic())
            await asyncio.sleep(1.0)
        except stop_on:
            await server.stop()
            raise


async def serve(config: "ClusterConfig") -> int:
    from vkube.cluster.config import ClusterConfigError
    from vkube.cluster.virtual import VirtualCluster

    assert config.data_dir is not None
    ready_file = config.data_dir / "ready"
    from vkube.cluster.stores import StoreError, UnsupportedStore, describe

    try:
        vc = await start_retrying(lambda: VirtualCluster(config), config.port,
                                  f"virtual cluster {config.name}",
                                  stop_on=(UnsupportedStore, StoreError))
    except PortBusy:
        return 1
    except (UnsupportedStore, StoreError) as exc:
        print(f"vkube serve: store {describe(config.store_url or 'sqlite')}: {exc}\n"
              "  next: check --store (sqlite, postgres://USER@HOST:PORT/DB or etcd://HOST:PORT) "
              "and that the server is up", file=sys.stderr)
        return 2
    except ClusterConfigError as exc:
        print(f"vkube serve: {exc} — fix the file and run `vkube serve` again", file=sys.stderr)
        return 2
    stop = stop_event()
    try:
        # Ready as soon as the API answers (kubeconfig written, system namespaces there): the
        # other components start right after; they are level-based, so nothing is missed,
        # and `vkube create` returns sooner. With its host already named (`vkube resume`, a
        # restart) the syncer comes first: pods whose host pods went meanwhile are shown not
        # running before anyone is told the cluster is back (vkube.syncer.podgone)
        await vc.wait_shown()
        ready_file.write_text(vc.url + "\n")
        log.info("control plane %s serving at %s (kubeconfig %s)", vc.name, vc.url,
                 config.data_dir / "kubeconfig")
        waiter = asyncio.ensure_future(stop.wait())
        stopped = asyncio.ensure_future(vc.stopped.wait())
        await asyncio.wait({waiter, stopped}, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        stopped.cancel()
        return 1 if vc.error is not None else 0
    finally:
        ready_file.unlink(missing_ok=True)
        await vc.stop()


_SHARED_ONLY_WITHOUT = ("host_kubeconfig", "host_from", "values", "no_controllers",
                        "encryption_config", "audit_policy_file", "admission_control_config_file",
                        "requestheader_allowed_names")


def _run_shared(args: argparse.Namespace) -> int:
    """``vkube serve --shared``: each cluster's host, values and files come from its member
    file, so the per-cluster flags are refused by name rather than ignored."""
    for name in _SHARED_ONLY_WITHOUT:
        value = getattr(args, name, None)
        if name == "requestheader_allowed_names" and value is not None:  # '' is a value too
            print("vkube serve --shared: --requestheader-allowed-names is not supported in shared mode "
                  f"(each cluster trusts its own {FRONT_PROXY_CLIENT} only) — drop it", file=sys.stderr)
            return 2
        if value:
            flag = "-f" if name == "values" else "--" + name.replace("_", "-")
            print(f"vkube serve --shared: {flag} configures one cluster; in shared mode each "
                  "cluster's member file names it — drop it", file=sys.stderr)
            return 2
    for name, (low, high) in _LISTENER_FLAGS.items():
        value = getattr(args, name, None)
        if value is not None and not low <= value <= high:
            print(f"vkube serve --shared: --{name.replace('_', '-')} {value:g}: must be between "
                  f"{low:g} and {high:g}", file=sys.stderr)
            return 2
    with _own(Path(args.data_dir)) as owned:
        return run_async(lambda: serve_shared(args)) if owned else 1


def listener_limits(args: argparse.Namespace) -> "ListenerLimits":
    """The shared listener's limits: the flags given, the defaults for the rest."""
    from vkube.cluster.listener import ListenerLimits

    given = {field: getattr(args, flag) for flag, field in (
        ("max_connections", "max_connections"), ("max_connections_per_client", "max_per_client"),
        ("tls_handshake_timeout", "handshake_timeout"), ("idle_timeout", "idle_timeout"))
        if getattr(args, flag, None) is not None}
    return ListenerLimits(**given)


async def serve_shared(args: argparse.Namespace) -> int:
    import signal

    from vkube.cluster.shared import SharedServer

    data_dir = Path(args.data_dir)
    try:
        server = await start_retrying(
            lambda: SharedServer(data_dir, address=args.address, port=args.port,
                                 store_url=args.store, limits=listener_limits(args)),
            args.port, "the shared server")
    except PortBusy:
        return 1
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGHUP, server.request_reconcile)
    stop = stop_event()
    ready_file = data_dir / "ready"
    try:
        server.request_reconcile()  # the members a restart finds
        ready_file.write_text(server.base_url + "\n")
        log.info("shared server serving at %s/clusters/NAME (members in %s)", server.base_url,
                 server.members_dir)
        await stop.wait()
        return 0
    finally:
        ready_file.unlink(missing_ok=True)
        await server.stop()
