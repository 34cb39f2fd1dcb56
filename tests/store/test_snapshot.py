"""Snapshots at the store level: taken under write load on one backend, consistent at one
revision, restored into another backend to an equal key set; bad files refused up front."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from vkube.store import open_store
from vkube.store.base import Store, StoreError
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


def _write_file(path: Path, entries: list[tuple[str, bytes]], *, revision: int = 100,
                raw_lines: list[bytes] | None = None, version: int = 2) -> Path:
    """A snapshot file as ``save`` writes one, with these entries (and a correct trailer)."""
    import base64
    import hashlib

    header = {"format": "vkube-store-snapshot", "version": version, "revision": revision,
              "source": "test", "values": "transformed"}
    body = [json.dumps({"k": k, "v": base64.b64encode(v).decode(), "c": i + 1, "m": i + 1}
                       ).encode() + b"\n" for i, (k, v) in enumerate(entries)]
    body += raw_lines or []
    end = {"end": True, "keys": len(body), "sha256": hashlib.sha256(b"".join(body)).hexdigest()}
    path.write_bytes(json.dumps(header).encode() + b"\n" + b"".join(body)
                     + json.dumps(end).encode() + b"\n")
    return path


async def test_store_level_checks_refuse_a_file_before_any_write(tmp_path: Path) -> None:
    """Keys every backend would choke on (lone surrogate, NUL), dot segments, a key twice,
    revisions out of order, a bad header: refused naming the line, nothing written."""
    store = await _open(f"sqlite://{tmp_path}/s.db")
    try:
        await store.create("/registry/a", b"1")
        ok = ("/registry/ok", b"v")
        cases = {
            "U+D800": [ok, ("/registry/\ud800", b"v")],
            "U+0000": [ok, ("/registry/a\x00b", b"v")],
            "'..' segment": [ok, ("/registry/../a", b"v")],
            "must start with '/'": [("registry/x", b"v")],
            "appears twice": [ok, ok],
            "reserved": [("/vkube-restored", b"")],
        }
        for i, (what, entries) in enumerate(cases.items()):
            path = _write_file(tmp_path / f"bad{i}.jsonl", entries)
            with pytest.raises(SnapshotError, match=f"line {len(entries) + 1}.*{re.escape(what)}"):
                await restore(store, path)
        late = _write_file(tmp_path / "late.jsonl", [ok], revision=0, raw_lines=[
            json.dumps({"k": "/registry/b", "v": "", "c": 9, "m": 3}).encode() + b"\n"])
        with pytest.raises(SnapshotError, match="line 3.*revisions c=9 m=3"):
            await restore(store, late)
        typed = _write_file(tmp_path / "typed.jsonl", [ok], raw_lines=[
            json.dumps({"k": "/registry/b", "v": "", "c": "1", "m": 1}).encode() + b"\n"])
        with pytest.raises(SnapshotError, match=r'line 3: not a snapshot line \("c" must be'):
            await restore(store, typed)
        for version in (0, True, "2"):
            with pytest.raises(SnapshotError, match="is not a snapshot format"):
                await restore(store, _write_file(tmp_path / "v.jsonl", [ok], version=version))  # type: ignore[arg-type]
        cut = _write_file(tmp_path / "cut.jsonl", [ok, ("/registry/b", b"x" * 100)])
        cut.write_bytes(cut.read_bytes()[:-150])  # mid-line, as a full disk leaves it
        with pytest.raises(SnapshotError, match="truncated"):
            await restore(store, cut)
        assert await _everything(store) == {"/registry/a": b"1"}
    finally:
        await store.close()


def _boom(kind: str) -> list[str]:
    """A trigger failing the insert of key /registry/zz-boom: the database breaking in the
    middle of the restore's transaction, after earlier rows of it were written."""
    if kind == "sqlite":
        return ["CREATE TRIGGER boom BEFORE INSERT ON kv WHEN NEW.key = '/registry/zz-boom' "
                "BEGIN SELECT RAISE(ABORT, 'disk on fire'); END"]
    return ["CREATE FUNCTION boom() RETURNS trigger AS $$ BEGIN IF NEW.key = '/registry/zz-boom' "
            "THEN RAISE EXCEPTION 'disk on fire'; END IF; RETURN NEW; END $$ LANGUAGE plpgsql",
            "CREATE TRIGGER boom BEFORE INSERT ON kv FOR EACH ROW EXECUTE FUNCTION boom()"]


async def _sql(url: str, statements: list[str]) -> None:
    if url.startswith("sqlite://"):
        import sqlite3

        conn = sqlite3.connect(url.removeprefix("sqlite://"))
        try:
            for statement in statements:
                conn.execute(statement)
            conn.commit()
        finally:
            conn.close()
        return
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
async def test_a_restore_failing_midway_leaves_the_store_as_it_was(
        kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    """The database fails after part of the restore's rows went in: one transaction, so the
    target holds exactly what it held; once the store is healthy, the same restore works."""
    async for url in _url(kind, request, tmp_path):
        store = await _open(url)
        try:
            for i in range(300):
                await store.create(f"/registry/old/{i:03d}", b"old")
            before = await _everything(store)
            revision = await store.current_revision()
            entries = [(f"/registry/new/{i:03d}", b"new") for i in range(300)]
            entries += [("/registry/old/000", b"changed"), ("/registry/zz-boom", b"x")]
            path = _write_file(tmp_path / "snap.jsonl", entries, revision=1000)
            await _sql(url, _boom(kind))
            with pytest.raises(StoreError, match="disk on fire"):
                await restore(store, path)
            assert await _everything(store) == before
            assert await store.current_revision() == revision
            await store.create("/registry/after", b"a")  # the store still takes writes
            await _sql(url, ["DROP TRIGGER boom" + (" ON kv" if kind == "postgres" else "")])
            info = await restore(store, path)
            assert await _everything(store) == dict(entries)
            assert (info.created, info.updated, info.deleted) == (301, 1, 300)
        finally:
            await store.close()


@pytest.mark.parametrize("kind", ["sqlite", "postgres", "etcd"])
async def test_commit_all_is_all_or_nothing(kind: str, request: pytest.FixtureRequest,
                                            tmp_path: Path) -> None:
    """One stale guard fails the whole set; a good set is applied at once; etcd
    past one transaction's 128 operations says how far it got, and the rest can follow."""
    from vkube.store.base import Op, PartialCommit

    async for url in _url(kind, request, tmp_path):
        store = await _open(url)
        try:
            a = await store.create("/registry/a", b"1")
            b = await store.create("/registry/b", b"2")
            await store.create("/registry/c", b"3")
            before, revision = await _everything(store), await store.current_revision()
            stale = [Op("create", "/registry/d", b"4"), Op("update", "/registry/a", b"1b", a.mod_revision),
                     Op("update", "/registry/b", b"2b", b.mod_revision - 1), Op("delete", "/registry/c")]
            with pytest.raises(StoreError):
                await store.commit_all(stale)
            assert await _everything(store) == before
            assert await store.current_revision() == revision
            good = stale[:2] + [Op("update", "/registry/b", b"2b", b.mod_revision), stale[3]]
            await store.commit_all(good)
            assert await _everything(store) == {"/registry/a": b"1b", "/registry/b": b"2b",
                                                "/registry/d": b"4"}
            # one revision per write; etcd gives a whole Txn one revision
            assert await store.current_revision() == revision + (1 if kind == "etcd" else 4)
            if kind == "etcd":
                many = [Op("create", f"/registry/m/{i:03d}", b"m") for i in range(200)]
                await store.create("/registry/m/150", b"there")
                with pytest.raises(PartialCommit) as caught:
                    await store.commit_all(many)
                assert (caught.value.applied, caught.value.total) == (128, 200)
                got = await _everything(store)
                assert sum(k.startswith("/registry/m/") for k in got) == 129
        finally:
            await store.close()


async def test_the_owners_keys_are_neither_saved_nor_restored(tmp_path: Path) -> None:
    """``/vkube/cluster-keys`` (an HA cluster's CA and keys) is the store owner's: a snapshot
    leaves it out, and a file carrying one (crafted) neither replaces nor removes the
    target's."""
    source = await _open(f"sqlite://{tmp_path}/src.db")
    target = await _open(f"sqlite://{tmp_path}/dst.db")
    try:
        await source.create("/vkube/cluster-keys", b'{"ca.key": "source"}')
        await source.create("/registry/a", b"1")
        info = await save(source, tmp_path / "s.jsonl")
        assert info.keys == 1 and set(_entries(tmp_path / "s.jsonl")) == {"/registry/a"}
        await target.create("/vkube/cluster-keys", b'{"ca.key": "target"}')
        await target.create("/registry/old", b"0")
        crafted = _write_file(tmp_path / "crafted.jsonl", [
            ("/registry/a", b"1"), ("/vkube/cluster-keys", b'{"ca.key": "attacker"}')])
        restored = await restore(target, crafted)
        assert restored.keys == 1 and restored.deleted == 1
        assert await _everything(target) == {"/registry/a": b"1",
                                             "/vkube/cluster-keys": b'{"ca.key": "target"}'}
    finally:
        await source.close()
        await target.close()
