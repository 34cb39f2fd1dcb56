"""``vkube snapshot save``/``restore`` of a cluster whose store is an etcd without a key prefix
(``controlPlane.store: etcd://HOST:PORT``, the prefix being optional): "every key" has no key to
send to etcd, which refused it ("key is not provided")."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.cli.conftest import User, cleanup, make_user
from vkube.cli.snapshot_cmd import _write_failed
from vkube.store.base import BackendError

from . import servers


@pytest.fixture
def bare_etcd(tmp_path: Path) -> Iterator[str]:
    (tmp_path / "etcd").mkdir()
    try:
        with servers.etcd(str(tmp_path / "etcd")) as url:
            yield url
    except FileNotFoundError as exc:
        pytest.skip(f"etcd store tests need a server: {exc}")


@pytest.fixture
def user(tmp_path: Path) -> Iterator[User]:
    u = make_user(tmp_path / "user")
    yield u
    cleanup(u)


def _configmaps(user: User) -> set[str]:
    return {n.split("/", 1)[1] for n in
            user.kubectl("get", "cm", "-n", "default", "-o", "name").stdout.split()}


@pytest.mark.timeout(600)
def test_snapshot_of_a_cluster_on_an_etcd_without_prefix(user: User, tmp_path: Path,
                                                         bare_etcd: str) -> None:
    values = tmp_path / "etcd.yaml"
    values.write_text(yaml.safe_dump({"controlPlane": {"store": bare_etcd}}))
    user.vkube("create", "bare", "-f", str(values))
    for name in ("kept-1", "kept-2", "dropped"):
        user.kubectl("create", "configmap", name)
    file = tmp_path / "bare.jsonl"
    out = user.vkube("snapshot", "save", "bare", str(file)).stdout
    assert "saved" in out, out
    user.kubectl("delete", "configmap", "kept-1")
    user.kubectl("create", "configmap", "after")
    user.kubectl("label", "configmap", "kept-2", "changed=yes")
    user.vkube("pause", "bare")
    out = user.vkube("snapshot", "restore", "bare", str(file)).stdout
    assert "restored" in out, out
    user.vkube("resume", "bare")
    names = _configmaps(user)
    assert {"kept-1", "kept-2", "dropped"} <= names and "after" not in names, names
    assert "changed" not in user.kubectl("get", "cm", "kept-2", "--show-labels").stdout


def test_a_refusal_of_the_store_is_not_called_an_outage() -> None:
    """A request the store refuses whatever its state (etcd INVALID_ARGUMENT) is no reason to
    "run it again once the store is back"; a lost connection is."""
    args = argparse.Namespace(name="c1", file="/tmp/c1.jsonl")
    refused = str(_write_failed(args, "etcd://h:1", BackendError(
        "etcd etcd://h:1: INVALID_ARGUMENT: etcdserver: key is not provided", transient=False)))
    assert "once the store is back" not in refused and "refused" in refused
    assert "`vkube describe c1`" in refused
    outage = str(_write_failed(args, "etcd://h:1", BackendError("etcd: request timed out")))
    assert "once the store is back, run `vkube snapshot restore c1 /tmp/c1.jsonl`" in outage
