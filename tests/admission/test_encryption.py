"""Secrets encrypted at rest: through kubectl, read back raw from the SQLite file, rotated."""

from __future__ import annotations

import base64
import os
import sqlite3
from pathlib import Path

import pytest
import yaml

from tests.conftest import RunningControlPlane, kubectl
from vkube.apiserver.encryption import ConfigError, EncryptionConfig
from vkube.apiserver.server import ControlPlane

SECRET_VALUE = "s3cr3t-do-not-leak-7d1f"


def raw_rows(db: Path) -> list[tuple[str, bytes]]:
    """Every stored key and value, straight from the database file (a copy of the data dir)."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        tables = [r[0] for r in con.execute("select name from sqlite_master where type='table'")]
        rows = []
        for t in tables:
            cols = [c[1] for c in con.execute(f"pragma table_info({t})")]
            for row in con.execute(f"select * from {t}"):
                rows.append((t, b" ".join(v if isinstance(v, bytes) else str(v).encode() for v in row)))
            assert cols
        return rows
    finally:
        con.close()


def everything(db: Path) -> bytes:
    data = b"".join(v for _, v in raw_rows(db))
    for extra in (db.with_name(db.name + "-wal"),):
        if extra.exists():
            data += extra.read_bytes()
    return data


def aes_config(path: Path, *keys: tuple[str, str], identity_first: bool = False) -> Path:
    providers = [{"aesgcm": {"keys": [{"name": n, "secret": s} for n, s in keys]}}, {"identity": {}}]
    if identity_first:
        providers.reverse()
    path.write_text(yaml.safe_dump({"apiVersion": "apiserver.config.k8s.io/v1",
                                    "kind": "EncryptionConfiguration",
                                    "resources": [{"resources": ["secrets"], "providers": providers}]}))
    return path


def key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


async def start(tmp: Path, **kw) -> RunningControlPlane:
    cp = ControlPlane(data_dir=tmp / "cp", **kw)
    await cp.start()
    return RunningControlPlane(cp, tmp / "cp" / "kubeconfig")


async def kc(cp: RunningControlPlane, *args: str, **kw):
    import asyncio

    return await asyncio.to_thread(kubectl, cp.kubeconfig, *args, **kw)


async def test_default_key_encrypts_secrets_not_configmaps(tmp_path):
    cp = await start(tmp_path)
    try:
        await kc(cp, "create", "secret", "generic", "db", f"--from-literal=password={SECRET_VALUE}")
        await kc(cp, "create", "configmap", "plain", "--from-literal=v=visible-configmap-value")
        out = await kc(cp, "get", "secret", "db", "-o", "jsonpath={.data.password}")
        assert base64.b64decode(out.stdout).decode() == SECRET_VALUE
    finally:
        await cp.cp.stop()
    db = tmp_path / "cp" / "state.db"
    data = everything(db)
    assert SECRET_VALUE.encode() not in data and base64.b64encode(SECRET_VALUE.encode()) not in data
    assert b"visible-configmap-value" in data  # configmaps are not configured: plain
    assert b"k8s:enc:aesgcm:v1:key1:" in data
    assert oct((tmp_path / "cp" / "encryption-config.yaml").stat().st_mode & 0o777) == "0o600"
    # the same data dir starts again with its key and reads its secrets back
    cp = await start(tmp_path)
    try:
        out = await kc(cp, "get", "secret", "db", "-o", "jsonpath={.data.password}")
        assert base64.b64decode(out.stdout).decode() == SECRET_VALUE
    finally:
        await cp.cp.stop()


async def test_rotation_by_rewriting(tmp_path):
    old, new = key(), key()
    cfg = tmp_path / "enc.yaml"
    cp = await start(tmp_path, encryption_config=aes_config(cfg, ("old", old)))
    try:
        await kc(cp, "create", "secret", "generic", "a", f"--from-literal=k={SECRET_VALUE}")
    finally:
        await cp.cp.stop()
    db = tmp_path / "cp" / "state.db"
    assert b"k8s:enc:aesgcm:v1:old:" in everything(db)
    # new key first, old one still readable; re-write every secret: all under the new key
    cp = await start(tmp_path, encryption_config=aes_config(cfg, ("new", new), ("old", old)))
    try:
        listing = (await kc(cp, "get", "secrets", "-A", "-o", "json")).stdout
        # --validate=false: kubectl validates a List through protobuf /openapi/v2, not served (see report)
        await kc(cp, "replace", "--validate=false", "-f", "-", input=listing)
    finally:
        await cp.cp.stop()
    rows = [v for t, v in raw_rows(db) if b"/secrets/default/a" in v]
    assert b"k8s:enc:aesgcm:v1:old:" in rows[0]  # history keeps the old ciphertext until compaction
    assert b"k8s:enc:aesgcm:v1:new:" in rows[-1], rows[-1][:120]
    # drop the old key: the secret still reads
    cp = await start(tmp_path, encryption_config=aes_config(cfg, ("new", new)))
    try:
        out = await kc(cp, "get", "secret", "a", "-o", "jsonpath={.data.k}")
        assert base64.b64decode(out.stdout).decode() == SECRET_VALUE
    finally:
        await cp.cp.stop()


async def test_wrong_key_cannot_read(tmp_path):
    cfg = tmp_path / "enc.yaml"
    cp = await start(tmp_path, encryption_config=aes_config(cfg, ("k", key())))
    try:
        await kc(cp, "create", "secret", "generic", "a", "--from-literal=k=v")
    finally:
        await cp.cp.stop()
    cp = await start(tmp_path, encryption_config=aes_config(cfg, ("k", key())))
    try:
        out = await kc(cp, "get", "secret", "a", check=False)
        assert out.returncode != 0 and "unable to transform key" in out.stderr
    finally:
        await cp.cp.stop()


def test_secretbox_and_identity_fallback():
    doc = {"kind": "EncryptionConfiguration", "resources": [{"resources": ["secrets", "*.apps"], "providers": [
        {"secretbox": {"keys": [{"name": "sb", "secret": key()}]}}, {"identity": {}}]}]}
    cfg = EncryptionConfig.parse(doc)
    t = cfg.for_resource("", "secrets")
    assert t is not None and cfg.for_resource("apps", "deployments") is not None
    assert cfg.for_resource("", "configmaps") is None
    sealed = t.to_storage(b'{"data":1}', "/registry/secrets/a/b")
    assert sealed.startswith(b"k8s:enc:secretbox:v1:sb:")
    assert t.from_storage(sealed, "/registry/secrets/a/b") == b'{"data":1}'
    assert t.from_storage(b'{"plain":1}', "k") == b'{"plain":1}'  # identity reads old data
    assert t.stale(b'{"plain":1}') and not t.stale(sealed)


@pytest.mark.parametrize("doc, message", [
    ({"kind": "Nope"}, "kind: must be EncryptionConfiguration"),
    ({"kind": "EncryptionConfiguration", "resources": [{"resources": ["secrets"], "providers": [
        {"aesgcm": {"keys": [{"name": "k", "secret": base64.b64encode(b"short").decode()}]}}]}]},
     "resources[0].providers[0].aesgcm.keys[0].secret: Invalid value: aesgcm key must be 16, 24, 32 bytes, got 5"),
    ({"kind": "EncryptionConfiguration", "resources": [{"resources": ["secrets"], "providers": [
        {"kms": {"name": "x"}}]}]}, "resources[0].providers[0].kms: KMS providers are not supported"),
    ({"kind": "EncryptionConfiguration", "resources": [{"resources": ["secrets"], "providers": [
        {"aesgcm": {"keys": [{"name": "k", "secret": "***"}]}}]}]}, "secret: Invalid value: secrets must be base64"),
])
def test_bad_configs_name_the_field(doc, message):
    with pytest.raises(ConfigError) as exc:
        EncryptionConfig.parse(doc)
    assert message in str(exc.value)


def test_snapshot_transforms_move_secrets_between_keys(tmp_path):
    """What ``vkube snapshot`` does with values encrypted at rest: decrypt with the source
    cluster's keys (any rule's, any provider), encrypt with the target's for the resource the
    key names; values already encrypted and resources not encrypted pass unchanged."""
    from vkube.api import errors

    src = EncryptionConfig.load(aes_config(tmp_path / "src.yaml", ("k1", key())))
    dst = EncryptionConfig.load(aes_config(tmp_path / "dst.yaml", ("k2", key())))
    k, plain = "/core/secrets/default/s", b'{"kind":"Secret"}'
    stored = src.for_resource("", "secrets").to_storage(plain, k)
    assert src.decrypt(k, stored) == plain
    assert src.decrypt("/core/configmaps/default/c", b"{}") == b"{}"
    moved = dst.encrypt(k, src.decrypt(k, stored))
    assert moved.startswith(b"k8s:enc:aesgcm:v1:k2:")
    assert dst.for_resource("", "secrets").from_storage(moved, k) == plain
    assert dst.encrypt("/core/configmaps/default/c", b"{}") == b"{}"
    assert dst.encrypt(k, stored) == stored  # already encrypted: left for its own key
    with pytest.raises(errors.InternalError, match="unable to transform key"):
        dst.decrypt(k, stored)
    with pytest.raises(errors.InternalError):  # the key is the authenticated data
        src.decrypt("/core/secrets/default/other", stored)
