"""Small helpers over plain-dict objects shared by the API server's modules."""

from __future__ import annotations

import secrets

import orjson

from vkube.api.meta import Obj
from vkube.store.base import KeyValue

_GEN_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # Kubernetes' utilrand alphabet: no vowels, no 0/1/3


def random_suffix(n: int = 5) -> str:
    return "".join(secrets.choice(_GEN_ALPHABET) for _ in range(n))


def meta(obj: Obj) -> Obj:
    """``obj["metadata"]``, created if missing (as a dict)."""
    m = obj.get("metadata")
    if not isinstance(m, dict):
        m = {}
        obj["metadata"] = m
    return m


def encode(obj: Obj) -> bytes:
    """Stored form: the object without resourceVersion (that is the store's mod revision)."""
    m = obj.get("metadata") or {}
    if "resourceVersion" in m:
        m = dict(m)
        del m["resourceVersion"]
        obj = {**obj, "metadata": m}
    return orjson.dumps(obj)


def decode(kv: KeyValue) -> Obj:
    obj = orjson.loads(kv.value)
    obj.setdefault("metadata", {})["resourceVersion"] = str(kv.mod_revision)
    return obj


def parse_rv(value: str | None, *, what: str = "resourceVersion") -> int:
    """A resourceVersion string → revision (``""`` → 0); garbage is a 400, never a 500."""
    from vkube.api.errors import BadRequest

    if value in (None, ""):
        return 0
    try:
        rv = int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise BadRequest(f'{what}: Invalid value: "{value}": must be a non-negative integer') from None
    if rv < 0 or rv >= 2**63:
        raise BadRequest(f'{what}: Invalid value: "{value}": must be a non-negative integer')
    return rv
