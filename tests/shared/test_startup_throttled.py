"""Start-up under fairness (issue 18): with the shared process's seats and queues set far below
what starting clusters ask for, every start meets 429s — yet no component ends: informers wait
out Retry-After, the controller manager and the syncer (host namespace, ``prepare``'s
not-running marks on a wake) try again, and every cluster serves kubectl and runs its pods."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from tests.conftest import kubectl
from vkube.cluster.config import ClusterConfig, HostConnection
from vkube.cluster.fairness import FairnessConfig
from vkube.cluster.host import EmbeddedHostCluster, HostConfig
from vkube.cluster.shared import SharedServer

NAMES = ("t1", "t2", "t3")


async def _pod_phases(kc: Path) -> list[str]:
    out = await asyncio.to_thread(kubectl, kc, "get", "pods", "-l", "app=web", "-o", "json",
                                  check=False, timeout=120)
    if out.returncode != 0:
        return []
    return [(p.get("status") or {}).get("phase", "") for p in json.loads(out.stdout)["items"]]


async def _until_running(kc: Path, timeout: float = 300) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        if await _pod_phases(kc) == ["Running"]:
            return
        await asyncio.sleep(0.5)
    assert await _pod_phases(kc) == ["Running"]


async def test_clusters_start_and_wake_through_a_throttled_queue(tmp_path: Path) -> None:
    host = EmbeddedHostCluster(HostConfig(data_dir=tmp_path / "host", nodes=1))
    await host.start()
    # one seat per cluster, two places in its queue: a starting cluster's ~70 LISTs and
    # writes cannot all wait, so most of them are refused with 429 at first
    server = SharedServer(tmp_path / "shared", fairness=FairnessConfig(
        seats=2, per_cluster=1, queue_length=2, max_wait=5, retry_after=1))
    await server.start()
    try:
        await asyncio.gather(*(server.add(ClusterConfig(
            name=n, data_dir=tmp_path / n,
            host=HostConnection(str(host.kubeconfig), kind="embedded"))) for n in NAMES))
        for n in NAMES:
            vc = server.members[n].vc
            assert vc is not None
            await vc.wait_ready(timeout=600)
        refused = dict(server.fair.rejected)
        assert sum(refused.values()) > 0, "the limits were meant to refuse start-up requests"
        for n in NAMES:
            out = await asyncio.to_thread(kubectl, tmp_path / n / "kubeconfig", "get", "ns",
                                          timeout=120)
            assert "kube-system" in out.stdout
        # the controllers (deployment → replica set → pod) and the syncer (pod → host) run
        kc = tmp_path / "t1" / "kubeconfig"
        await asyncio.to_thread(kubectl, kc, "create", "deployment", "web", "--image=nginx",
                                timeout=120)
        await _until_running(kc)
        # a wake under the same limits: its syncer's prepare marks the pod whose host pod the
        # sleep removed as not running, then runs it again
        before = sum(server.fair.rejected.values())
        assert await server.sleep("t1")
        await server.wake("t1")
        vc = server.members["t1"].vc
        assert vc is not None
        await vc.wait_ready(timeout=600)
        await _until_running(kc)
        assert sum(server.fair.rejected.values()) > before, "the wake met no 429"
        for n in NAMES:
            member = server.members[n]
            assert member.vc is not None and member.vc.error is None, n
            assert not member.vc.stopped.is_set(), f"{n}: a component ended its cluster"
    finally:
        await server.stop()
        await host.stop()
