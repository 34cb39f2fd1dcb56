"""Store snapshots: every key and value at one revision, in a file any backend can restore.

The file is JSON lines: a header (format name, format version, the revision, the source
backend), one line per key (``k``: key, ``v``: value in base64, ``c``/``m``: its create and mod
revisions), and a trailer with the key count and a SHA-256 of the key lines, so a truncated or edited file is refused before anything
is written. The keys are read page by page at one revision (a consistent cut even while writes
go on); if compaction overtakes that revision mid-way, the dump starts over at a newer one.

Restoring into a SQLite or PostgreSQL store that was never written keeps every key's revisions,
so objects keep their resourceVersions (clients' optimistic-concurrency guards and informers'
resourceVersions stay valid), the store's revision continues from the snapshot's, and history
before it reads as compacted (a watch from before it gets 410 and relists). Otherwise — a
store with data (time must not run backwards under its clients), or etcd, whose revisions
are its own and cannot be set — the target store is made to hold exactly the snapshot's keys
and values: missing keys are created, differing ones updated, extra ones deleted, at the
target's own, growing revisions, so watchers and informers relist. A file written in a newer
format than this vkube reads is refused with a message saying so.

Values encrypted at rest are the caller's business (the store sees bytes): ``save`` takes a
``transform`` that the CLI uses to decrypt Secrets with the source cluster's key, and
``restore`` one that encrypts them with the target's, so a snapshot restores into a cluster with
another key (format 2; format 1 files hold the values as stored).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from vkube.store.base import Compacted, KeyNotFound, KeyValue, Store, StoreError
from vkube.store.log import LogStore

FORMAT = "vkube-store-snapshot"
VERSION = 2  # 2: values decrypted by the caller's transform (Secrets in plain text)
_PAGE = 1000
_CONCURRENCY = 256


#: ``(key, value) -> value``: applied to every value written to / read from a snapshot file
Transform = Callable[[str, bytes], bytes]


class SnapshotError(StoreError):
    """A snapshot file that cannot be restored (not one, newer format, truncated, corrupt)."""


@dataclass(frozen=True)
class SnapshotInfo:
    revision: int  # the source revision the snapshot shows
    keys: int
    bytes: int = 0
    created: int = 0  # restore: keys created / updated / deleted in the target
    updated: int = 0
    deleted: int = 0
    #: restore: the keys kept their revisions (objects their resourceVersions)
    kept_revisions: bool = False


def _line(kv: KeyValue, transform: Transform | None) -> bytes:
    value = transform(kv.key, kv.value) if transform is not None else kv.value
    return json.dumps({"k": kv.key, "v": base64.b64encode(value).decode(),
                       "c": kv.create_revision, "m": kv.mod_revision},
                      ensure_ascii=False).encode() + b"\n"


async def save(store: Store, path: str | os.PathLike[str], *, attempts: int = 5,
               transform: Transform | None = None) -> SnapshotInfo:
    """Write every key of ``store`` at one revision to ``path`` (atomically: tmp + rename,
    mode 0600: the file may hold Secrets in plain text); ``transform`` maps each value."""
    target = Path(path)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    for attempt in range(attempts):
        revision = await store.current_revision()
        try:
            info = await _dump(store, tmp, revision, transform)
        except Compacted:
            if attempt == attempts - 1:
                raise
            continue
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        tmp.replace(target)
        return info
    raise AssertionError("unreachable")


async def _dump(store: Store, tmp: Path, revision: int,
                transform: Transform | None) -> SnapshotInfo:
    digest, keys = hashlib.sha256(), 0
    header = {"format": FORMAT, "version": VERSION, "revision": revision,
              "source": type(store).__name__,
              "values": "transformed" if transform is not None else "as stored",
              "created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with open(fd, "wb") as out:
        out.write(json.dumps(header).encode() + b"\n")
        start_after = ""
        while True:
            page = await store.range("", start_after=start_after, limit=_PAGE, revision=revision)
            for kv in page.kvs:
                line = _line(kv, transform)
                digest.update(line)
                out.write(line)
                keys += 1
            if not page.more:
                break
            start_after = page.kvs[-1].key
        out.write(json.dumps({"end": True, "keys": keys, "sha256": digest.hexdigest()}).encode()
                  + b"\n")
        out.flush()
        os.fsync(out.fileno())
        size = out.tell()
    return SnapshotInfo(revision=revision, keys=keys, bytes=size)


def _read(path: Path) -> tuple[dict[str, Any], Iterator[KeyValue]]:
    """The header, and an iterator over the keys (each check done by ``verify``); files of
    an older vkube carry no revisions (0)."""
    handle = open(path, "rb")
    first = handle.readline()
    try:
        header = json.loads(first)
    except ValueError:
        handle.close()
        raise SnapshotError(f"{path} is not a vkube snapshot (no header line)") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        handle.close()
        raise SnapshotError(f"{path} is not a vkube snapshot")
    version = header.get("version")
    if not isinstance(version, int) or version > VERSION:
        handle.close()
        raise SnapshotError(f"{path} is snapshot format {version}, written by a newer vkube; this "
                            f"vkube reads format {VERSION} and older — upgrade vkube to restore it")

    def entries() -> Iterator[KeyValue]:
        with handle:
            digest, count, ended = hashlib.sha256(), 0, False
            for number, line in enumerate(handle, start=2):
                if ended:
                    raise SnapshotError(f"{path}:{number}: data after the end of the snapshot")
                try:
                    doc = json.loads(line)
                    if doc.get("end"):
                        ended = True
                        if doc.get("keys") != count or doc.get("sha256") != digest.hexdigest():
                            raise SnapshotError(f"{path} is corrupt: its checksum or key count "
                                                "does not match its contents")
                        continue
                    key, value = doc["k"], base64.b64decode(doc["v"], validate=True)
                    create, mod = int(doc.get("c", 0)), int(doc.get("m", 0))
                except (ValueError, KeyError, TypeError, AttributeError) as exc:
                    raise SnapshotError(f"{path}:{number}: not a snapshot line ({exc})") from None
                digest.update(line)
                count += 1
                yield KeyValue(key, value, create, mod)
            if not ended:
                raise SnapshotError(f"{path} is truncated (no end line): take the snapshot again")

    return header, entries()


def verify(path: str | os.PathLike[str]) -> SnapshotInfo:
    """Read the whole file and check it; raises ``SnapshotError``."""
    header, entries = _read(Path(path))
    count = sum(1 for _ in entries)
    return SnapshotInfo(revision=int(header.get("revision", 0)), keys=count,
                        bytes=os.path.getsize(path))


async def restore(store: Store, path: str | os.PathLike[str], *,
                  transform: Transform | None = None) -> SnapshotInfo:
    """Make ``store`` hold exactly the snapshot at ``path`` (checked in full first);
    ``transform`` maps each value before it is written."""
    source = verify(path)

    def read() -> Iterator[KeyValue]:
        _, entries = _read(Path(path))
        if transform is None:
            return entries
        return (KeyValue(kv.key, transform(kv.key, kv.value), kv.create_revision, kv.mod_revision)
                for kv in entries)

    if isinstance(store, LogStore):
        items = list(read())
        if all(kv.mod_revision for kv in items) and await store.load(items, source.revision):
            return SnapshotInfo(revision=source.revision, keys=source.keys, bytes=source.bytes,
                                created=len(items), kept_revisions=True)
    entries = read()
    created = updated = deleted = 0
    wanted: set[str] = set()
    pending: list[Any] = []

    async def flush() -> None:
        nonlocal created, updated
        for result in await asyncio.gather(*pending):
            created += result == "created"
            updated += result == "updated"
        pending.clear()

    async def put(key: str, value: bytes) -> str:
        current = await store.get(key)
        if current is None:
            await store.create(key, value)
            return "created"
        if current.value != value:
            await store.update(key, value, expected_mod_revision=current.mod_revision)
            return "updated"
        return "same"

    for kv in entries:
        wanted.add(kv.key)
        pending.append(put(kv.key, kv.value))
        if len(pending) >= _CONCURRENCY:
            await flush()
    await flush()
    start_after, extra = "", []
    while True:
        page = await store.range("", start_after=start_after, limit=_PAGE)
        extra += [kv for kv in page.kvs if kv.key not in wanted]
        if not page.more:
            break
        start_after = page.kvs[-1].key
    for i in range(0, len(extra), _CONCURRENCY):
        results = await asyncio.gather(
            *(store.delete(kv.key, expected_mod_revision=kv.mod_revision)
              for kv in extra[i:i + _CONCURRENCY]), return_exceptions=True)
        for result in results:
            if isinstance(result, KeyNotFound):
                continue
            if isinstance(result, BaseException):
                raise result
            deleted += 1
    return SnapshotInfo(revision=source.revision, keys=source.keys, bytes=source.bytes,
                        created=created, updated=updated, deleted=deleted)
