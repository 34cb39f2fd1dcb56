"""Snapshots at the store level: taken under write load on one backend, consistent at one
revision, restored into another backend to an equal key set; bad files refused up front."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from vkube.store import open_store
from vkube.store.base import Store
from vkube.store.snapshot import SnapshotError, restore, save, verify

from .conftest import fresh_postgres_database


async def _url(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    if kind == "sqlite":
        yield f"sqlite://{tmp_path}/{uuid.uuid4().hex}.db"
    elif kind == "postgres":
        async for url in fresh_postgres_database(request.getfixturevalue("postgres_server")):
            yield url
    else:
        yield f"{request.getfixturevalue('etcd_server')}/snap-{uuid.uuid4().hex[:12]}"


async def _open(url: str) -> Store:
    store = open_store(url)
    await store.start()
    return store


async def _everything(store: Store, revision: int = 0) -> dict[str, bytes]:
    out, start_after = {}, ""
    while True:
        page = await store.range("", start_after=start_after, limit=500, revision=revision)
        out.update((kv.key, kv.value) for kv in page.kvs)
        if not page.more:
            return out
        start_after = page.kvs[-1].key


def _entries(path: Path) -> dict[str, bytes]:
    import base64

    lines = path.read_bytes().splitlines()[1:-1]
    return {d["k"]: base64.b64decode(d["v"]) for d in map(json.loads, lines)}


@pytest.mark.parametrize("source_kind, target_kind", [
    ("sqlite", "postgres"), ("postgres", "etcd"), ("etcd", "sqlite")])
async def test_snapshot_under_load_restores_into_another_backend(
        source_kind: str, target_kind: str, request: pytest.FixtureRequest,
        tmp_path: Path) -> None:
    async for source_url in _url(source_kind, request, tmp_path):
        async for target_url in _url(target_kind, request, tmp_path):
            source, target = await _open(source_url), await _open(target_url)
            try:
                for i in range(1500):
                    await source.create(f"/registry/cm/default/{i:05d}", b"v0-%d" % i)
                stop = asyncio.Event()

                async def load() -> None:  # updates, deletes and creates during the save
                    i = 0
                    while not stop.is_set():
                        await source.update(f"/registry/cm/default/{i % 1500:05d}", b"v%d" % i,
                                            expected_mod_revision=0)
                        await source.create(f"/registry/new/{i}", b"n")
                        if i % 3 == 0:
                            await source.delete(f"/registry/new/{i}")
                        i += 1

                writer = asyncio.create_task(load())
                await asyncio.sleep(0.05)
                info = await save(source, tmp_path / "snap.jsonl")
                stop.set()
                await writer
                at = await _everything(source, info.revision)
                assert _entries(tmp_path / "snap.jsonl") == at  # one consistent revision
                assert info.keys == len(at) >= 1500

                await target.create("/registry/stale/x", b"must go")
                await target.create("/registry/cm/default/00000", b"old")
                restored = await restore(target, tmp_path / "snap.jsonl")
                assert await _everything(target) == at
                assert restored.deleted == 1 and restored.keys == len(at)
            finally:
                await source.close()
                await target.close()


async def test_newer_format_truncated_and_foreign_files_are_refused(tmp_path: Path) -> None:
    store = await _open(f"sqlite://{tmp_path}/s.db")
    try:
        await store.create("/a", b"1")
        path = tmp_path / "s.jsonl"
        await save(store, path)
        assert verify(path).keys == 1
        lines = path.read_bytes().splitlines(keepends=True)

        newer = tmp_path / "newer.jsonl"
        header = json.loads(lines[0])
        newer.write_bytes(json.dumps({**header, "version": 99}).encode() + b"\n" + b"".join(lines[1:]))
        with pytest.raises(SnapshotError, match="format 99, written by a newer vkube"):
            await restore(store, newer)

        cut = tmp_path / "cut.jsonl"
        cut.write_bytes(b"".join(lines[:-1]))
        with pytest.raises(SnapshotError, match="truncated"):
            await restore(store, cut)

        edited = tmp_path / "edited.jsonl"
        edited.write_bytes(lines[0] + lines[1].replace(b'"/a"', b'"/b"') + lines[2])
        with pytest.raises(SnapshotError, match="corrupt"):
            await restore(store, edited)

        foreign = tmp_path / "foreign.json"
        foreign.write_text('{"kind": "Config"}\n')
        with pytest.raises(SnapshotError, match="not a vkube snapshot"):
            await restore(store, foreign)
        assert await _everything(store) == {"/a": b"1"}  # nothing was touched
    finally:
        await store.close()


@pytest.mark.parametrize("source_kind, target_kind", [
    ("etcd", "sqlite"), ("sqlite", "postgres"), ("postgres", "sqlite")])
async def test_restore_into_an_empty_store_keeps_revisions(
        source_kind: str, target_kind: str, request: pytest.FixtureRequest,
        tmp_path: Path) -> None:
    """resourceVersions survive a move to another backend: every key keeps its create and mod
    revision, the revision goes on from the snapshot's, an old guard still holds, and a watch
    from before the snapshot is told to relist (its history is not in the new store)."""
    from vkube.store.base import Compacted

    async for source_url in _url(source_kind, request, tmp_path):
        async for target_url in _url(target_kind, request, tmp_path):
            source, target = await _open(source_url), await _open(target_url)
            try:
                first = await source.create("/registry/a/one", b"1")
                kv = await source.create("/registry/a/two", b"2")
                await source.update("/registry/a/two", b"2b", expected_mod_revision=kv.mod_revision)
                gone = await source.create("/registry/a/gone", b"x")
                await source.delete("/registry/a/gone")  # the snapshot's revision: no key has it
                info = await save(source, tmp_path / "snap.jsonl")
                want = {kv.key: (kv.value, kv.create_revision, kv.mod_revision)
                        for kv in (await source.range("/registry/")).kvs}
                restored = await restore(target, tmp_path / "snap.jsonl")
                assert restored.kept_revisions
                got = {kv.key: (kv.value, kv.create_revision, kv.mod_revision)
                       for kv in (await target.range("/registry/")).kvs}
                assert got == want
                assert await target.current_revision() == info.revision
                assert target.compacted_revision == info.revision
                with pytest.raises(Compacted):
                    await target.range("/registry/", revision=gone.mod_revision)
                it = target.watch("/registry/", after_revision=info.revision)
                now = await target.update("/registry/a/one", b"1b",
                                          expected_mod_revision=first.mod_revision)
                assert now.mod_revision == info.revision + 1
                assert now.create_revision == first.create_revision
                ev = await asyncio.wait_for(anext(it), 30)
                assert (ev.type, ev.revision, ev.prev.mod_revision) == (
                    "MODIFIED", now.mod_revision, first.mod_revision)
                await it.aclose()
                with pytest.raises(Compacted):
                    await anext(target.watch("/registry/", after_revision=first.mod_revision))
            finally:
                await source.close()
                await target.close()


async def test_where_revisions_cannot_be_kept_the_restore_says_so(
        request: pytest.FixtureRequest, tmp_path: Path) -> None:
    """etcd assigns its own revisions; a store with data must not see time run backwards; a
    file of an older vkube has no revisions: each restores the keys at new revisions."""
    source = await _open(f"sqlite://{tmp_path}/src.db")
    try:
        await source.create("/registry/a/one", b"1")
        await save(source, tmp_path / "snap.jsonl")
    finally:
        await source.close()
    lines = (tmp_path / "snap.jsonl").read_bytes().splitlines(keepends=True)
    old_format = tmp_path / "old.jsonl"
    import hashlib

    body = [json.dumps({k: v for k, v in json.loads(line).items() if k in ("k", "v")}).encode()
            + b"\n" for line in lines[1:-1]]
    end = {"end": True, "keys": len(body), "sha256": hashlib.sha256(b"".join(body)).hexdigest()}
    old_format.write_bytes(lines[0] + b"".join(body) + json.dumps(end).encode() + b"\n")
    async for etcd_url in _url("etcd", request, tmp_path):
        cases = [(etcd_url, tmp_path / "snap.jsonl"),
                 (f"sqlite://{tmp_path}/used.db", tmp_path / "snap.jsonl"),
                 (f"sqlite://{tmp_path}/fresh.db", old_format)]
        for url, path in cases:
            target = await _open(url)
            try:
                if "used" in url:
                    await target.create("/registry/other", b"o")
                restored = await restore(target, path)
                assert not restored.kept_revisions
                assert (await target.get("/registry/a/one")).value == b"1"  # type: ignore[union-attr]
            finally:
                await target.close()
