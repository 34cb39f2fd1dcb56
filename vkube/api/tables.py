"""``meta.k8s.io/v1 Table`` output, what ``kubectl get`` asks for.

Columns are data (``kinds.Column``) on each kind's strategy. A cell that depends on the current
time (AGE, RESTARTS "2 (5m ago)", LAST SEEN) is computed by a value that returns a callable
taking ``now``; columns of type ``date`` (as CRDs declare) hold timestamps shown as ages.
The server always sends every column, wide ones (priority 1) included; kubectl hides them.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from vkube.api.kinds import Column, ResourceSpec
from vkube.api.meta import parse_time

__all__ = ["to_table", "human_duration", "parse_time", "since", "age_column", "name_column",
           "relative", "NONE"]

NONE = "<none>"
Now = Callable[[datetime], Any]


def human_duration(seconds: float) -> str:
    """``duration.HumanDuration``: 5s, 3m2s, 10m, 5h3m, 2d3h, 45d, 2y30d."""
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 120:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        return f"{minutes}m" if s % 60 == 0 else f"{minutes}m{s % 60}s"
    if minutes < 180:
        return f"{minutes}m"
    hours = s // 3600
    if hours < 8:
        return f"{hours}h" if minutes % 60 == 0 else f"{hours}h{minutes % 60}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        return f"{hours // 24}d" if hours % 24 == 0 else f"{hours // 24}d{hours % 24}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        days = (hours // 24) % 365
        return f"{hours // 24 // 365}y" if days == 0 else f"{hours // 24 // 365}y{days}d"
    return f"{hours // 24 // 365}y"


def since(value: Any, now: datetime, *, unknown: str = "<unknown>") -> str:
    """``translateTimestampSince``: the age of a timestamp, ``<unknown>`` when unset."""
    when = parse_time(value)
    if when is None:
        return unknown
    if now.tzinfo is None:
        now = now.replace(tzinfo=timezone.utc)
    return human_duration((now - when).total_seconds())


def relative(fn: Callable[[datetime], Any]) -> Now:
    """Mark a cell value as needing ``now`` (returned from a ``Column.value``)."""
    return fn


def age_column(description: str = "CreationTimestamp is a timestamp representing the server "
                                  "time when this object was created.") -> Column:
    return Column("Age", lambda o: relative(lambda now: since(
        (o.get("metadata") or {}).get("creationTimestamp"), now)), description=description)


def name_column() -> Column:
    return Column("Name", lambda o: (o.get("metadata") or {}).get("name", ""), format="name",
                  description="Name must be unique within a namespace. More info: "
                              "https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names")


def _columns(spec: ResourceSpec) -> list[Column]:
    strategy = spec.strategy
    cols = list(getattr(strategy, "columns", ()) or ())
    if not cols:
        cols = [age_column()]
    if getattr(strategy, "name_column", True):
        cols.insert(0, name_column())
    return cols


def _cell(column: Column, obj: dict[str, Any], now: datetime) -> Any:
    try:
        value = column.value(obj)
        if callable(value):
            value = value(now)
        elif column.type == "date" and value is not None:
            value = since(value, now)
    except (KeyError, IndexError, TypeError, ValueError, AttributeError):
        value = None  # a malformed object prints an empty cell, never a 500
    if column.type == "integer" and isinstance(value, bool):
        value = int(value)
    return value


def _row_object(obj: dict[str, Any], include_object: str) -> dict[str, Any] | None:
    if include_object == "None":
        return None
    if include_object == "Object":
        return obj
    return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
            "metadata": obj.get("metadata") or {}}


def to_table(spec: ResourceSpec, objects: list[dict[str, Any]], *, now: datetime,
             wide: bool = True, include_object: str = "Metadata") -> dict[str, Any]:
    """A ``meta.k8s.io/v1`` Table for ``objects`` (``includeObject`` None/Metadata/Object).
    The caller sets ``metadata.resourceVersion``/``continue`` on the result."""
    columns = [c for c in _columns(spec) if wide or c.priority == 0]
    definitions = [{"name": c.name, "type": "string" if c.type == "date" else c.type,
                    "format": c.format, "description": c.description, "priority": c.priority}
                   for c in columns]
    rows = []
    row_conditions = getattr(spec.strategy, "row_conditions", None)
    for obj in objects:
        row: dict[str, Any] = {"cells": [_cell(c, obj, now) for c in columns]}
        if row_conditions is not None:
            conditions = row_conditions(obj)
            if conditions:
                row["conditions"] = conditions
        included = _row_object(obj, include_object)
        if included is not None:
            row["object"] = included
        rows.append(row)
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": {},
            "columnDefinitions": definitions, "rows": rows}
