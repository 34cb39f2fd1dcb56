"""CEL validation rules of CRD schemas (``x-kubernetes-validations``), with cel-python (``celpy``).

Rules are compiled once per CRD (``compile_rules``: compile errors and an estimated cost over
budget become causes on the CRD itself) and evaluated against custom resources
(``RuleSet.validate``) with ``self`` bound to the value at the rule's node and, for transition
rules, ``oldSelf`` to the previous value — correlated by property name and map key, as in
Kubernetes. Errors carry the rule's ``message``/``messageExpression``, ``fieldPath`` and
``reason``.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Any

from vkube.api.errors import field_error
from vkube.api.cel_static import COST_LIMIT, estimate_cost, undefined_field
from vkube.api.structural import child_path, type_name

Schema = dict[str, Any]
Causes = list[dict[str, str]]

__all__ = ["RuleSet", "compile_rules", "COST_LIMIT"]

#: Kubernetes' StaticEstimatedCostLimit for one rule.
_REASONS = ("FieldValueDuplicate", "FieldValueForbidden", "FieldValueInvalid", "FieldValueRequired")


def _functions() -> dict[str, Any]:
    """The parts of Kubernetes' CEL libraries (strings, lists) that rules commonly use."""
    from celpy import celtypes

    S, L, I = celtypes.StringType, celtypes.ListType, celtypes.IntType  # noqa: E741,N806

    def join(lst: Any, sep: Any = "") -> Any:
        return S(str(sep).join(str(x) for x in lst))

    def split(s: Any, sep: Any) -> Any:
        return L([S(x) for x in str(s).split(str(sep))])

    def is_sorted(lst: Any) -> Any:
        return celtypes.BoolType(all(lst[i] <= lst[i + 1] for i in range(len(lst) - 1)))

    def total(lst: Any) -> Any:
        return sum(lst[1:], lst[0]) if len(lst) else I(0)

    return {
        "lowerAscii": lambda s: S(str(s).lower()), "upperAscii": lambda s: S(str(s).upper()),
        "trim": lambda s: S(str(s).strip()), "join": join, "split": split,
        "indexOf": lambda s, sub: I(str(s).find(str(sub))),
        "lastIndexOf": lambda s, sub: I(str(s).rfind(str(sub))),
        "replace": lambda s, a, b: S(str(s).replace(str(a), str(b))),
        "isSorted": is_sorted, "sum": total,
        "min": lambda lst: min(lst), "max": lambda lst: max(lst),
    }


@dataclass(slots=True)
class _Rule:
    rule: str
    program: Any  # transpiled (fast); a failing evaluation is re-run interpreted for its message
    message: str
    message_program: Any
    field_path: str
    reason: str
    transition: bool

    def explain(self, activation: dict[str, Any]) -> str:
        """The interpreter's error for a rule whose evaluation failed (the transpiled runner
        only says "evaluation error")."""
        import celpy

        env = celpy.Environment()
        try:
            env.program(env.compile(self.rule), functions=_functions()).evaluate(activation)
        except Exception as exc:
            return _err_text(exc)
        return "evaluation error"


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
class _Node:
    """Rules at one schema node and the nodes below that carry rules."""

    rules: list[_Rule] = field(default_factory=list)
    props: dict[str, "_Node"] = field(default_factory=dict)
    extra: "_Node | None" = None
    items: "_Node | None" = None
    map_keys: tuple[str, ...] = ()


class RuleSet:
    """The compiled rules of one schema."""

    def __init__(self, root: _Node | None) -> None:
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
            _eval(self.root, obj, old, path, out, has_old=old is not None, transition_only=transition_only,
                  ratchet=ratchet)
        return out


# ------------------------------------------------------------------ compile


def compile_rules(schema: Schema | None, path: str) -> tuple[RuleSet, Causes]:
    """Compile every ``x-kubernetes-validations`` of ``schema``; ``path`` is the schema's field
    path in the CRD (for error causes)."""
    if not schema or not _has_rules(schema):
        return RuleSet(None), []  # no CEL: celpy (≈1.4 s to import and build its parser once) stays unloaded
    import celpy

    env = celpy.Environment(runner_class=celpy.CompiledRunner)  # transpiled: ~4x faster than the tree walker
    _quiet_transpiler()
    causes: Causes = []
    root = _compile(schema, path, env, causes, {}) if schema else None
    return RuleSet(root), causes


def _has_rules(node: Any) -> bool:
    if isinstance(node, dict):
        return "x-kubernetes-validations" in node or any(_has_rules(v) for v in node.values())
    if isinstance(node, list):
        return any(_has_rules(v) for v in node)
    return False


def _compile(schema: Schema, path: str, env: Any, causes: Causes, funcs: dict) -> _Node | None:
    node = _Node()
    for i, raw in enumerate(schema.get("x-kubernetes-validations") or ()):
        rpath = f"{path}.x-kubernetes-validations[{i}]"
        rule = _compile_one(raw, rpath, schema, env, causes)
        if rule is not None:
            node.rules.append(rule)
    for key, sub in (schema.get("properties") or {}).items():
        if isinstance(sub, dict):
            child = _compile(sub, f"{path}.properties[{key}]", env, causes, funcs)
            if child is not None:
                node.props[key] = child
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict):
        node.extra = _compile(extra, f"{path}.additionalProperties", env, causes, funcs)
    items = schema.get("items")
    if isinstance(items, dict):
        node.items = _compile(items, f"{path}.items", env, causes, funcs)
        if schema.get("x-kubernetes-list-type") == "map":
            node.map_keys = tuple(schema.get("x-kubernetes-list-map-keys") or ())
    if not node.rules and not node.props and node.extra is None and node.items is None:
        return None
    return node


def _compile_one(raw: Any, rpath: str, schema: Schema, env: Any, causes: Causes) -> _Rule | None:
    if not isinstance(raw, dict) or not isinstance(raw.get("rule"), str) or not raw["rule"].strip():
        causes.append(field_error(f"{rpath}.rule", "Required value", reason="FieldValueRequired"))
        return None
    text = raw["rule"]
    reason = raw.get("reason") or "FieldValueInvalid"
    if reason not in _REASONS:
        supported = ", ".join(f'"{r}"' for r in _REASONS)
        causes.append(field_error(f"{rpath}.reason", f'Unsupported value: "{reason}": supported values: {supported}',
                                  reason="FieldValueNotSupported"))
    fpath = raw.get("fieldPath") or ""
    if fpath and not re.fullmatch(r"(\.[A-Za-z_][\w-]*|\[(\d+|'[^']*')\])+", fpath):
        causes.append(field_error(f"{rpath}.fieldPath", f'Invalid value: "{fpath}": fieldPath must be a valid path'))
    try:
        program = _program(env, text)
    except Exception as exc:  # celpy raises its parser's errors
        causes.append(field_error(f"{rpath}.rule", f'Invalid value: "{text}": compilation failed: {_syntax(exc)}'))
        return None
    undefined = undefined_field(text, schema)
    if undefined:
        causes.append(field_error(f"{rpath}.rule", f'Invalid value: "{text}": compilation failed: '
                                                   f"ERROR: <input>: undefined field '{undefined}'"))
        return None
    message_program = None
    if raw.get("messageExpression"):
        try:
            message_program = _program(env, raw["messageExpression"])
        except Exception as exc:
            detail = " ".join(str(exc).split())
            causes.append(field_error(f"{rpath}.messageExpression",
                                      f'Invalid value: "{raw["messageExpression"]}": messageExpression compilation failed: {detail}'))
    cost = estimate_cost(text, schema)
    if cost > COST_LIMIT:
        causes.append(field_error(
            f"{rpath}.rule",
            f"Forbidden: estimated rule cost exceeds budget by factor of {cost / COST_LIMIT:.4g}x (try "
            "simplifying the rule, or adding maxItems, maxProperties, and maxLength where arrays, maps, "
            "and strings are declared)", reason="FieldValueForbidden"))
    return _Rule(text, program, str(raw.get("message") or ""), message_program,
                 _field_path(fpath), reason, re.search(r"\boldSelf\b", text) is not None)


def _program(env: Any, text: str) -> Any:
    """Transpiled when celpy can (much faster); interpreted for what its transpiler does not
    take (the Kubernetes library functions added here, such as ``lowerAscii``)."""
    ast = env.compile(text)
    try:
        return env.program(ast, functions=_functions())
    except Exception:
        import celpy

        interpreted = celpy.Environment()
        return interpreted.program(interpreted.compile(text), functions=_functions())


def _syntax(exc: Exception) -> str:
    line, column = getattr(exc, "line", None), getattr(exc, "column", None)
    where = f"<input>:{line}:{column}" if line is not None else "<input>"
    snippet = " | ".join(x for x in str(exc.args[0] if exc.args else exc).splitlines() if x.strip())
    return f"ERROR: {where}: Syntax error: | {snippet}"


def _field_path(fpath: str) -> str:
    """``.spec['a.b'][0]`` → ``spec.a.b[0]`` (the suffix of the error's field path)."""
    out = re.sub(r"\['([^']*)'\]", r".\1", fpath)
    return out.lstrip(".")


# ------------------------------------------------------------------ evaluate


def _eval(node: _Node, value: Any, old: Any, path: str, out: Causes, *, has_old: bool,
          transition_only: bool = False, ratchet: bool = False) -> None:
    if value is None or (transition_only and not has_old):
        return
    if ratchet and has_old and value == old:
        return  # unchanged: its rules (and everything below) ratchet
    import celpy

    rules = [r for r in node.rules if r.transition == transition_only]
    if rules:
        activation: dict[str, Any] = {"self": celpy.json_to_cel(value)}
        if transition_only:
            activation["oldSelf"] = celpy.json_to_cel(old)
        for rule in rules:
            _run(rule, activation, value, path, out)
    kw = {"transition_only": transition_only, "ratchet": ratchet}
    if isinstance(value, dict):
        old_map = old if isinstance(old, dict) else {}
        for key, child in node.props.items():
            if key in value:
                _eval(child, value[key], old_map.get(key), child_path(path, key), out,
                      has_old=has_old and key in old_map, **kw)
        if node.extra is not None:
            for key, v in value.items():
                if key not in node.props:
                    _eval(node.extra, v, old_map.get(key), child_path(path, key), out,
                          has_old=has_old and key in old_map, **kw)
    elif isinstance(value, list) and node.items is not None:
        olds: dict[tuple, Any] = {}
        if node.map_keys and isinstance(old, list):
            olds = {tuple(o.get(k) for k in node.map_keys): o for o in old if isinstance(o, dict)}
        for i, item in enumerate(value):
            prev = None
            if node.map_keys and isinstance(item, dict):
                prev = olds.get(tuple(item.get(k) for k in node.map_keys))
            _eval(node.items, item, prev, f"{path}[{i}]", out, has_old=prev is not None, **kw)


def _run(rule: _Rule, activation: dict[str, Any], value: Any, path: str, out: Causes) -> None:
    from celpy import celtypes

    target = child_path(path, rule.field_path) if rule.field_path else path
    try:
        result = rule.program.evaluate(activation)
    except Exception:
        out.append(field_error(target, f'Invalid value: "{type_name(value)}": {rule.explain(activation)} '
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


def _err_text(exc: Exception) -> str:
    args = getattr(exc, "args", ())
    if args and isinstance(args[0], str):
        text = args[0]
        m = re.match(r"no such member in mapping: '([^']*)'", text)
        if m:
            return f"no such key: {m.group(1)}"
        return text
    return str(exc)
