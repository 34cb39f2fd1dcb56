"""Helpers for JSON-shaped values (dicts, lists, str, int, float, bool, None)."""

from __future__ import annotations

import copy
from typing import Any

import orjson


def clone(value: Any) -> Any:
    """A deep copy, through orjson: ~5x faster than ``copy.deepcopy`` on API objects. Falls
    back to ``deepcopy`` for values JSON cannot carry (such as huge integers)."""
    try:
        return orjson.loads(orjson.dumps(value))
    except (TypeError, orjson.JSONEncodeError):
        return copy.deepcopy(value)


def canonical(value: Any) -> str:
    """Compact JSON with sorted keys, as Kubernetes writes values into field paths."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
