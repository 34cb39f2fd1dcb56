"""CEL validation rules of CRD schemas (``x-kubernetes-validations``), with cel-python (``celpy``).

Rules are compiled once per CRD (``compile_rules``, see ``cel_compile``: syntax, types and
estimated cost; problems become causes on the CRD itself) and evaluated against custom
resources (``RuleSet.validate``) with ``self`` bound to the value at the rule's node and, for
transition rules, ``oldSelf`` to the previous value — correlated by property name and map key,
as in Kubernetes. Values reach CEL typed by the schema (``date-time`` strings as timestamps,
``duration`` as durations, ``byte`` as bytes). Errors carry the rule's ``message`` /
``messageExpression``, ``fieldPath`` and ``reason``.

Runtime cost is bounded as in Kubernetes: one evaluation may not cost more than
``PER_CALL_LIMIT`` and all rules on one object not more than ``RUNTIME_BUDGET``. cel-python
does not count operations, so a rule's cost is its estimate with the sizes of the value at
hand (an upper bound of what cel-go would count), and a rule over the limit is not run.
"""

from __future__ import annotations

import base64
import datetime
import logging
from dataclasses import dataclass
from typing import Any

from vkube.api.cel_check import check_ast
from vkube.api.cel_compile import COST_LIMIT, CRD_COST_LIMIT, Rule, RuleNode, compile_schema
from vkube.api.cel_compile import err_text as _err_text
from vkube.api.cel_types import CelType, value_type
from vkube.api.errors import field_error
from vkube.api.structural import child_path, type_name

Schema = dict[str, Any]
Causes = list[dict[str, str]]

__all__ = ["RuleSet", "compile_rules", "COST_LIMIT", "CRD_COST_LIMIT", "PER_CALL_LIMIT", "RUNTIME_BUDGET"]

#: celconfig.PerCallLimit (one evaluation) and RuntimeCELCostBudget (all rules on one object).
PER_CALL_LIMIT = 1_000_000
RUNTIME_BUDGET = 10_000_000
#: rules estimated at most this dear are charged their estimate; dearer ones are re-estimated
#: with the sizes of the value at hand before they run
_CHEAP = 10_000
_OUT_OF_BUDGET = "validation failed due to running out of cost budget, no further validation rules will be run"


class _DropTranspilerErrors(logging.Filter):
    """celpy's transpiled runner logs every failed evaluation (a missing key) as an internal
    error; for rules over user data that is an ordinary outcome, reported in the Status."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Internal error")


def _quiet_transpiler() -> None:
    logger = logging.getLogger("celpy.Transpiler")
    if not any(isinstance(f, _DropTranspilerErrors) for f in logger.filters):
        logger.addFilter(_DropTranspilerErrors())


@dataclass(slots=True)
class _Budget:
    remaining: int = RUNTIME_BUDGET
    stopped: bool = False


class RuleSet:
    """The compiled rules of one schema."""

    def __init__(self, root: RuleNode | None) -> None:
        self.root = root

    def __bool__(self) -> bool:
        return self.root is not None

    def validate(self, obj: Any, old: Any = None, *, path: str = "",
                 transition_only: bool = False, ratchet: bool = False) -> Causes:
        """Causes for every rule that fails: the rules that do not use ``oldSelf``, or with
        ``transition_only`` those that do, where an old value correlates. With ``ratchet``
        (an update), rules whose value is unchanged from ``old`` are not evaluated — CRD
        validation ratcheting, as Kubernetes does it since 1.30."""
        out: Causes = []
        if self.root is not None:
            _eval(self.root, obj, old, path, out, _Budget(), has_old=old is not None,
                  transition_only=transition_only, ratchet=ratchet, creating=old is None)
        return out


def compile_rules(schema: Schema | None, path: str) -> tuple[RuleSet, Causes]:
    """Compile every ``x-kubernetes-validations`` of ``schema``; ``path`` is the schema's field
    path in the CRD (for error causes)."""
    if not schema or not _has_rules(schema):
        return RuleSet(None), []  # no CEL: celpy (≈1.4 s to import and build its parser once) stays unloaded
    _quiet_transpiler()
    root, causes = compile_schema(schema, path)
    return RuleSet(root), causes


def _has_rules(node: Any) -> bool:
    if isinstance(node, dict):
        return "x-kubernetes-validations" in node or any(_has_rules(v) for v in node.values())
    if isinstance(node, list):
        return any(_has_rules(v) for v in node)
    return False


# ------------------------------------------------------------------ values


def to_cel(value: Any, t: CelType | None, fields: frozenset[str] | None = None) -> Any:
    """A JSON value as CEL sees it under type ``t``; of an object, only ``fields`` when given
    (the rules read nothing else, and converting is most of the cost of a cheap rule)."""
    from celpy import celtypes

    if fields is not None and isinstance(value, dict) and t is not None and t.kind == "object":
        return celtypes.MapType({celtypes.StringType(k): _convert(value[k], t.fields.get(k), celtypes)
                                 for k in fields if k in value})
    return _convert(value, t, celtypes)


def _convert(value: Any, t: CelType | None, celtypes: Any) -> Any:
    if isinstance(value, str):
        kind = t.kind if t is not None else ""
        if kind in ("timestamp", "duration", "bytes"):
            try:
                if kind == "timestamp":
                    return celtypes.TimestampType(_timestamp(value))
                if kind == "duration":
                    return celtypes.DurationType(value)
                return celtypes.BytesType(base64.b64decode(value))
            except Exception:  # noqa: BLE001 - the schema's format check reports a malformed value
                pass
        return celtypes.StringType(value)
    if value is None:
        return None
    if isinstance(value, bool):
        return celtypes.BoolType(value)
    if isinstance(value, int):
        return celtypes.DoubleType(value) if t is not None and t.kind == "double" else celtypes.IntType(value)
    if isinstance(value, float):
        return celtypes.DoubleType(value)
    if isinstance(value, list):
        elem = t.elem if t is not None and t.kind == "list" else None
        return celtypes.ListType([_convert(v, elem, celtypes) for v in value])
    if isinstance(value, dict):
        if t is not None and t.kind == "object":
            get = t.fields.get
            return celtypes.MapType({celtypes.StringType(k): _convert(v, get(k), celtypes) for k, v in value.items()})
        elem = t.elem if t is not None and t.kind == "map" else None
        return celtypes.MapType({celtypes.StringType(k): _convert(v, elem, celtypes) for k, v in value.items()})
    return value


def _timestamp(text: str) -> datetime.datetime:
    if len(text) == 10:  # format: date
        return datetime.datetime.fromisoformat(text).replace(tzinfo=datetime.timezone.utc)
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))


# ------------------------------------------------------------------ evaluate


def _read(rules: list[Rule], attr: str) -> frozenset[str] | None:
    """The fields these rules read together (None: whole values)."""
    out: frozenset[str] = frozenset()
    for rule in rules:
        fields = getattr(rule, attr)
        if fields is None:
            return None
        out |= fields
    return out


def _select(node: RuleNode, *, transition_only: bool, has_old: bool, creating: bool) -> list[Rule]:
    """The rules to run here: transition rules where an old value correlates (optionalOldSelf
    ones also where none does); the others always — optionalOldSelf ones too on create."""
    if transition_only:
        return [r for r in node.rules if r.transition] if has_old else [r for r in node.rules if r.optional_old]
    return [r for r in node.rules if not r.transition or (creating and r.optional_old)]


def _eval(node: RuleNode, value: Any, old: Any, path: str, out: Causes, budget: _Budget, *, has_old: bool,
          transition_only: bool = False, ratchet: bool = False, creating: bool = False) -> None:
    if value is None or budget.stopped or (transition_only and not has_old and not node.optional_below):
        return
    if ratchet and has_old and value == old:
        return  # unchanged: its rules (and everything below) ratchet
    rules = _select(node, transition_only=transition_only, has_old=has_old, creating=creating)
    if rules:
        from vkube.api.cel_library import Optional

        base: dict[str, Any] = {"self": to_cel(value, node.type, _read(rules, "self_fields"))}
        old_cel = to_cel(old, node.type, _read(rules, "old_fields")) if has_old and transition_only else None
        for rule in rules:
            activation = base
            if rule.transition:
                if rule.optional_old:
                    old_value = Optional(old_cel) if old_cel is not None else Optional()
                    activation = {**base, "oldSelf": old_value}
                else:
                    activation = {**base, "oldSelf": old_cel}
            if not _charge(rule, value, old if rule.transition and has_old else None, path, out, budget):
                return
            _run(rule, activation, value, path, out)
    kw = {"transition_only": transition_only, "ratchet": ratchet, "creating": creating}
    if isinstance(value, dict):
        old_map = old if isinstance(old, dict) else {}
        for key, child in node.props.items():
            if key in value:
                _eval(child, value[key], old_map.get(key), child_path(path, key), out, budget,
                      has_old=has_old and key in old_map, **kw)
        if node.extra is not None:
            for key, v in value.items():
                if key not in node.props:
                    _eval(node.extra, v, old_map.get(key), child_path(path, key), out, budget,
                          has_old=has_old and key in old_map, **kw)
    elif isinstance(value, list) and node.items is not None:
        olds: dict[tuple, Any] = {}
        if node.map_keys and isinstance(old, list):
            olds = {tuple(o.get(k) for k in node.map_keys): o for o in old if isinstance(o, dict)}
        for i, item in enumerate(value):
            prev = None
            if node.map_keys and isinstance(item, dict):
                prev = olds.get(tuple(item.get(k) for k in node.map_keys))
            _eval(node.items, item, prev, f"{path}[{i}]", out, budget, has_old=prev is not None, **kw)


def _charge(rule: Rule, value: Any, old: Any, path: str, out: Causes, budget: _Budget) -> bool:
    """Take the rule's cost from the budget; False (and a cause) when it may not run."""
    cost = rule.cost
    if cost > _CHEAP:
        old_t = value_type(old, rule.self_type) if old is not None else rule.self_type
        env = {"self": value_type(value, rule.self_type),
               "oldSelf": CelType("optional", elem=old_t) if rule.optional_old else old_t}
        cost = check_ast(rule.ast, env).cost
    if cost > PER_CALL_LIMIT:
        which = rule.message.strip() or rule.rule.strip()
        out.append(field_error(path, f'Invalid value: "{type_name(value)}": \'operation cancelled: actual cost '
                                     f"limit exceeded': no further validation rules will be run due to call cost "
                                     f"exceeds limit for rule: {which}"))
        budget.stopped = True
        return False
    if cost > budget.remaining:
        out.append(field_error(path, f'Invalid value: "{type_name(value)}": {_OUT_OF_BUDGET}'))
        budget.stopped = True
        return False
    budget.remaining -= cost
    return True


def _run(rule: Rule, activation: dict[str, Any], value: Any, path: str, out: Causes) -> None:
    from celpy import celtypes

    target = child_path(path, rule.field_path) if rule.field_path else path
    try:
        result = rule.program.evaluate(activation)
    except Exception:
        # the transpiled runner fails some rules the interpreter evaluates (an error inside
        # ``||`` that the other side absorbs): the interpreter decides, and words the error
        try:
            result = rule.interpret(activation)
        except Exception as exc:
            out.append(field_error(target, f'Invalid value: "{type_name(value)}": {_err_text(exc)} '
                                           f"evaluating rule: {rule.rule}"))
            return
    if not isinstance(result, celtypes.BoolType) and not isinstance(result, bool):
        out.append(field_error(target, f'Invalid value: "{type_name(value)}": rule did not evaluate to a bool'))
        return
    if result:
        return
    message = rule.message or f"failed rule: {rule.rule}"
    if rule.message_program is not None:
        try:
            text = rule.message_program.evaluate(activation)
            if isinstance(text, str) and text.strip() and "\n" not in text:
                message = str(text)
        except Exception:
            pass
    if rule.reason == "FieldValueForbidden":
        out.append(field_error(target, f"Forbidden: {message}", reason=rule.reason))
    elif rule.reason == "FieldValueRequired":
        out.append(field_error(target, f"Required value: {message}", reason=rule.reason))
    elif rule.reason == "FieldValueDuplicate":
        out.append(field_error(target, f'Duplicate value: "{type_name(value)}": {message}', reason=rule.reason))
    else:
        out.append(field_error(target, f'Invalid value: "{type_name(value)}": {message}'))
