"""The etcd backend: the shared conformance suite on a real etcd, each test under a key prefix
of its own (etcd's revision counter is shared, so the suite counts from each test's start)."""

from __future__ import annotations

import uuid

import pytest

from vkube.store import UnsupportedStore, open_store
from vkube.store.etcd import parse_url

from .conformance import StoreConformance


@pytest.fixture
def store_url(etcd_server: str) -> str:
    return f"{etcd_server}/vkube-test-{uuid.uuid4().hex[:12]}"


class TestEtcdConformance(StoreConformance):
    pass


def test_urls() -> None:
    assert parse_url("etcd://127.0.0.1:2379") == ([("127.0.0.1", 2379)], "")
    assert parse_url("etcd://a:1,b:2/x/y/") == ([("a", 1), ("b", 2)], "/x/y")
    with pytest.raises(UnsupportedStore, match="HOST:PORT"):
        open_store("etcd://a:1,b")
    with pytest.raises(UnsupportedStore, match="certfile"):
        open_store("etcd://a:1", cert_file="/c.pem")
