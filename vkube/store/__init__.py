"""The store layer: a revisioned key-value store with etcd's semantics (see ``base``).

``open_store(url)`` picks a backend from a URL; every backend runs the same conformance suite
(``tests/store/conformance.py``).
"""

from __future__ import annotations

import os
from urllib.parse import unquote, urlsplit

from vkube.store.base import (
    BackendError,
    Compacted,
    Event,
    FutureRevision,
    KeyExists,
    KeyNotFound,
    KeyValue,
    RangeResult,
    RevisionMismatch,
    Store,
    StoreClosed,
    StoreError,
)
from vkube.store.sqlite import SqliteStore

__all__ = [
    "BackendError", "Compacted", "Event", "FutureRevision", "KeyExists", "KeyNotFound", "KeyValue",
    "RangeResult", "RevisionMismatch", "SqliteStore", "Store", "StoreClosed", "StoreError",
    "UnsupportedStore", "open_store",
]

_PLANNED = {"postgres", "postgresql", "etcd", "etcd3", "http", "https"}


class UnsupportedStore(NotImplementedError):
    """A store URL whose backend vkube does not provide (yet)."""


def open_store(url: str | os.PathLike[str], **options: object) -> Store:
    """A store for ``url``; call ``await store.start()`` before use.

    ``sqlite:///abs/path.db`` (or ``sqlite:////abs/path.db``), ``sqlite://rel/path.db``, a
    plain path, or ``:memory:`` / ``sqlite://:memory:`` (an ephemeral store) give a
    ``SqliteStore``; ``options`` go to it. ``postgres://`` and ``etcd://`` raise
    ``UnsupportedStore`` until those backends exist.
    """
    text = os.fspath(url)
    if text == ":memory:":
        return SqliteStore(text, **options)  # type: ignore[arg-type]
    scheme = urlsplit(text).scheme.lower() if "://" in text else ""
    if not scheme:
        return SqliteStore(text, **options)  # type: ignore[arg-type]
    if scheme in ("sqlite", "sqlite3"):
        path = unquote(text.split("://", 1)[1].split("?", 1)[0])
        if path.startswith("//"):  # sqlite:////abs/path, as SQLAlchemy spells it
            path = "/" + path.lstrip("/")
        if not path:
            raise ValueError(f"store URL {text!r} names no file")
        return SqliteStore(path, **options)  # type: ignore[arg-type]
    if scheme in _PLANNED:
        raise UnsupportedStore(f"the {scheme} store backend is not implemented yet (url {text!r})")
    raise ValueError(f"unknown store URL scheme {scheme!r} in {text!r} (use sqlite:///path.db)")
