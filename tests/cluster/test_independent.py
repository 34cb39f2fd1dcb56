"""Two VirtualClusters in one process share nothing per-cluster: objects, registry (and the
discovery built from it), metrics, controller queues. And a component that fails takes its
own cluster down whole — never another one, never leaving half a cluster answering."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import kubectl
from vkube.cluster import ClusterConfig, HostConnection, VirtualCluster


def _metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample of the Prometheus text format, 0 when absent."""
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def _get(cluster, path: str) -> str:
    """GET as the cluster's admin over verified TLS."""
    tls = aiohttp.TCPConnector(ssl=cluster.control_plane.client_ssl())
    async with aiohttp.ClientSession(connector=tls) as s, s.get(cluster.url + path) as r:
        assert r.status == 200
        return await r.text()


async def run_kubectl(kubeconfig: Path, *args: str, check: bool = True) -> str:
    proc = await asyncio.to_thread(kubectl, kubeconfig, *args, check=check)
    return proc.stdout + proc.stderr


@pytest.fixture
async def pair(tmp_path: Path):  # noqa: ANN201
    a = VirtualCluster(ClusterConfig(name="a", data_dir=tmp_path / "a", leader_election=False))
    b = VirtualCluster(ClusterConfig(name="b", data_dir=tmp_path / "b", leader_election=False))
    await asyncio.gather(a.start(), b.start())
    try:
        await asyncio.gather(a.wait_ready(timeout=120), b.wait_ready(timeout=120))
        yield a, b
    finally:
        await asyncio.gather(a.stop(), b.stop())


async def test_registries_metrics_and_objects_are_per_cluster(pair) -> None:  # noqa: ANN001
    a, b = pair
    ka, kb = a.config.data_dir / "kubeconfig", b.config.data_dir / "kubeconfig"

    # objects
    await run_kubectl(ka, "create", "configmap", "only-in-a", "--from-literal=k=v")
    assert "only-in-a" in await run_kubectl(ka, "get", "configmaps")
    out = await run_kubectl(kb, "get", "configmap", "only-in-a", check=False)
    assert 'configmaps "only-in-a" not found' in out

    # metrics: A counted its create; B saw none (no controller creates Secrets)
    await run_kubectl(ka, "create", "secret", "generic", "s1", "--from-literal=k=v")
    ma, mb = await _get(a, "/metrics"), await _get(b, "/metrics")
    labels = {"verb": "create", "resource": "secrets", "code": "201"}
    assert _metric(ma, "apiserver_request_total", **labels) == 1
    assert _metric(mb, "apiserver_request_total", **labels) == 0
    assert a.control_plane.server.metrics.registry is not b.control_plane.server.metrics.registry

    # registry: a kind served by A only (what a CRD does) shows in A's discovery alone
    cm = a.control_plane.registry.get("", "v1", "configmaps")
    assert cm is not None and cm is not b.control_plane.registry.get("", "v1", "configmaps")
    a.control_plane.registry.add(dataclasses.replace(
        cm, group="demo.example.com", kind="Widget", plural="widgets", singular="widget",
        short_names=()))
    assert "widgets" in await run_kubectl(ka, "api-resources", "--api-group=demo.example.com")
    assert "widgets" not in await run_kubectl(kb, "api-resources", "--api-group=demo.example.com")
    assert "the server doesn't have a resource type" in await run_kubectl(
        kb, "get", "widgets", check=False)

    # controllers: each cluster its own manager, queues and informers
    ma_, mb_ = a.controller_manager, b.controller_manager
    assert ma_ is not None and mb_ is not None and ma_ is not mb_
    assert not {id(c.queue) for c in ma_.controllers} & {id(c.queue) for c in mb_.controllers}
    assert not {id(i) for i in ma_._informers.values()} & {id(i) for i in mb_._informers.values()}

    # one stops; the other is unaffected and still reconciles (a namespace gets its SA)
    await a.stop()
    await run_kubectl(kb, "create", "namespace", "after")

    async def sa_made() -> None:
        for _ in range(240):
            if "default" in await run_kubectl(kb, "get", "serviceaccounts", "-n", "after",
                                              check=False):
                return
            await asyncio.sleep(0.25)
        raise AssertionError("the serviceaccount controller of b did not act")
    await sa_made()


async def test_a_failing_component_stops_its_whole_cluster_only(tmp_path: Path) -> None:
    healthy = VirtualCluster(ClusterConfig(name="ok", data_dir=tmp_path / "ok",
                                           leader_election=False))
    broken = VirtualCluster(ClusterConfig(
        name="broken", data_dir=tmp_path / "broken", leader_election=False,
        host=HostConnection(str(tmp_path / "no-such-kubeconfig"))))
    await healthy.start()
    await broken.start()  # the API comes up; the syncer then fails: no host kubeconfig
    try:
        await asyncio.wait_for(broken.stopped.wait(), 120)
        assert isinstance(broken.error, FileNotFoundError), broken.error
        with pytest.raises(RuntimeError, match="stopped before it was ready"):
            await broken.wait_ready(timeout=1)
        # the whole cluster went: its API no longer answers
        with pytest.raises(aiohttp.ClientConnectionError):
            await _get(broken, "/healthz")
        # the other cluster never noticed
        await healthy.wait_ready(timeout=120)
        assert await _get(healthy, "/healthz") == "ok"
        assert not healthy.stopped.is_set()
    finally:
        await broken.stop()
        await healthy.stop()
