"""``vkube create`` returns once what its values ask to see from the host is visible in the
virtual cluster, as it returns once the API answers: with ``sync.nodes.syncAllNodes`` the
(selected) host nodes, so ``vkube create … && kubectl label nodes NODE …`` works. Bounded: on
a slow host the command still returns, saying what is not there yet."""

from __future__ import annotations

import asyncio
import time

from vkube.api import errors
from vkube.cli.output import Progress
from vkube.cli.state import ClusterState
from vkube.client import Client
from vkube.client.resources import NODES

TIMEOUT = 60.0


async def wanted_nodes(hc: Client, st: ClusterState) -> set[str] | None:
    """The host nodes the values ask to show (None: no such ask)."""
    from vkube.syncer.values import ValuesError, parse_values

    try:
        values = parse_values(st.values or {})
    except ValuesError:
        return None
    nodes = values.sync.nodes
    if not (nodes.enabled and nodes.sync_all_nodes):
        return None
    selector = ",".join(f"{k}={v}" for k, v in sorted(values.node_selector().items()))
    items = (await hc.list(NODES, label_selector=selector or None))["items"]
    return {n["metadata"]["name"] for n in items}


async def wait_synced(hc: Client, st: ClusterState, progress: Progress,
                      timeout: float = TIMEOUT) -> None:
    """Until the virtual cluster lists the nodes ``wanted_nodes`` names (or ``timeout``)."""
    want = await wanted_nodes(hc, st)
    kubeconfig = st.data_dir / "kubeconfig"
    if not want or not kubeconfig.exists():
        return
    from vkube.client.kubeconfig import client_from_kubeconfig

    with progress.step(f"syncing {len(want)} host node{'s' if len(want) != 1 else ''}") as done:
        seen: set[str] = set()
        deadline = time.monotonic() + timeout
        async with client_from_kubeconfig(str(kubeconfig), None, user_agent="vkube-cli",
                                          timeout=10.0) as vc:
            while time.monotonic() < deadline:
                try:
                    seen = {n["metadata"]["name"] for n in (await vc.list(NODES))["items"]}
                except (errors.StatusError, OSError, asyncio.TimeoutError):
                    pass  # the API restarting: try again
                if want <= seen:
                    done(f"{len(want)} host node{'s' if len(want) != 1 else ''} synced")
                    return
                await asyncio.sleep(0.2)
        missing = ", ".join(sorted(want - seen))
        done(f"not all host nodes synced within {timeout:.0f}s (missing: {missing}) — "
             "`kubectl get nodes` shows them once they are")
