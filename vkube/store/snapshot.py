"""Store snapshots: every key and value at one revision, in a file any backend can restore.

The file is JSON lines: a header (format name, format version, the revision, the source
backend), one line per key (``k``: key, ``v``: value in base64, ``c``/``m``: its create and mod
revisions), and a trailer with the key count and a SHA-256 of the key lines, so a truncated or
damaged file is refused before anything is written. Anyone can recompute a SHA-256: the
trailer may also hold an HMAC-SHA256 of the header and key lines with a key of the writer's
(the CLI: one per installation), which tells a file this installation wrote (``read_signed``).
The header's ``origin`` (the CLI: the source cluster's name, and its CA fingerprint for the
record) is under the HMAC, so a signed file counts as signed only for a reader expecting that
same cluster name: the HMAC proves where a file comes from, not that it is safe for another
cluster. The name, not the CA, is what must match: moving a cluster between the modes deletes
and creates it again under its name (a new CA), and its own file must restore as saved.
The keys are read page by page at one revision (a consistent cut even while writes go on);
if compaction overtakes that revision mid-way, the dump starts over at a newer one.

A restore never trusts the file: every line is read and checked before anything is written
(header and format version, key shape, revisions, no key twice, the trailer's count and
checksum; the caller's ``check`` adds what the store cannot know — that each value is an object
the cluster can serve under its key, see ``vkube.cluster.snapcheck``), and the first bad entry is
named. Then the change is one transaction.

Restoring into a SQLite or PostgreSQL store that was never written keeps every key's revisions
(one transaction), so objects keep their resourceVersions (clients' optimistic-concurrency
guards and informers' resourceVersions stay valid), the store's revision continues from the
snapshot's, and history before it reads as compacted (a watch from before it gets 410 and
relists). Otherwise — a store with data (time must not run backwards under its clients), or
etcd, whose revisions are its own and cannot be set — the target store is made to hold exactly
the snapshot's keys and values: missing keys are created, differing ones updated, extra ones
deleted, at the target's own, growing revisions, so watchers and informers relist. Those writes
are one ``Store.commit_all``, each guarded on the revision read just before: on SQLite and
PostgreSQL one transaction, so a failure (the store down, a key changed meanwhile) leaves the
target as it was. etcd takes at most 128 operations per transaction: a larger set is several
transactions, one after another, and a failure after the first raises ``PartialCommit`` naming how
many writes were done; running the same restore again finishes it (it makes the store hold
exactly the file whatever it holds). A file written in a newer format than this vkube reads is
refused with a message saying so.

Keys under ``/vkube/`` belong to the store's owner, not to the cluster's state (an HA cluster's
CA, token and encryption keys): ``save`` leaves them out, and ``restore`` neither writes them
from a file (a file must never hand a cluster another CA) nor deletes the target's.

Values encrypted at rest are the caller's business (the store sees bytes): ``save`` takes a
``transform`` that the CLI uses to decrypt Secrets with the source cluster's key, and
``restore`` one that encrypts them with the target's, so a snapshot restores into a cluster with
another key (format 2; format 1 files hold the values as stored).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from vkube.store.base import Compacted, KeyValue, Op, Store, StoreError
from vkube.store.log import RESTORE_MARK, LogStore

FORMAT = "vkube-store-snapshot"
VERSION = 2  # 2: values decrypted by the caller's transform (Secrets in plain text)
_PAGE = 1000
#: keys of the store's owner, not of the cluster's state (``/vkube/cluster-keys``: an HA
#: cluster's CA, token and encryption keys): never saved, never restored from a file (a
#: file must not hand a cluster another CA), and the target's own are kept
OWN_PREFIX = "/vkube/"


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
    #: the trailer's HMAC checks with the key the caller gave (``read_signed``)
    signed: bool = False


def _line(kv: KeyValue, transform: Transform | None) -> bytes:
    value = transform(kv.key, kv.value) if transform is not None else kv.value
    return json.dumps({"k": kv.key, "v": base64.b64encode(value).decode(),
                       "c": kv.create_revision, "m": kv.mod_revision},
                      ensure_ascii=False).encode() + b"\n"


async def save(store: Store, path: str | os.PathLike[str], *, attempts: int = 5,
               transform: Transform | None = None, key: bytes | None = None,
               origin: dict[str, Any] | None = None) -> SnapshotInfo:
    """Write every key of ``store`` at one revision to ``path`` (atomically: tmp + rename,
    mode 0600: the file may hold Secrets in plain text); ``transform`` maps each value;
    ``key``: the trailer also holds an HMAC-SHA256 of the header and key lines with it (see
    ``signed``); ``origin``: what the file comes from, in the header (see ``read_signed``)."""
    target = Path(path)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    for attempt in range(attempts):
        revision = await store.current_revision()
        try:
            info = await _dump(store, tmp, revision, transform, key, origin)
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


async def _dump(store: Store, tmp: Path, revision: int, transform: Transform | None,
                key: bytes | None, origin: dict[str, Any] | None) -> SnapshotInfo:
    digest, keys = hashlib.sha256(), 0
    mac = hmac.new(key, digestmod=hashlib.sha256) if key is not None else None
    header = {"format": FORMAT, "version": VERSION, "revision": revision,
              "source": type(store).__name__,
              "values": "transformed" if transform is not None else "as stored",
              "created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}
    if origin is not None:
        header["origin"] = origin
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with open(fd, "wb") as out:
        first = json.dumps(header).encode() + b"\n"
        out.write(first)
        if mac is not None:
            mac.update(first)
        start_after = ""
        while True:
            page = await store.range("", start_after=start_after, limit=_PAGE, revision=revision)
            for kv in page.kvs:
                if kv.key.startswith(OWN_PREFIX):
                    continue
                line = _line(kv, transform)
                digest.update(line)
                if mac is not None:
                    mac.update(line)
                out.write(line)
                keys += 1
            if not page.more:
                break
            start_after = page.kvs[-1].key
        end: dict[str, Any] = {"end": True, "keys": keys, "sha256": digest.hexdigest()}
        if mac is not None:
            end["hmac"] = mac.hexdigest()
        out.write(json.dumps(end).encode() + b"\n")
        out.flush()
        os.fsync(out.fileno())
        size = out.tell()
    return SnapshotInfo(revision=revision, keys=keys, bytes=size)


@dataclass(frozen=True, slots=True)
class Entry:
    """One key line of a snapshot file, with its line number (for messages)."""

    line: int
    kv: KeyValue


#: ``(header, entries, signed) -> None``: the caller's checks of every entry's content (the
#: store sees bytes); ``signed``: the trailer's HMAC checks with the caller's key, in the same
#: read as the entries; raises ``SnapshotError`` naming the first bad entry (``entry_error``)
Check = Callable[[dict[str, Any], list[Entry], bool], None]

#: longest key accepted (etcd's keys are bytes of any length, but a Kubernetes key is
#: ``/GROUP/RESOURCE/NAMESPACE/NAME``: 253 + 63 + 63 + 253 characters and four slashes)
MAX_KEY = 1024


def entry_error(path: str | os.PathLike[str], entry: Entry, what: str) -> SnapshotError:
    """The error for a bad entry: the file, the key (escaped: one line), where, what."""
    return SnapshotError(f"{path}: entry {entry.kv.key!r} (line {entry.line}): {what}")


def key_problem(key: str) -> str | None:
    """What makes ``key`` unfit for every backend (None: nothing). A key must be a clean
    ``/``-path: SQLite and PostgreSQL refuse lone surrogates and NUL mid-transaction, and
    dot or empty segments name no object."""
    if not key.startswith("/"):
        return "a key must start with '/'"
    if len(key) > MAX_KEY:
        return f"the key is {len(key)} characters long (at most {MAX_KEY})"
    for ch in key:
        o = ord(ch)
        if o < 0x20 or o == 0x7F or 0xD800 <= o <= 0xDFFF:
            return f"the key holds the character U+{o:04X}"
    if any(part in ("", ".", "..") for part in key[1:].split("/")):
        return "the key has an empty, '.' or '..' segment"
    if key == RESTORE_MARK or key.startswith(RESTORE_MARK + "/"):
        return f"{RESTORE_MARK} is reserved for the store"
    return None


def _int(doc: dict[str, Any], name: str) -> int:
    value = doc.get(name, 0)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f'"{name}" must be a non-negative integer')
    return value


def read(path: str | os.PathLike[str]) -> tuple[dict[str, Any], list[Entry]]:
    """The header and every entry, each line checked (a store-level check: JSON shape,
    key, revisions, no duplicate key, key count and checksum); ``SnapshotError`` names the
    first bad line. Files of an older vkube carry no revisions (0)."""
    header, entries, _ = read_signed(path, None)
    return header, entries


def same_cluster(claimed: Any, expected: dict[str, Any] | None) -> bool:
    """Whether a file's ``origin`` names the cluster a reader expects (by name; None
    expected: no file does)."""
    return (expected is not None and isinstance(claimed, dict)
            and isinstance(claimed.get("cluster"), str)
            and claimed.get("cluster") == expected.get("cluster"))


def read_signed(path: str | os.PathLike[str], key: bytes | None,
                origin: dict[str, Any] | None = None) -> tuple[dict[str, Any], list[Entry], bool]:
    """``read``, and whether the trailer holds the HMAC-SHA256 that ``save`` writes with
    ``key`` of exactly the header and key lines read (the file was written with that key and
    is unchanged: a SHA-256 alone anyone can recompute) *and* the header's ``origin`` names
    the cluster ``origin`` names (``same_cluster``; None: no file counts as signed — a reader
    that cannot say what it expects trusts nothing)."""
    mac = hmac.new(key, digestmod=hashlib.sha256) if key is not None else None
    signed = False
    with open(path, "rb") as handle:
        first = handle.readline()
        if mac is not None:
            mac.update(first)
        try:
            header = json.loads(first)
        except ValueError:
            raise SnapshotError(f"{path} is not a vkube snapshot (no header line)") from None
        if not isinstance(header, dict) or header.get("format") != FORMAT:
            raise SnapshotError(f"{path} is not a vkube snapshot")
        version = header.get("version")
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise SnapshotError(f"{path}: header: version {version!r} is not a snapshot format "
                                f"(this vkube reads formats 1 to {VERSION})")
        if version > VERSION:
            raise SnapshotError(f"{path} is snapshot format {version}, written by a newer vkube; "
                                f"this vkube reads format {VERSION} and older — upgrade vkube to "
                                "restore it")
        revision = header.get("revision", 0)
        if isinstance(revision, bool) or not isinstance(revision, int) or revision < 0:
            raise SnapshotError(f"{path}: header: revision {revision!r} is not a non-negative "
                                "integer")
        if header.get("values", "as stored") not in ("as stored", "transformed"):
            raise SnapshotError(f"{path}: header: values {header.get('values')!r} is neither "
                                "'as stored' nor 'transformed'")
        entries: list[Entry] = []
        seen: set[str] = set()
        digest, ended = hashlib.sha256(), False
        for number, line in enumerate(handle, start=2):
            if ended:
                raise SnapshotError(f"{path}: line {number}: data after the end of the snapshot")
            if not line.endswith(b"\n"):
                raise SnapshotError(f"{path} is truncated (line {number} is cut short): take "
                                    "the snapshot again")
            try:
                doc = json.loads(line)
                if not isinstance(doc, dict):
                    raise ValueError("a line must be a JSON object")
                if doc.get("end") is True:
                    ended = True
                    if doc.get("keys") != len(entries) or doc.get("sha256") != digest.hexdigest():
                        raise SnapshotError(f"{path} is corrupt: its checksum or key count "
                                            "does not match its contents")
                    want = doc.get("hmac")
                    signed = (mac is not None and isinstance(want, str)
                              and hmac.compare_digest(want, mac.hexdigest())
                              and same_cluster(header.get("origin"), origin))
                    continue
                key, encoded = doc.get("k"), doc.get("v")
                if not isinstance(key, str) or not isinstance(encoded, str):
                    raise ValueError('"k" and "v" must be strings')
                value = base64.b64decode(encoded, validate=True)
                create, mod = _int(doc, "c"), _int(doc, "m")
            except (ValueError, binascii.Error) as exc:
                raise SnapshotError(f"{path}: line {number}: not a snapshot line ({exc})") from None
            entry = Entry(number, KeyValue(key, value, create, mod))
            problem = key_problem(key)
            if problem is None and key in seen:
                problem = "the key appears twice"
            if problem is None and (create > mod or (mod and not create)
                                    or (revision and mod > revision)):
                problem = (f"revisions c={create} m={mod} are not 0 < c <= m <= {revision} "
                           "(the snapshot's revision)")
            if problem is not None:
                raise entry_error(path, entry, problem)
            seen.add(key)
            digest.update(line)
            if mac is not None:
                mac.update(line)
            entries.append(entry)
        if not ended:
            raise SnapshotError(f"{path} is truncated (no end line): take the snapshot again")
    return header, entries, signed


def verify(path: str | os.PathLike[str], check: Check | None = None,
           key: bytes | None = None, origin: dict[str, Any] | None = None) -> SnapshotInfo:
    """Read the whole file and check it (and every entry with ``check``; ``key``, ``origin``:
    whether the file is signed with it for that origin, see ``read_signed``); raises
    ``SnapshotError``."""
    header, entries, signed = read_signed(path, key, origin)
    entries = [e for e in entries if not e.kv.key.startswith(OWN_PREFIX)]
    if check is not None:
        check(header, entries, signed)
    return SnapshotInfo(revision=int(header.get("revision", 0)), keys=len(entries),
                        bytes=os.path.getsize(path), signed=signed)


async def restore(store: Store, path: str | os.PathLike[str], *,
                  transform: Transform | None = None, check: Check | None = None,
                  key: bytes | None = None, origin: dict[str, Any] | None = None) -> SnapshotInfo:
    """Make ``store`` hold exactly the snapshot at ``path``: every line is read and checked
    first (``check``: the caller's checks of each entry's content), so a bad file writes
    nothing; then the whole change is one transaction (SQLite, PostgreSQL; etcd when it fits
    one ``Txn``, else ``PartialCommit`` may say how far it got). ``transform`` maps each value
    before it is written; ``key``, ``origin``: whether the file is signed with it for that
    origin (``read_signed``, the same read as what is written), told to ``check`` and
    returned."""
    def checked() -> tuple[dict[str, Any], list[Entry], bool]:
        header, entries, signed = read_signed(path, key, origin)
        entries = [e for e in entries if not e.kv.key.startswith(OWN_PREFIX)]
        if check is not None:
            check(header, entries, signed)
        return header, entries, signed

    # on a thread: a shared server's other clusters keep being served meanwhile
    header, entries, signed = await asyncio.to_thread(checked)
    revision = int(header.get("revision", 0))
    size = os.path.getsize(path)
    items = [KeyValue(e.kv.key, transform(e.kv.key, e.kv.value) if transform is not None
                      else e.kv.value, e.kv.create_revision, e.kv.mod_revision)
             for e in entries]
    if isinstance(store, LogStore):
        if all(kv.mod_revision for kv in items) and await store.load(items, revision):
            return SnapshotInfo(revision=revision, keys=len(items), bytes=size,
                                created=len(items), kept_revisions=True, signed=signed)
    current: dict[str, KeyValue] = {}
    start_after = ""
    while True:
        page = await store.range("", start_after=start_after, limit=_PAGE)
        current.update((kv.key, kv) for kv in page.kvs if not kv.key.startswith(OWN_PREFIX))
        if not page.more:
            break
        start_after = page.kvs[-1].key
    ops: list[Op] = []
    created = updated = 0
    for kv in items:
        now = current.pop(kv.key, None)
        if now is None:
            ops.append(Op("create", kv.key, kv.value))
            created += 1
        elif now.value != kv.value:
            ops.append(Op("update", kv.key, kv.value, now.mod_revision))
            updated += 1
    ops += [Op("delete", kv.key, expected=kv.mod_revision) for kv in current.values()]
    await store.commit_all(ops)
    return SnapshotInfo(revision=revision, keys=len(items), bytes=size, created=created,
                        updated=updated, deleted=len(current), signed=signed)
