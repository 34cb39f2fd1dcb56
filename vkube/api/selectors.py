"""Label and field selectors: the ``?labelSelector=`` / ``?fieldSelector=`` string grammar of
``k8s.io/apimachinery/pkg/labels`` and ``fields``, and ``metav1.LabelSelector`` objects.

Syntax errors raise ``BadRequest`` naming the selector, so the server can return them as-is.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from vkube.api.errors import BadRequest
from vkube.api.validation import label_value, qualified_name

__all__ = [
    "Requirement", "LabelSelector", "FieldRequirement", "FieldSelector", "parse_label_selector",
    "label_selector_from_dict", "parse_field_selector", "selector_to_string", "everything",
]

_OPS = {"=": "=", "==": "==", "!=": "!=", "in": "in", "notin": "notin", "exists": "exists",
        "!": "!", "gt": "gt", "lt": "lt"}


@dataclass(frozen=True, slots=True)
class Requirement:
    """One clause: ``op`` is one of ``= == != in notin exists ! gt lt``."""

    key: str
    op: str
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        has = self.key in labels
        value = labels.get(self.key)
        if self.op in ("=", "==", "in"):
            return has and value in self.values
        if self.op in ("!=", "notin"):
            return not has or value not in self.values
        if self.op == "exists":
            return has
        if self.op == "!":
            return not has
        if not has:
            return False
        try:
            number, bound = int(str(value)), int(self.values[0])
        except ValueError:
            return False
        return number > bound if self.op == "gt" else number < bound

    def __str__(self) -> str:
        if self.op == "exists":
            return self.key
        if self.op == "!":
            return "!" + self.key
        if self.op in ("in", "notin"):
            return f"{self.key} {self.op} ({','.join(sorted(self.values))})"
        if self.op in ("gt", "lt"):
            return f"{self.key}{'>' if self.op == 'gt' else '<'}{self.values[0]}"
        return f"{self.key}{self.op}{self.values[0]}"


@dataclass(frozen=True, slots=True)
class LabelSelector:
    """A conjunction of requirements. ``nothing`` (a nil ``metav1.LabelSelector``) matches no
    object; no requirements matches every object."""

    requirements: tuple[Requirement, ...] = ()
    nothing: bool = False

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        if self.nothing:
            return False
        labels = labels or {}
        return all(r.matches(labels) for r in self.requirements)

    @property
    def empty(self) -> bool:
        return not self.nothing and not self.requirements

    def __str__(self) -> str:
        return ",".join(str(r) for r in sorted(self.requirements, key=lambda r: r.key))


def everything() -> LabelSelector:
    return LabelSelector()


# --- label selector strings ----------------------------------------------------------------

_TOKEN = re.compile(r"\s*(==|!=|=|!|\(|\)|,|<|>|[^\s,=!()<>]+)")


def _tokens(text: str) -> list[str]:
    out, pos = [], 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        match = _TOKEN.match(text, pos)
        if not match:  # pragma: no cover - the pattern matches any non-space character
            raise ValueError(f"unexpected character at {pos}")
        out.append(match.group(1))
        pos = match.end()
    return out


_SPECIAL = {"==", "!=", "=", "!", "(", ")", ",", "<", ">"}


def _check_key(key: str) -> None:
    errs = qualified_name(key)
    if errs:
        raise ValueError(f'invalid label key "{key}": {errs[0]}')


def _check_value(value: str) -> None:
    errs = label_value(value)
    if errs:
        raise ValueError(f'invalid label value: "{value}": at key: {errs[0]}')


def _parse_requirements(text: str) -> list[Requirement]:
    toks = _tokens(text)
    reqs: list[Requirement] = []
    i = 0

    def expect_ident(what: str) -> str:
        nonlocal i
        if i >= len(toks) or toks[i] in _SPECIAL:
            found = toks[i] if i < len(toks) else "end of string"
            raise ValueError(f"found '{found}', expected: {what}")
        i += 1
        return toks[i - 1]

    while i < len(toks):
        if toks[i] == "!":
            i += 1
            key = expect_ident("identifier after '!'")
            _check_key(key)
            reqs.append(Requirement(key, "!"))
        else:
            key = expect_ident("!, identifier, or 'end of string'")
            _check_key(key)
            op = toks[i] if i < len(toks) else ","
            if op == ",":
                reqs.append(Requirement(key, "exists"))
            elif op in ("=", "==", "!="):
                i += 1
                value = ""
                if i < len(toks) and toks[i] not in _SPECIAL:
                    value = toks[i]
                    i += 1
                _check_value(value)
                reqs.append(Requirement(key, op, (value,)))
            elif op in (">", "<"):
                i += 1
                value = expect_ident("integer")
                if not re.fullmatch(r"-?\d+", value):
                    raise ValueError(f"for 'Gt', 'Lt' operators, the value must be an integer: {value}")
                reqs.append(Requirement(key, "gt" if op == ">" else "lt", (value,)))
            elif op in ("in", "notin"):
                i += 1
                if i >= len(toks) or toks[i] != "(":
                    raise ValueError("found '%s', expected: '('" % (toks[i] if i < len(toks) else "end of string"))
                i += 1
                values: list[str] = []
                while True:
                    if i < len(toks) and toks[i] not in _SPECIAL:
                        _check_value(toks[i])
                        values.append(toks[i])
                        i += 1
                    elif i < len(toks) and toks[i] in (",", ")"):
                        values.append("")  # an empty value, as in "a in (,b)"
                    if i < len(toks) and toks[i] == ",":
                        i += 1
                        continue
                    if i < len(toks) and toks[i] == ")":
                        i += 1
                        break
                    found = toks[i] if i < len(toks) else "end of string"
                    raise ValueError(f"found '{found}', expected: ',', or ')'")
                reqs.append(Requirement(key, op, tuple(values)))
            else:
                raise ValueError(f"found '{op}', expected: in, notin, =, ==, !=, gt, lt")
        if i < len(toks):
            if toks[i] != ",":
                raise ValueError(f"found '{toks[i]}', expected: ',' or 'end of string'")
            i += 1
            if i >= len(toks):
                raise ValueError("found 'end of string', expected: identifier")
    return reqs


def parse_label_selector(text: str | None) -> LabelSelector:
    """Parse ``?labelSelector=``; raises ``BadRequest`` naming the selector on syntax errors."""
    if not text or not text.strip():
        return LabelSelector()
    try:
        return LabelSelector(tuple(_parse_requirements(text)))
    except ValueError as exc:
        raise BadRequest(f'unable to parse label selector "{text}": {exc}') from None


def label_selector_from_dict(sel: Mapping[str, Any] | None) -> LabelSelector:
    """``metav1.LabelSelectorAsSelector``: nil matches nothing, ``{}`` matches everything."""
    if sel is None:
        return LabelSelector(nothing=True)
    reqs: list[Requirement] = []
    for key, value in (sel.get("matchLabels") or {}).items():
        reqs.append(Requirement(str(key), "=", (str(value),)))
    ops = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!"}
    for expr in sel.get("matchExpressions") or ():
        op = ops.get((expr or {}).get("operator", ""))
        if op is None:
            raise BadRequest(f'"{(expr or {}).get("operator")}" is not a valid label selector operator')
        values = tuple(str(v) for v in expr.get("values") or ())
        if op in ("in", "notin") and not values:
            raise BadRequest("for 'in', 'notin' operators, values set can't be empty")
        reqs.append(Requirement(str(expr.get("key", "")), op, values))
    return LabelSelector(tuple(reqs))


def selector_to_string(value: Any) -> str:
    """A selector string from a ``metav1.LabelSelector``, a plain label map (ReplicationController
    ``spec.selector``) or a string (as CRD scale ``labelSelectorPath`` points to)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping) and not {"matchLabels", "matchExpressions"} & set(value):
        return ",".join(f"{k}={v}" for k, v in sorted(value.items()))
    return str(label_selector_from_dict(value))


# --- field selectors -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FieldRequirement:
    field: str
    op: str  # "=", "==" or "!="
    value: str

    def matches(self, attrs: Mapping[str, str]) -> bool:
        equal = attrs.get(self.field, "") == self.value
        return not equal if self.op == "!=" else equal


@dataclass(frozen=True, slots=True)
class FieldSelector:
    requirements: tuple[FieldRequirement, ...] = field(default=())

    def matches(self, attrs: Mapping[str, str]) -> bool:
        return all(r.matches(attrs) for r in self.requirements)

    @property
    def empty(self) -> bool:
        return not self.requirements

    @property
    def fields(self) -> tuple[str, ...]:
        return tuple(r.field for r in self.requirements)


def _split_unescaped(text: str, sep: str) -> list[str]:
    parts, cur, i = [], [], 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            cur.append(text[i:i + 2])
            i += 2
            continue
        if ch == sep:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
        i += 1
    parts.append("".join(cur))
    return parts


def _unescape(value: str) -> str:
    out, i = [], 0
    while i < len(value):
        if value[i] == "\\":
            if i + 1 >= len(value) or value[i + 1] not in "\\,=":
                raise ValueError(f"invalid escape sequence in value: {value}")
            out.append(value[i + 1])
            i += 2
        else:
            out.append(value[i])
            i += 1
    return "".join(out)


def _find_op(term: str) -> tuple[int, str] | None:
    i = 0
    while i < len(term):
        if term[i] == "\\":
            i += 2
            continue
        for op in ("!=", "==", "="):
            if term.startswith(op, i):
                return i, op
        i += 1
    return None


def parse_field_selector(text: str | None) -> FieldSelector:
    """Parse ``?fieldSelector=`` (``=``, ``==``, ``!=`` only, ``\\`` escapes ``,``, ``=``, ``\\``).
    Which fields a kind supports is the caller's check (see ``FieldSelector.fields``)."""
    if not text or not text.strip():
        return FieldSelector()
    reqs: list[FieldRequirement] = []
    for term in _split_unescaped(text, ","):
        found = _find_op(term)
        if found is None or found[0] == 0:
            raise BadRequest(f"invalid selector: '{text}'; can't understand '{term}'")
        pos, op = found
        try:
            value = _unescape(term[pos + len(op):])
        except ValueError as exc:
            raise BadRequest(f"invalid selector: '{text}'; {exc}") from None
        reqs.append(FieldRequirement(term[:pos].strip(), op, value))
    return FieldSelector(tuple(reqs))
