"""Stores as the CLI reaches them (the CLI builds configurations and never imports
``vkube.store`` itself): the errors a bad ``--store`` produces, and snapshots of a store."""

from __future__ import annotations

from typing import Any

from vkube.store import StoreError, UnsupportedStore, describe, open_store
from vkube.store import snapshot as _snapshot
from vkube.store.snapshot import SnapshotError, SnapshotInfo

__all__ = ["SnapshotError", "SnapshotInfo", "StoreError", "UnsupportedStore", "describe",
           "restore_snapshot", "save_snapshot", "verify_snapshot"]


def verify_snapshot(path: str) -> SnapshotInfo:
    """Check a snapshot file in full before any store is touched (``SnapshotError``)."""
    return _snapshot.verify(path)


async def save_snapshot(url: str, path: str, *, prefix: str | None = None,
                        **options: Any) -> SnapshotInfo:
    """``prefix``: one cluster of a shared store (``/clusters/NAME``), whose keys the file
    holds without the prefix, as a dedicated cluster's (so it restores into either mode)."""
    store = open_store(url, **options)
    await store.start()
    try:
        if prefix is not None:
            from vkube.store.prefixed import PrefixedStore

            return await _snapshot.save(PrefixedStore(store, prefix), path)
        return await _snapshot.save(store, path)
    finally:
        await store.close()


async def restore_snapshot(url: str, path: str, **options: Any) -> SnapshotInfo:
    store = open_store(url, **options)
    await store.start()
    try:
        return await _snapshot.restore(store, path)
    finally:
        await store.close()
