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
    "UnsupportedStore", "open_store", "describe",
]

_ETCD_OPTIONS = ("ca_file", "cert_file", "key_file")


class UnsupportedStore(ValueError):
    """A store URL vkube cannot open (unknown scheme, malformed, or options it cannot honour)."""


def open_store(url: str | os.PathLike[str], **options: object) -> Store:
    """A store for ``url``; call ``await store.start()`` before use.

    ``sqlite:///abs/path.db`` (or ``sqlite:////abs/path.db``), ``sqlite://rel/path.db``, a
    plain path, or ``:memory:`` / ``sqlite://:memory:`` (an ephemeral store) give a
    ``SqliteStore``; ``postgres://USER[:PASSWORD]@HOST:PORT/DB`` a ``PostgresStore``;
    ``etcd://HOST:PORT[,HOST:PORT...][/PREFIX]`` an ``EtcdStore`` (options ``ca_file``,
    ``cert_file``, ``key_file`` for TLS). Options a backend does not take are refused.
    A bad URL raises ``UnsupportedStore`` (a ``ValueError``) saying what is wrong.
    """
    text = os.fspath(url)
    scheme = urlsplit(text).scheme.lower() if "://" in text else ""
    tls = {k: v for k, v in options.items() if k in _ETCD_OPTIONS and v}
    if tls and scheme not in ("etcd", "etcd3"):
        raise UnsupportedStore(f"TLS options ({', '.join(tls)}) apply to etcd:// stores only, "
                               f"not {text!r}")
    options = {k: v for k, v in options.items() if k not in _ETCD_OPTIONS}
    if text == ":memory:" or not scheme:
        return SqliteStore(text, **options)  # type: ignore[arg-type]
    if scheme in ("sqlite", "sqlite3"):
        path = unquote(text.split("://", 1)[1].split("?", 1)[0])
        if path.startswith("//"):  # sqlite:////abs/path, as SQLAlchemy spells it
            path = "/" + path.lstrip("/")
        if not path:
            raise UnsupportedStore(f"store URL {text!r} names no file")
        return SqliteStore(path, **options)  # type: ignore[arg-type]
    if scheme in ("postgres", "postgresql"):
        parts = urlsplit(text)
        if not parts.hostname or parts.path in ("", "/"):
            raise UnsupportedStore(f"store URL {text!r}: use postgres://USER@HOST:PORT/DATABASE")
        from vkube.store.postgres import PostgresStore

        return PostgresStore(text, **options)  # type: ignore[arg-type]
    if scheme in ("etcd", "etcd3"):
        from vkube.store.etcd import EtcdStore

        try:
            return EtcdStore(text, **tls)  # type: ignore[arg-type]
        except ValueError as exc:
            raise UnsupportedStore(str(exc)) from None
    raise UnsupportedStore(f"unknown store URL scheme {scheme!r} in {text!r} (use sqlite, "
                           "postgres://USER@HOST:PORT/DB or etcd://HOST:PORT)")


def describe(url: str) -> str:
    """``url`` without a password, for logs and messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return url.replace(f":{parts.password}@", ":***@", 1)
