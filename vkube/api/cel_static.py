"""Static checks of CEL rules before a CRD is stored: fields a rule names that its schema
cannot have (CEL's type checker says ``undefined field``), and an estimate of a rule's cost
against Kubernetes' per-rule budget. Both work on the rule text and the schema; celpy has no
type checker or cost estimator of its own.
"""

from __future__ import annotations

import re
from typing import Any

Schema = dict[str, Any]

__all__ = ["COST_LIMIT", "estimate_cost", "undefined_field"]

#: Kubernetes' StaticEstimatedCostLimit for one rule.
COST_LIMIT = 10_000_000
_MAX_REQUEST = 3 * 1024 * 1024
_MACRO = re.compile(r"([A-Za-z_][\w]*(?:\.[A-Za-z_]\w*)*)\.(all|exists_one|exists|map|filter)\(\s*([A-Za-z_]\w*)\s*,")
_STRING_FUNCS = re.compile(r"\.(matches|contains|startsWith|endsWith|indexOf|lastIndexOf|split|replace|lowerAscii|upperAscii)\(")
_SELF_CHAIN = re.compile(r"\b(self|oldSelf)((?:\.[A-Za-z_]\w*)+)")


def undefined_field(rule: str, schema: Schema) -> str | None:
    """The first ``self.a.b`` field the schema cannot have (what CEL's type checker reports
    as ``undefined field``); maps, preserved-unknown and int-or-string nodes allow anything."""
    for m in _SELF_CHAIN.finditer(rule):
        node: Any = schema
        parts = m.group(2).lstrip(".").split(".")
        rest = rule[m.end():]
        if rest.startswith("("):
            parts = parts[:-1]  # the last segment is a method: self.name.startsWith(...)
        for part in parts:
            if not isinstance(node, dict) or node.get("x-kubernetes-preserve-unknown-fields") \
                    or node.get("x-kubernetes-int-or-string") or node.get("type") not in ("object", None):
                break
            props = node.get("properties") or {}
            extra = node.get("additionalProperties")
            if part in props:
                node = props[part]
            elif isinstance(extra, dict) or extra is True:
                node = extra if isinstance(extra, dict) else None
            elif node.get("type") == "object" and (props or extra is False):
                return part
            else:
                break
    return None


def _cardinality(schema: Schema | None) -> float:
    """Upper bound of elements (lists, maps) or characters (strings) a value may hold."""
    if not schema:
        return 1
    t = schema.get("type")
    if t == "array":
        if schema.get("maxItems") is not None:
            return float(schema["maxItems"])
        return _MAX_REQUEST / 3
    if t == "object":
        if schema.get("maxProperties") is not None:
            return float(schema["maxProperties"])
        return _MAX_REQUEST / 4
    if t == "string":
        if schema.get("maxLength") is not None:
            return float(schema["maxLength"])
        return _MAX_REQUEST
    return 1


def _resolve(expr: str, scope: dict[str, Schema]) -> Schema | None:
    parts = expr.split(".")
    node = scope.get(parts[0])
    for part in parts[1:]:
        if not isinstance(node, dict):
            return None
        props = node.get("properties") or {}
        extra = node.get("additionalProperties")
        node = props.get(part) or (extra if isinstance(extra, dict) else None)
    return node


def _span_end(text: str, start: int) -> int:
    depth = 0
    for i in range(start, len(text)):
        if text[i] == "(":
            depth += 1
        elif text[i] == ")":
            depth -= 1
            if depth == 0:
                return i
    return len(text)


def estimate_cost(rule: str, schema: Schema) -> float:
    """A static estimate in the spirit of Kubernetes' CEL cost estimator: each comprehension
    macro costs the cardinality of what it iterates (unbounded lists and maps count as many
    elements as fit in a request), nested macros multiply, and string functions on unbounded
    strings cost a tenth of their length."""
    scope: dict[str, Schema] = {"self": schema, "oldSelf": schema}
    loops: list[tuple[int, int, float]] = []  # (start, end, cardinality)
    for m in _MACRO.finditer(rule):
        target = _resolve(m.group(1), scope)
        card = _cardinality(target)
        if target is not None:
            elem = target.get("items") if target.get("type") == "array" else target.get("additionalProperties")
            scope[m.group(3)] = elem if isinstance(elem, dict) else {}
        paren = m.end() - len(m.group(3)) - 1
        paren = rule.rfind("(", 0, paren + 1)
        loops.append((paren, _span_end(rule, paren), card))
    string_cost = 1.0
    for m in _STRING_FUNCS.finditer(rule):
        start = rule.rfind(" ", 0, m.start()) + 1
        receiver = re.sub(r"^[^A-Za-z_]*", "", rule[start:m.start()])
        target = _resolve(receiver, scope) if receiver else None
        string_cost = max(string_cost, _cardinality(target) * 0.1 if target else 1.0)
    total = 0.0
    for i, (start, end, card) in enumerate(loops):
        if any(s < start and end <= e for j, (s, e, _) in enumerate(loops) if j != i):
            continue  # nested: counted by its outermost loop
        total += _nested_cost(i, loops) * string_cost
    return max(total, string_cost)


def _nested_cost(i: int, loops: list[tuple[int, int, float]]) -> float:
    start, end, card = loops[i]
    inner = [j for j, (s, e, _) in enumerate(loops)
             if j != i and start < s and e <= end
             and not any(start < s2 < s and e <= e2 <= end for k, (s2, e2, _) in enumerate(loops) if k not in (i, j))]
    return card * max([1.0] + [_nested_cost(j, loops) for j in inner])
