"""``vkube create`` of a new local virtual cluster, overlapped with the control plane's
start-up. The control plane needs ~0.3 s to answer; finding the host costs the CLI about as
much (asyncio and the HTTP client alone take ~0.2 s to import). So this module checks what it
can locally, importing neither, starts the process with ``serve --host-from`` (API and
controllers start, the syncer waits for the host file) and only then imports the rest and
talks to the host (``ops.create_spawned``). ``--upgrade``, ``--in-cluster`` and a name that
exists locally go to ``ops.create``."""

from __future__ import annotations

import argparse
import datetime as dt

from vkube.cli import process, replicas, state, values_files
from vkube.cli.lifecycle import run_coroutine
from vkube.cli.output import CLIError
from vkube.cli.state import ClusterState


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _namespace(args: argparse.Namespace, name: str) -> str:
    namespace = args.namespace or f"vkube-{name}"
    if len(namespace) > 63 or not state._DNS_LABEL.match(namespace):
        raise CLIError(f"invalid host namespace {namespace!r}: it must be a DNS label "
                       "(lowercase letters, digits, '-', at most 63)")
    existing = ClusterState.load(name) if args.namespace else None
    if args.namespace and not (existing and existing.namespace == namespace):
        _refuse_system_namespace(namespace, name)
    return namespace


def _refuse_system_namespace(namespace: str, name: str) -> None:
    """The host namespace gets the tenant's pods and a Role that writes Services, Endpoints,
    Secrets and Pods in it: never one of the host's own. ``kube-*`` is Kubernetes' (its
    controllers' ServiceAccount tokens, node leases, the public ConfigMaps); ``default`` holds
    the ``kubernetes`` Service and Endpoints every host pod reaches the API server through."""
    why = ("holds the host's `kubernetes` Service, which every host pod reaches its API server "
           "through" if namespace == "default" else
           "is the host's own (the kube- prefix is Kubernetes')" if namespace.startswith("kube-")
           else "")
    if why:
        raise CLIError(f"-n {namespace}: that host namespace {why}; the cluster's pods and its "
                       f"syncer's grants would land there — drop -n (namespace vkube-{name}) "
                       f"or name another, e.g. `vkube create {name} -n {name}`")


def main(args: argparse.Namespace) -> int:
    """Synchronous until the control plane is spawned (no event loop, no asyncio import)."""
    name = state.validate_name(args.name)
    namespace = _namespace(args, name)
    if getattr(args, "shared", False) and (args.in_cluster or args.tenancy == "namespace"):
        flag = "--in-cluster" if args.in_cluster else "--tenancy namespace"
        raise CLIError(f"--shared serves the cluster in this machine's shared server; {flag} "
                       "runs it elsewhere — drop one of them")
    if args.upgrade and args.tenancy == "namespace":
        raise CLIError(f"--tenancy namespace: --upgrade keeps how {name!r} was made (a tenant "
                       "cannot become a virtual cluster or back) — drop --tenancy, or `vkube "
                       f"delete {name}` and create it again with --tenancy namespace")
    if (args.upgrade or args.in_cluster or ClusterState.load(name) is not None
            or getattr(args, "shared", False) or _shared_in_files(args)):
        from vkube.cli import ops

        return run_coroutine(ops.create(args))
    values = values_files.load_files(args.values, check=False) if args.values else {}
    if args.tenancy == "namespace" and getattr(args, "expose", False):
        raise CLIError("--expose makes a virtual cluster's API server reachable; a namespace "
                       "tenant has none (it uses the host's) — drop --expose, or create it "
                       "without --tenancy namespace")
    if args.tenancy == "namespace":
        args.isolate = True  # a namespace tenant always has the guard rails
        values = values_files.with_flags(values, args)
        from vkube.cli import nstenancy

        return run_coroutine(nstenancy.create(args, values))
    values = values_files.with_flags(values, args)
    if getattr(args, "expose", False):
        values["expose"] = True
    replicas.check_local(values, name)
    st = ClusterState(name=name, namespace=namespace, host_kubeconfig="", created=_now(),
                      values=values, port=process.free_port())
    if (st.dir / "state.json").exists():  # unreadable: not ours to overwrite
        raise CLIError(f"{st.dir / 'state.json'} is not valid — fix or remove it, or delete "
                       f"{st.dir}")
    if process.running_pid(st) is not None:  # left by a `create` that died half-way
        process.stop(st)
    st.remove()  # and whatever such a create left (no state file: nothing anyone uses)
    try:
        values_files.write(st.values_file, st.values)
        spawned = process.spawn(st, host_from=True)
    except BaseException:
        st.remove()
        raise
    try:
        from vkube.cli import ops  # the heavy imports, while the control plane starts

        return run_coroutine(ops.create_spawned(args, st, spawned))
    except KeyboardInterrupt:  # also before create_spawned ran: nothing of it stays
        from vkube.cli import createundo

        createundo.undo_before_start(st, spawned)
        raise


def _shared_in_files(args: argparse.Namespace) -> bool:
    """``controlPlane.mode: shared`` in the -f files: created like ``--shared`` (through
    ``ops.create``, which adds it to the shared server instead of spawning a process)."""
    if not args.values:
        return False
    values = values_files.load_files(args.values, check=False)
    return ((values.get("controlPlane") or {}).get("mode")) == "shared"
