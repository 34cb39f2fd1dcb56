"""Servers for the postgres and etcd store tests: the ones ``.ci/run`` started
(``VKUBE_TEST_POSTGRES``, ``VKUBE_TEST_ETCD``), else our own from the installed binaries."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest

from . import servers


def _server(kind: str, env: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if os.environ.get(env):
        yield os.environ[env]
        return
    start = servers.postgres if kind == "postgres" else servers.etcd
    try:
        with start(None if kind == "postgres" else str(tmp_path_factory.mktemp(kind))) as url:
            yield url
    except FileNotFoundError as exc:
        pytest.skip(f"{kind} store tests need a server: {exc}, or set {env}")


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from _server("postgres", "VKUBE_TEST_POSTGRES", tmp_path_factory)


@pytest.fixture(scope="session")
def etcd_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from _server("etcd", "VKUBE_TEST_ETCD", tmp_path_factory)


async def fresh_postgres_database(server: str) -> AsyncIterator[str]:
    """A new, empty database on ``server`` (dropped afterwards); yields its URL."""
    import asyncpg

    name = f"vkube_test_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(server)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    yield server.rsplit("/", 1)[0] + "/" + name
    admin = await asyncpg.connect(server)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()
