"""An interrupted ``vkube create`` (Ctrl-C, SIGINT) removes what it applied, as a failed one
does and as ``kind create cluster`` deletes its half-made cluster on SIGINT: the control
plane's processes, the syncer's host RBAC, the host namespace (deleted only if this create
made it; else only vkube's marks go) and the cluster's directory. Nothing is listed, running
or claimed afterwards, and ``vkube create NAME`` can simply be run again."""

from __future__ import annotations

import asyncio
import signal
import sys

from vkube.api import errors
from vkube.cli import hostns, process, syncercred
from vkube.cli.hostresolve import HostRef
from vkube.cli.state import ClusterState


def stop_spawned(st: ClusterState, spawned: process.Spawned) -> None:
    """The supervisor and its serve, also a serve the spare forked (not the supervisor's
    child: ``process.stop`` waits for what the supervisor recorded)."""
    if process.running_pid(st) is not None:
        process.stop(st)
    process.abort(spawned)


async def undo(st: ClusterState, spawned: process.Spawned, host: HostRef | None,
               made_namespace: bool | None) -> None:
    """``made_namespace``: None while the host namespace was not yet touched; else whether
    this create found it absent (so it is its to delete)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C would leave half of it
    print(f"interrupted: removing what `vkube create {st.name}` applied", file=sys.stderr)
    await asyncio.to_thread(stop_spawned, st, spawned)
    if host is not None and made_namespace is not None:
        try:
            async with host.client() as hc:
                await syncercred.release(hc, st)
                await hostns.release_namespace(hc, st.namespace, delete=made_namespace)
        except (errors.StatusError, OSError) as exc:
            print(f"warning: host namespace {st.namespace} may keep vkube's marks ({exc}) — "
                  f"remove them with `kubectl delete namespace {st.namespace}` if this "
                  "create made it", file=sys.stderr)
    st.remove()


def undo_before_start(st: ClusterState, spawned: process.Spawned) -> None:
    """Interrupted before ``ops.create_spawned`` ran (importing it): only the process and the
    directory exist."""
    if not st.dir.exists() or (st.dir / "state.json").exists():
        return  # create_spawned ran and owns the cluster (it undid or finished it)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    stop_spawned(st, spawned)
    st.remove()
