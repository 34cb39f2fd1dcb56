"""The etcd backend: the shared conformance suite on a real etcd, each test under a key prefix
of its own (etcd's revision counter is shared, so the suite counts from each test's start)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from vkube.store import UnsupportedStore, open_store
from vkube.store.etcd import parse_url

from . import servers
from .conformance import EmptyPrefixConformance, StoreConformance


@pytest.fixture
def store_url(etcd_server: str) -> str:
    return f"{etcd_server}/vkube-test-{uuid.uuid4().hex[:12]}"


class TestEtcdConformance(StoreConformance):
    pass


@pytest.fixture(scope="module")
def bare_etcd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An etcd of this module's own: a store without a key prefix spans all of it, so it must
    not share one with other tests (nor with CI's ``VKUBE_TEST_ETCD``)."""
    try:
        with servers.etcd(str(tmp_path_factory.mktemp("bare-etcd"))) as url:
            yield url
    except FileNotFoundError as exc:
        pytest.skip(f"etcd store tests need a server: {exc}")


class TestEtcdWithoutKeyPrefix(EmptyPrefixConformance):
    """``etcd://HOST:PORT`` (no prefix): etcd refuses an empty key, so "everything" must be
    asked as the range from ``\\0``."""

    @pytest.fixture
    def store_url(self, bare_etcd: str) -> str:
        return bare_etcd


def test_urls() -> None:
    assert parse_url("etcd://127.0.0.1:2379") == ([("127.0.0.1", 2379)], "")
    assert parse_url("etcd://a:1,b:2/x/y/") == ([("a", 1), ("b", 2)], "/x/y")
    with pytest.raises(UnsupportedStore, match="HOST:PORT"):
        open_store("etcd://a:1,b")
    with pytest.raises(UnsupportedStore, match="certfile"):
        open_store("etcd://a:1", cert_file="/c.pem")
