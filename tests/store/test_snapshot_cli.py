"""``vkube snapshot save`` of a running virtual cluster (SQLite) under write load, ``restore``
into another, paused, virtual cluster whose store is PostgreSQL (``controlPlane.store``): after
``resume`` kubectl sees exactly the configmaps of the snapshot."""

from __future__ import annotations

import asyncio
import base64
import json
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import kubernetes
import pytest
import yaml

from tests.cli.conftest import User, cleanup, make_user

from .conftest import fresh_postgres_database


@pytest.fixture
async def postgres_db(postgres_server: str) -> AsyncIterator[str]:
    async for url in fresh_postgres_database(postgres_server):
        yield url


@pytest.fixture
def user(tmp_path: Path) -> User:
    u = make_user(tmp_path / "user")
    yield u  # type: ignore[misc]
    cleanup(u)


async def _rows(url: str) -> int:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM kv"))
    finally:
        await conn.close()


def _snapshot_configmaps(path: Path) -> set[str]:
    names = set()
    for line in path.read_bytes().splitlines()[1:-1]:
        obj = json.loads(base64.b64decode(json.loads(line)["v"]))
        meta = obj.get("metadata", {})
        if obj.get("kind") == "ConfigMap" and meta.get("namespace") == "default":
            names.add(meta["name"])
    return names


@pytest.mark.timeout(600)
def test_snapshot_under_load_restores_into_a_postgres_cluster(user: User, tmp_path: Path,
                                                              postgres_db: str) -> None:
    user.vkube("create", "src")
    for i in range(0, 100, 25):
        user.kubectl("create", "configmap", f"base-{i}", f"--from-literal=i={i}")
    server = next(c["cluster"]["server"] for c in yaml.safe_load(user.kubeconfig.read_text())
                  ["clusters"] if c["name"] == "vkube_src")
    acked: list[str] = []
    stop = threading.Event()

    cfg = kubernetes.client.Configuration()  # as users configure it: the kubeconfig's context
    kubernetes.config.load_kube_config(config_file=str(user.kubeconfig), context="vkube_src",
                                       client_configuration=cfg)
    assert cfg.host == server
    with kubernetes.client.ApiClient(cfg) as api:
        core = kubernetes.client.CoreV1Api(api)
        for i in range(100):
            if i % 25:
                core.create_namespaced_config_map("default", {"metadata": {"name": f"base-{i}"},
                                                              "data": {"i": str(i)}})

    def load() -> None:
        with kubernetes.client.ApiClient(cfg) as api:
            core = kubernetes.client.CoreV1Api(api)
            i = 0
            while not stop.is_set():
                core.create_namespaced_config_map("default", {"metadata": {"name": f"load-{i}"}})
                acked.append(f"load-{i}")
                i += 1

    writer = threading.Thread(target=load)
    writer.start()
    try:
        while len(acked) < 50:
            threading.Event().wait(0.05)
        before = set(acked)
        file = tmp_path / "src.jsonl"
        out = user.vkube("snapshot", "save", "src", str(file)).stdout
        after = set(acked)
    finally:
        stop.set()
        writer.join()
    assert "saved" in out and "at revision" in out
    saved = _snapshot_configmaps(file)
    assert {f"base-{i}" for i in range(100)} | before <= saved  # acknowledged before: in it
    loads = {name for name in saved if name.startswith("load-")}
    # One writer creates load-0, load-1, ... in turn: a cut at one revision holds a prefix.
    assert loads == {f"load-{i}" for i in range(len(loads))} and len(loads) <= len(after) + 1

    values = tmp_path / "pg.yaml"
    values.write_text(yaml.safe_dump({"controlPlane": {"store": postgres_db}}))
    user.vkube("create", "dst", "-f", str(values), "--connect=false")
    assert asyncio.run(_rows(postgres_db)) > 0  # dst keeps its objects in PostgreSQL
    out = user.vkube("snapshot", "restore", "dst", str(file), check=False)
    assert out.returncode != 0 and "vkube pause dst" in out.stderr  # running: refused
    user.vkube("pause", "dst")
    out = user.vkube("snapshot", "restore", "dst", str(file)).stdout
    assert "restored" in out
    user.vkube("resume", "dst")
    user.vkube("connect", "dst")
    names = {n.split("/", 1)[1] for n in
             user.kubectl("get", "cm", "-n", "default", "-o", "name").stdout.split()}
    assert names == saved


@pytest.mark.timeout(600)
def test_moving_a_cluster_to_postgres_keeps_resource_versions(user: User, tmp_path: Path,
                                                              postgres_db: str) -> None:
    """Save a SQLite cluster, restore into an empty PostgreSQL database (``--store``), start a
    cluster on it: every object has the uid and resourceVersion it had, an update guarded by
    the old resourceVersion passes, and the new one continues from the snapshot's."""
    user.vkube("create", "src")
    for i in range(5):
        user.kubectl("create", "configmap", f"cm-{i}", f"--from-literal=i={i}")
    user.kubectl("label", "configmap", "cm-0", "moved=yes")
    user.vkube("pause", "src")
    file = tmp_path / "src.jsonl"
    user.vkube("snapshot", "save", "src", str(file))
    out = user.vkube("snapshot", "restore", "src", str(file), "--store", postgres_db).stdout
    assert "resourceVersions kept" in out, out
    user.vkube("resume", "src")
    src = {o["metadata"]["name"]: (o["metadata"]["uid"], o["metadata"]["resourceVersion"])
           for o in json.loads(user.kubectl("get", "cm", "-o", "json").stdout)["items"]
           if o["metadata"]["name"].startswith("cm-")}
    user.vkube("delete", "src")

    values = tmp_path / "pg.yaml"
    values.write_text(yaml.safe_dump({"controlPlane": {"store": postgres_db}}))
    user.vkube("create", "dst", "-f", str(values))
    dst = {o["metadata"]["name"]: (o["metadata"]["uid"], o["metadata"]["resourceVersion"])
           for o in json.loads(user.kubectl("get", "cm", "-o", "json").stdout)["items"]
           if o["metadata"]["name"].startswith("cm-")}
    assert dst == src and len(dst) == 5
    old_rv = src["cm-1"][1]
    patch = json.dumps({"metadata": {"resourceVersion": old_rv, "labels": {"x": "y"}}})
    user.kubectl("patch", "configmap", "cm-1", "--type=merge", "-p", patch)
    assert int(json.loads(user.kubectl("get", "cm", "cm-1", "-o", "json").stdout)[
        "metadata"]["resourceVersion"]) > max(int(rv) for _, rv in src.values())
