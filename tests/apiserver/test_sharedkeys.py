"""HA replicas agree on one front-proxy CA through the store, as on the cluster CA: a fresh
bundle carries it, and a bundle stored before the front-proxy CA existed is completed by the
first replica that starts with this version, then adopted by the others."""

from __future__ import annotations

from pathlib import Path

import orjson

from vkube.apiserver.sharedkeys import CLUSTER_KEYS, share_cluster_keys
from vkube.pki.cluster import ClusterPKI
from vkube.store import open_store


def _pki(tmp: Path, name: str) -> tuple[Path, ClusterPKI]:
    directory = tmp / name / "pki"
    directory.mkdir(parents=True)
    return directory, ClusterPKI(directory, name="ha")


def _front_proxy(directory: Path) -> bytes:
    return (directory / "front-proxy-ca.crt").read_bytes()


async def test_replicas_share_the_front_proxy_ca(tmp_path: Path):
    store = open_store(":memory:")
    await store.start()
    try:
        dir_a, pki_a = _pki(tmp_path, "a")
        dir_b, pki_b = _pki(tmp_path, "b")
        assert pki_a.front_proxy_ca.cert_pem != pki_b.front_proxy_ca.cert_pem  # each made its own
        a = await share_cluster_keys(store, dir_a, None, pki_a, "ha", False)
        b = await share_cluster_keys(store, dir_b, None, pki_b, "ha", False)
        assert a is pki_a and b is not pki_b  # the first one's bundle wins
        assert _front_proxy(dir_a) == _front_proxy(dir_b) == b.front_proxy_ca.cert_pem
        assert b.front_proxy_client().cert_pem != a.front_proxy_client().cert_pem  # each its own leaf
    finally:
        await store.close()


async def test_a_bundle_from_before_the_front_proxy_ca_is_completed(tmp_path: Path):
    store = open_store(":memory:")
    await store.start()
    try:
        old_dir, old = _pki(tmp_path, "old")
        await store.create(CLUSTER_KEYS, orjson.dumps({
            "ca.crt": old.ca.cert_pem.decode(), "ca.key": old.ca.key_pem.decode(),
            "sa.key": old.signing_key.private_pem().decode()}))
        dir_a, pki_a = _pki(tmp_path, "a")
        dir_b, pki_b = _pki(tmp_path, "b")
        a = await share_cluster_keys(store, dir_a, None, pki_a, "ha", False)
        b = await share_cluster_keys(store, dir_b, None, pki_b, "ha", False)
        assert a.ca.cert_pem == b.ca.cert_pem == old.ca.cert_pem
        assert _front_proxy(dir_a) == _front_proxy(dir_b) == pki_a.front_proxy_ca.cert_pem
        stored = orjson.loads((await store.get(CLUSTER_KEYS)).value)
        assert stored["front-proxy-ca.crt"] == pki_a.front_proxy_ca.cert_pem.decode()
        assert stored["ca.key"] == old.ca.key_pem.decode()
    finally:
        await store.close()
