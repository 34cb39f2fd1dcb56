"""Canonical forms a kind's schema implies, applied before an object is validated and stored.

Kubernetes decodes every ``resource.Quantity`` into its Go type and encodes it back, so what is
stored and read back is the canonical form (``0.1`` → ``100m``, ``1.5Gi`` → ``1536Mi``,
``2097152Ki`` → ``2Gi``, numbers → strings). Which fields are quantities comes from the
resolved schema (``openapi_convert.QUANTITY_MARK``), so every quantity of every built-in kind is
covered — pod resources, templates inside workloads, PVC requests and capacity, quotas, limit
ranges, node capacity, emptyDir sizes, metric targets — with no list of paths to keep.
"""

from __future__ import annotations

import functools
from typing import Any

from vkube.api.openapi_convert import QUANTITY_MARK
from vkube.api.quantity import QuantityError, canonical
from vkube.api.validation import invalid_value

__all__ = ["QuantityIndex", "canonicalize_quantities"]

Schema = dict[str, Any]
Causes = list[dict[str, str]]


class QuantityIndex:
    """Which nodes of one schema have a quantity at or below them, learnt as objects are
    walked, so that the walk skips the rest (in a pod, every container's env, ports and
    probes): the index of one schema, holding it so that the nodes' ids stay theirs."""

    __slots__ = ("schema", "_below", "_plans")

    @classmethod
    def shared(cls, schema: Schema) -> "QuantityIndex":
        """The process's index of ``schema``, shared by every cluster like the schema."""
        from vkube.api.typecheck import shared_index

        return shared_index(cls, schema)

    def __init__(self, schema: Schema | None) -> None:
        self.schema = schema
        self._below: dict[int, bool] = {}
        self._plans: dict[int, tuple[tuple[tuple[str, Schema], ...], Schema | None]] = {}

    def plan(self, schema: Schema) -> tuple[tuple[tuple[str, Schema], ...], Schema | None]:
        """An object node's quantity-bearing properties, and its map values' schema when
        those may hold one (else None)."""
        plan = self._plans.get(id(schema))
        if plan is None:
            props = schema.get("properties") or {}
            extra = schema.get("additionalProperties")
            plan = self._plans[id(schema)] = (
                tuple((k, sub) for k, sub in props.items() if isinstance(sub, dict) and self.below(sub)),
                extra if isinstance(extra, dict) and self.below(extra) else None)
        return plan

    def below(self, schema: Schema) -> bool:
        """Whether ``schema`` (a node of this index's schema) may hold a quantity."""
        found = self._below.get(id(schema))
        if found is None:
            found = self._search(schema, set())
        return found

    def _search(self, schema: Schema, visiting: set[int]) -> bool:
        key = id(schema)
        if key in self._below:
            return self._below[key]
        if key in visiting:
            return True  # a cycle (JSONSchemaProps): assume so, and learn nothing from it
        visiting.add(key)
        found = bool(schema.get(QUANTITY_MARK))
        if not found:
            props = schema.get("properties")
            children = list(props.values()) if isinstance(props, dict) else []
            children += [schema.get("additionalProperties"), schema.get("items")]
            found = any(isinstance(c, dict) and self._search(c, visiting) for c in children)
        visiting.discard(key)
        self._below[key] = found  # "no" never rests on a cycle's guess; "yes" at worst walks more
        return found


def canonicalize_quantities(obj: Any, schema: Schema | None, index: QuantityIndex | None = None) -> Causes:
    """Rewrite every quantity in ``obj`` (in place) to Kubernetes' canonical string. Returns
    an ``Invalid value`` cause, naming the field, for each value that is not a quantity (the
    value is left as it was). ``index`` (of ``schema``) is kept by the caller across calls."""
    causes: Causes = []
    if not isinstance(schema, dict) or not isinstance(obj, dict):
        return causes
    if index is None or index.schema is not schema:
        index = QuantityIndex(schema)
    if not _fast_object(obj, schema, index):
        _walk_object(obj, schema, "", causes)  # again, naming the fields (canonical is idempotent)
    return causes


def _fast(value: Any, schema: Schema, index: QuantityIndex) -> Any:
    """``_walk`` without field paths (building one per value was most of the cost); raises
    QuantityError at the first bad value, for the slow walk to name."""
    if schema.get(QUANTITY_MARK):
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            return value
        return _canonical(value)
    if isinstance(value, dict):
        if not _fast_object(value, schema, index):
            raise QuantityError("")
    elif isinstance(value, list):
        items = schema.get("items")
        if isinstance(items, dict) and index.below(items):
            for i, item in enumerate(value):
                value[i] = _fast(item, items, index)
    return value


def _fast_object(obj: dict[str, Any], schema: Schema, index: QuantityIndex) -> bool:
    """Canonicalize ``obj``'s quantities in place; False when one is not a quantity."""
    fields, extra = index.plan(schema)
    try:
        if extra is None:  # a struct: only its quantity-bearing fields are looked at
            for key, sub in fields:
                if key in obj:
                    obj[key] = _fast(obj[key], sub, index)
            return True
        props = schema.get("properties") or {}
        for key, value in obj.items():
            sub = props.get(key)
            if isinstance(sub, dict):
                if index.below(sub):
                    obj[key] = _fast(value, sub, index)
            else:
                obj[key] = _fast(value, extra, index)
    except QuantityError:
        return False
    return True


# canonical() is pure and exact but not cheap (Fraction arithmetic); manifests repeat the same
# few values ("100m", "1Gi") endlessly, so a bounded memo of it, shared read-only like the
# built-in schemas, keeps the per-write cost small.
_canonical = functools.lru_cache(maxsize=4096)(canonical)


def _fix(value: Any, path: str, causes: Causes) -> Any:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        return value  # a wrong JSON type is the type checker's 400, reported before this
    try:
        return _canonical(value)
    except QuantityError as exc:
        causes.append(invalid_value(path, value, str(exc)))
        return value


def _walk(value: Any, schema: Schema, path: str, causes: Causes) -> Any:
    """The value with its quantities canonical (containers are changed in place)."""
    if schema.get(QUANTITY_MARK):
        return _fix(value, path, causes)
    if isinstance(value, dict):
        _walk_object(value, schema, path, causes)
    elif isinstance(value, list):
        items = schema.get("items")
        if isinstance(items, dict):
            for i, item in enumerate(value):
                value[i] = _walk(item, items, f"{path}[{i}]", causes)
    return value


def _walk_object(obj: dict[str, Any], schema: Schema, path: str, causes: Causes) -> None:
    props = schema.get("properties") or {}
    extra = schema.get("additionalProperties")
    for key, value in obj.items():
        sub = props.get(key)
        if isinstance(sub, dict):
            obj[key] = _walk(value, sub, f"{path}.{key}" if path else key, causes)
        elif isinstance(extra, dict):  # a map: Kubernetes writes its keys in brackets
            obj[key] = _walk(value, extra, f"{path}[{key}]", causes)
