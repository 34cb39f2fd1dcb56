"""The SQL of the kine-style history table, kept apart from the code that runs it.

One row per revision: ``revision`` is the global store revision (the primary key), ``created``
and ``deleted`` say what the write was, ``prev_revision`` points at the key's previous row (0 on
create). A tombstone row keeps the deleted value. The latest state of a key is its
highest-revision row, unless that row is a tombstone; the state at revision R is the highest
row with revision <= R.

A ``Dialect`` holds the statements; the sqlite backend uses ``SQLITE``. Another SQL backend
(postgres) would supply its own schema and placeholders and reuse the row mapping below.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from vkube.store.base import Event, KeyValue

# Columns of HISTORY rows, in order (see ``event_from_row``).
_HISTORY_COLUMNS = (
    "c.revision, c.key, c.created, c.deleted, c.create_revision, c.value, "
    "p.revision, p.create_revision, p.value"
)


@dataclass(frozen=True, slots=True)
class Dialect:
    schema: tuple[str, ...]
    #: (key) -> latest row: key, value, create_revision, revision, deleted
    latest: str
    #: (key, revision) -> row at revision, same columns as ``latest``
    at_revision: str
    #: () -> current revision, compacted revision
    revisions: str
    #: :revision :lower :start_after :upper :limit -> key, value, create_revision, revision
    range_bounded: str
    range_unbounded: str  # the same without :upper (empty prefix)
    count_bounded: str  # the same without :limit -> count
    count_unbounded: str
    #: :after :lower :upper :limit -> history rows (see ``event_from_row``)
    history_bounded: str
    history_unbounded: str  # without :lower/:upper
    insert: str  # (revision, key, created, deleted, create_revision, prev_revision, value)
    set_compacted: str  # :revision
    min_revision: str
    #: :lo :hi :revision -> (prev_revision, revision, deleted) of the rows in [lo, hi] that make
    #: a row deletable at :revision (an older row they supersede, or themselves as a tombstone
    #: older than :revision), in key order (see ``SqliteDriver.compaction_plan``)
    compact_plan: str
    #: :revisions (a JSON array) deletes those rows by primary key, in one statement
    compact_delete: str
    #: () -> the revision up to which history has been compacted row by row
    compact_cursor: str
    set_compact_cursor: str  # :revision


def _range(upper: bool, *, count: bool) -> str:
    bound = "AND c.key < :upper" if upper else ""
    head = "SELECT count(*)" if count else "SELECT c.key, c.value, c.create_revision, c.revision"
    tail = "" if count else "ORDER BY c.key LIMIT :limit"
    # Walk the (key, revision) index in key order; a row is a key's state at revision R if no
    # newer row <= R exists. LIMIT stops the walk early, so pages cost what they return.
    return f"""
        {head} FROM kv AS c
        WHERE c.key >= :lower AND c.key > :start_after {bound} AND c.revision <= :revision
          AND c.revision = (SELECT max(n.revision) FROM kv AS n
                            WHERE n.key = c.key AND n.revision <= :revision)
          AND c.deleted = 0
        {tail}"""


def _history(upper: bool) -> str:
    where = "c.key >= :lower AND c.key < :upper AND" if upper else ""
    return f"""
        SELECT {_HISTORY_COLUMNS} FROM kv AS c
        LEFT JOIN kv AS p ON p.revision = c.prev_revision
        WHERE {where} c.revision > :after
        ORDER BY c.revision LIMIT :limit"""


SQLITE = Dialect(
    schema=(
        """CREATE TABLE IF NOT EXISTS kv (
            revision INTEGER PRIMARY KEY,
            key TEXT NOT NULL,
            created INTEGER NOT NULL,
            deleted INTEGER NOT NULL,
            create_revision INTEGER NOT NULL,
            prev_revision INTEGER NOT NULL,
            value BLOB NOT NULL
        )""",
        "CREATE INDEX IF NOT EXISTS kv_key_revision ON kv (key, revision)",
        "CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL)",
        "INSERT OR IGNORE INTO meta (name, value) VALUES ('compacted', 0)",
        "INSERT OR IGNORE INTO meta (name, value) VALUES ('compact_cursor', 0)",
    ),
    latest="""SELECT key, value, create_revision, revision, deleted FROM kv
              WHERE key = ? ORDER BY revision DESC LIMIT 1""",
    at_revision="""SELECT key, value, create_revision, revision, deleted FROM kv
                   WHERE key = ? AND revision <= ? ORDER BY revision DESC LIMIT 1""",
    revisions="""SELECT (SELECT coalesce(max(revision), 0) FROM kv),
                        (SELECT value FROM meta WHERE name = 'compacted')""",
    range_bounded=_range(True, count=False),
    range_unbounded=_range(False, count=False),
    count_bounded=_range(True, count=True),
    count_unbounded=_range(False, count=True),
    history_bounded=_history(True),
    history_unbounded=_history(False),
    insert="""INSERT INTO kv (revision, key, created, deleted, create_revision, prev_revision,
              value) VALUES (?, ?, ?, ?, ?, ?, ?)""",
    set_compacted="""UPDATE meta SET value = :revision
                     WHERE name = 'compacted' AND value < :revision""",
    min_revision="SELECT coalesce(min(revision), 0) FROM kv",
    # Every row but a key's latest is some later row's ``prev_revision``: the rows to delete at
    # R are the prev_revisions of the rows <= R (plus tombstones < R), found by reading only the
    # rows written since the last compaction, in revision order (a range of the primary key).
    compact_plan="""SELECT prev_revision, revision, deleted FROM kv
                    WHERE revision >= :lo AND revision <= :hi
                      AND (prev_revision > 0 OR (deleted = 1 AND revision < :revision))
                    ORDER BY key, revision""",
    compact_delete="""DELETE FROM kv
                      WHERE revision IN (SELECT value FROM json_each(:revisions))""",
    compact_cursor="SELECT value FROM meta WHERE name = 'compact_cursor'",
    set_compact_cursor="""UPDATE meta SET value = :revision
                          WHERE name = 'compact_cursor' AND value < :revision""",
)


def kv_from_row(row: tuple[Any, ...]) -> KeyValue:
    """(key, value, create_revision, revision, ...) -> KeyValue."""
    return KeyValue(key=row[0], value=bytes(row[1]), create_revision=row[2], mod_revision=row[3])


def event_from_row(row: tuple[Any, ...]) -> Event:
    """A HISTORY row -> Event, with ``prev`` from the joined previous row."""
    revision, key, created, deleted, create_revision, value, p_rev, p_create, p_value = row
    kv = KeyValue(key=key, value=bytes(value), create_revision=create_revision,
                  mod_revision=revision)
    prev = None
    if p_rev is not None and not created:
        prev = KeyValue(key=key, value=bytes(p_value), create_revision=p_create,
                        mod_revision=p_rev)
    kind = "ADDED" if created else "DELETED" if deleted else "MODIFIED"
    return Event(type=kind, kv=kv, prev=prev)
