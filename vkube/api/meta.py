"""Small helpers every layer needs about objects: the object type alias, RFC 3339 times as
Kubernetes writes them, and object keys. One module, so no layer keeps a private copy.

Pure functions, no I/O: part of the resource-model layer, importable from everywhere."""

from __future__ import annotations

import datetime as dt
import os
from typing import Any

#: A Kubernetes object as it travels: a JSON-shaped dict (camelCase keys).
Obj = dict[str, Any]

UTC = dt.timezone.utc


def new_uid() -> str:
    """A random (version 4) UUID as text, as ``uuid.NewRandom`` gives object UIDs and audit
    IDs: ``str(uuid.uuid4())`` without the UUID object, which cost more than the bytes."""
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40  # version 4
    raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def utcnow() -> dt.datetime:
    """The current time, timezone-aware in UTC."""
    return dt.datetime.now(UTC)


def rfc3339(t: dt.datetime) -> str:
    """``metav1.Time``: RFC 3339 in UTC with second precision and a ``Z`` (Go's
    ``time.RFC3339`` as Kubernetes serialises it). Naive datetimes are taken as UTC."""
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return t.astimezone(UTC).isoformat(timespec="seconds")[:-6] + "Z"  # "+00:00" → "Z"


def rfc3339_micro(t: dt.datetime) -> str:
    """``metav1.MicroTime``: RFC 3339 in UTC with microseconds and a ``Z`` (Leases, Events)."""
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return t.astimezone(UTC).isoformat(timespec="microseconds")[:-6] + "Z"


def now_rfc3339() -> str:
    """``rfc3339(utcnow())``: the timestamp Kubernetes writes for "now"."""
    return rfc3339(utcnow())


def parse_time(s: Any) -> dt.datetime | None:
    """Parse an RFC 3339 timestamp (``Z`` or an offset, any fraction) to an aware datetime;
    None for a missing or malformed value (callers treat both as "unknown")."""
    if not s or not isinstance(s, str):
        return None
    try:
        t = dt.datetime.fromisoformat(s.replace("Z", "+00:00"))
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def ref_key(namespace: str | None, name: str) -> str:
    """client-go's ``MetaNamespaceKeyFunc`` shape: ``NS/NAME``, or ``NAME`` when cluster-scoped."""
    return f"{namespace}/{name}" if namespace else name


def object_key(obj: Obj) -> str:
    """The work-queue / cache key of an object: ``NS/NAME`` or ``NAME``."""
    meta = obj.get("metadata") or {}
    return ref_key(meta.get("namespace"), meta.get("name", ""))


def split_key(key: str) -> tuple[str | None, str]:
    """Inverse of ``ref_key``: ``(namespace or None, name)``."""
    ns, sep, name = key.partition("/")
    return (ns, name) if sep else (None, ns)
