"""Fixtures for the HA tests: PostgreSQL and etcd servers (the ones ``.ci/run`` started, else
our own) and a CLI user with their own VKUBE_HOME and kubeconfig."""

from __future__ import annotations

import asyncio
import os
import time
import uuid

import pytest

from tests.cli.conftest import user  # noqa: F401  (fixture)
from tests.store.conftest import etcd_server, postgres_server  # noqa: F401  (fixtures)


async def fresh_database(server: str) -> str:
    """A new database on the PostgreSQL ``server``: each test its own cluster state."""
    import asyncpg

    name = f"vkube_ha_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(server)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return server.rsplit("/", 1)[0] + "/" + name


@pytest.fixture(params=["postgres", "etcd"])
def shared_store(request: pytest.FixtureRequest) -> str:
    """A fresh shared store URL: a new PostgreSQL database, or a new etcd key prefix."""
    if request.param == "postgres":
        return asyncio.run(fresh_database(request.getfixturevalue("postgres_server")))
    return request.getfixturevalue("etcd_server") + f"/ha-{os.getpid()}-{time.monotonic_ns()}"
