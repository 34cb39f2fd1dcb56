"""Issue 10's acceptance: 20 virtual clusters started through ``VirtualCluster`` in this process,
on this event loop, against one embedded host (``EmbeddedHostCluster``, also in this process).
A Deployment in each reaches its replicas Running, synced to each one's host namespace; one
cluster is deleted as ``vkube delete`` does (stop, host objects and namespace removed) and the
other 19 are untouched and still reconciling. Deployments are created with the real kubectl."""

from __future__ import annotations

import asyncio
import gc
import json
import threading
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.conftest import kubectl
from vkube.api import errors
from vkube.client import Client
from vkube.client.resources import NAMESPACES, PODS
from vkube.cluster import EmbeddedHostCluster, VirtualCluster

from .conftest import ClusterFactory, eventually

N = 20
REPLICAS = 2


def deployment(replicas: int) -> str:
    return json.dumps({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "web", "image": "nginx"}]}}}})


def store_threads() -> int:
    """Stores running in this process (each SQLite store has one writer thread)."""
    return sum(1 for t in threading.enumerate() if t.name.startswith("vkube-store-writer"))


def describe(tasks: set[asyncio.Task[Any]]) -> list[str]:
    out = []
    for t in tasks:
        frames = t.get_stack()
        where = [f"{f.f_code.co_filename.rsplit('/', 2)[-1]}:{f.f_lineno} {f.f_code.co_name}" for f in frames]
        out.append(f"{t.get_name()} {' > '.join(where)}")
    return sorted(out)


async def kubectl_async(kubeconfig: Path, *args: str, input: str | None = None) -> str:
    """The real kubectl, off the event loop (the clusters it talks to run on this loop)."""
    proc = await asyncio.to_thread(kubectl, kubeconfig, *args, input=input, timeout=120)
    return proc.stdout


async def running_pods(cluster: Any, namespace: str, **kw: Any) -> dict[str, str]:
    """name -> uid of Running pods (asked as the cluster's admin)."""
    async with Client(cluster.url, ssl=cluster.control_plane.client_ssl()) as c:
        items = (await c.list(PODS, namespace=namespace, **kw))["items"]
    return {p["metadata"]["name"]: p["metadata"]["uid"] for p in items
            if (p.get("status") or {}).get("phase") == "Running"
            and not p["metadata"].get("deletionTimestamp")}


async def converged(vc: VirtualCluster, host: EmbeddedHostCluster, replicas: int) -> tuple[dict[str, str], dict[str, str]]:
    """Wait until the cluster has exactly ``replicas`` Running pods, each synced to a Running
    host pod in its host namespace; returns (virtual, host) name -> uid."""
    async def check() -> tuple[dict[str, str], dict[str, str]]:
        virtual = await running_pods(vc, "default")
        assert len(virtual) == replicas, f"{vc.name}: {len(virtual)} of {replicas} virtual pods Running"
        hosted = await running_pods(host, vc.host_namespace,
                                    label_selector=f"vkube.io/managed-by={vc.name}")
        assert len(hosted) == replicas, f"{vc.name}: {len(hosted)} of {replicas} host pods Running"
        assert {n.split("-x-")[0] for n in hosted} == set(virtual)
        return virtual, hosted
    return await eventually(check, timeout=600, delay=1.0)


@pytest.mark.timeout(1800)
async def test_twenty_clusters_one_process_one_deleted_others_untouched(
        embedded_host: EmbeddedHostCluster, virtual_cluster: ClusterFactory) -> None:
    clusters = [await virtual_cluster(f"t{i:02d}") for i in range(N)]
    assert len({vc.port for vc in clusters}) == N
    await asyncio.gather(*(vc.wait_ready(timeout=600) for vc in clusters))

    await asyncio.gather(*(kubectl_async(vc.config.data_dir / "kubeconfig", "apply", "-f", "-",
                                         input=deployment(REPLICAS)) for vc in clusters))
    before = dict(zip([vc.name for vc in clusters],
                      await asyncio.gather(*(converged(vc, embedded_host, REPLICAS) for vc in clusters))))

    # delete t00 as `vkube delete` does: stop it, remove what its syncer made on the host
    gone, rest = clusters[0], clusters[1:]
    await gone.stop()
    assert gone.stopped.is_set() and gone.error is None
    assert store_threads() == N  # 19 clusters + the host: t00's store closed its thread
    removed = await gone.remove_from_host()
    assert removed >= REPLICAS

    async with Client(embedded_host.url, ssl=embedded_host.control_plane.client_ssl()) as h:
        async def namespace_gone() -> None:
            try:
                ns = await h.get(NAMESPACES, gone.host_namespace)
            except errors.NotFound:
                return
            raise AssertionError(f"host namespace still there: {ns['status']}")
        await eventually(namespace_gone, timeout=300)
        leftovers = (await h.list(PODS, label_selector=f"vkube.io/managed-by={gone.name}"))["items"]
        assert leftovers == []

    # the other 19: the same virtual and host pods (same uids), still answering
    for vc in rest:
        virtual, hosted = await converged(vc, embedded_host, REPLICAS)
        assert (virtual, hosted) == before[vc.name], f"{vc.name} changed when t00 was deleted"
        assert not vc.stopped.is_set()

    # ... and still reconciling: scale one up, it converges; another is still what it was
    await kubectl_async(rest[0].config.data_dir / "kubeconfig", "scale", "deployment/web",
                        "--replicas=4")
    virtual, hosted = await converged(rest[0], embedded_host, 4)
    assert set(before[rest[0].name][0]) <= set(virtual)
    assert await converged(rest[1], embedded_host, REPLICAS) == before[rest[1].name]

    # a clean stop leaves no tasks, threads or client sessions behind (the host's own go when it stops)
    await asyncio.gather(*(vc.stop() for vc in rest))
    assert all(vc.error is None for vc in rest)
    assert store_threads() == 1  # the host's
    await embedded_host.stop()
    assert embedded_host.error is None
    left = {t for t in asyncio.all_tasks() if not t.done()} - {asyncio.current_task()}
    assert not left, describe(left)
    assert store_threads() == 0
    gc.collect()
    open_sessions = [o for o in gc.get_objects() if isinstance(o, aiohttp.ClientSession) and not o.closed]
    assert not open_sessions, [o.headers.get("User-Agent") for o in open_sessions]
