"""Stores as the CLI reaches them (the CLI builds configurations and never imports
``vkube.store`` itself): the errors a bad ``--store`` produces, and snapshots of a store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vkube.cluster.snapgrants import FLAGS as GRANT_FLAGS
from vkube.cluster.snapgrants import SnapshotGrant
from vkube.store import StoreError, UnsupportedStore, describe, open_store
from vkube.store import snapshot as _snapshot
from vkube.store.base import PartialCommit
from vkube.store.snapshot import SnapshotError, SnapshotInfo, same_cluster

__all__ = ["GRANT_FLAGS", "Decrypter", "PartialCommit", "SnapshotError", "SnapshotGrant",
           "SnapshotInfo", "StoreError", "UnsupportedStore", "cluster_origin", "describe", "same_cluster",
           "encrypter", "restore_snapshot", "save_snapshot", "snapshot_check", "verify_snapshot"]


def cluster_origin(name: str, data_dir: Path | None) -> dict[str, str] | None:
    """What a snapshot file saved from cluster ``name`` records as its origin, and what a
    restore into it expects for the file's HMAC to count (``snapshot.same_cluster``: the
    name; names are unique in an installation, and a cluster moved between the modes is
    deleted and created again under its name). The SHA-256 of its CA certificate
    (``DATA/pki/ca.crt``) is recorded too, for messages. None when vkube knows no data dir
    for it (a store named by ``--store``): no file is trusted for it, none records it."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    if data_dir is None:
        return None
    origin = {"cluster": name}
    try:
        ca = x509.load_pem_x509_certificate((data_dir / "pki" / "ca.crt").read_bytes())
    except (OSError, ValueError):
        return origin
    origin["ca"] = "sha256:" + ca.fingerprint(hashes.SHA256()).hex()
    return origin


def snapshot_check(path: str, encryption: Path | None,
                   allow: frozenset[str] = frozenset()) -> _snapshot.Check:
    """The content check of a restore into a cluster whose Secrets that EncryptionConfiguration
    file encrypts (``vkube.cluster.snapcheck``), allowing the grants named in ``allow``
    (``GRANT_FLAGS`` keys); ``SnapshotError`` if it cannot be read."""
    from vkube.cluster.snapcheck import check_for

    return check_for(path, encryption, allow)


def verify_snapshot(path: str, encryption: Path | None = None,
                    allow: frozenset[str] = frozenset(), key: bytes | None = None,
                    origin: dict[str, str] | None = None) -> SnapshotInfo:
    """Check a snapshot file in full — every line and every entry's object — before any
    store is touched (``SnapshotError`` naming the first bad entry); ``key``: this
    installation's, whose HMAC in a file saved from ``origin`` (the target's
    ``cluster_origin``) lets it grant what it holds (``info.signed``)."""
    return _snapshot.verify(path, snapshot_check(path, encryption, allow), key, origin)


class Decrypter:
    """Snapshot ``save`` transform: Secrets decrypted with the source cluster's keys (its
    EncryptionConfiguration file), so the file restores into a cluster with other keys. A
    value none of its keys decrypts — unreadable by that cluster's API server too — is kept
    as stored and counted in ``undecryptable``."""

    def __init__(self, config_file: Path) -> None:
        from vkube.apiserver.encryption import EncryptionConfig

        self.config = EncryptionConfig.load(config_file)
        self.undecryptable: list[str] = []

    def __call__(self, key: str, value: bytes) -> bytes:
        from vkube.api import errors

        try:
            return self.config.decrypt(key, value)
        except errors.InternalError:
            self.undecryptable.append(key)
            return value


def encrypter(config_file: Path) -> _snapshot.Transform:
    """Snapshot ``restore`` transform: plain values encrypted as the target cluster stores
    them (its EncryptionConfiguration file)."""
    from vkube.apiserver.encryption import EncryptionConfig

    return EncryptionConfig.load(config_file).encrypt


async def save_snapshot(url: str, path: str, *, prefix: str | None = None,
                        transform: _snapshot.Transform | None = None,
                        key: bytes | None = None, origin: dict[str, str] | None = None,
                        **options: Any) -> SnapshotInfo:
    """``prefix``: one cluster of a shared store (``/clusters/NAME``), whose keys the file
    holds without the prefix, as a dedicated cluster's (so it restores into either mode);
    ``key``: the file's trailer holds an HMAC with it; ``origin``: the source cluster's
    ``cluster_origin``, in the header (under the HMAC)."""
    store = open_store(url, **options)
    await store.start()
    try:
        if prefix is not None:
            from vkube.store.prefixed import PrefixedStore

            return await _snapshot.save(PrefixedStore(store, prefix), path, transform=transform,
                                        key=key, origin=origin)
        return await _snapshot.save(store, path, transform=transform, key=key, origin=origin)
    finally:
        await store.close()


async def restore_snapshot(url: str, path: str, *, transform: _snapshot.Transform | None = None,
                           check: _snapshot.Check | None = None, key: bytes | None = None,
                           origin: dict[str, str] | None = None, **options: Any) -> SnapshotInfo:
    store = open_store(url, **options)
    await store.start()
    try:
        return await _snapshot.restore(store, path, transform=transform, check=check, key=key,
                                       origin=origin)
    finally:
        await store.close()
