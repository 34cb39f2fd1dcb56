"""Compiling the ``x-kubernetes-validations`` of a CRD schema, as apiextensions-apiserver does
before it stores a CRD: each rule is parsed (cel-python), type-checked against the CEL type of
its schema node and cost-estimated (``cel_check``). A rule's cost counts as often as the rule
may run (the sizes of the lists and maps above it) against the per-rule budget, and all rules
of one schema together against the per-CRD budget; errors name the rule's field path with
Kubernetes' wording.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from typing import Any

from vkube.api.cel_ast import NAMESPACED, Node, desugar, desugar_map, to_ast
from vkube.api.cel_check import check_ast, format_issues
from vkube.api.cel_rewrite import needs_rewrite, rewrite, to_text
from vkube.api.cel_library import functions
from vkube.api.cel_types import CelType, decl_type, primitive
from vkube.api.errors import field_error, go_value

Schema = dict[str, Any]
Causes = list[dict[str, str]]

__all__ = ["Rule", "RuleNode", "compile_schema", "fields_read", "err_text", "COST_LIMIT", "CRD_COST_LIMIT"]

#: Kubernetes' StaticEstimatedCostLimit (one rule, times how often it may run) and
#: StaticEstimatedCRDCostLimit (all rules of one schema together).
COST_LIMIT = 10_000_000
CRD_COST_LIMIT = 100_000_000
_REASONS = ("FieldValueDuplicate", "FieldValueForbidden", "FieldValueInvalid", "FieldValueRequired")
_BUDGET_HINT = ("(try simplifying the rule, or adding maxItems, maxProperties, and maxLength where arrays, "
                "maps, and strings are declared)")


@dataclass(slots=True)
class Rule:
    rule: str
    program: Any  # transpiled when celpy can; interpreted for the library functions
    message: str
    message_program: Any
    field_path: str
    reason: str
    transition: bool
    optional_old: bool  # optionalOldSelf: runs without an old value too, oldSelf an optional
    ast: Node
    self_type: CelType
    cost: int  # estimated maximum cost of one evaluation
    #: the fields of ``self`` / ``oldSelf`` the rule reads, when it reads only fields (None: all
    #: of it) — only those are converted for CEL
    self_fields: frozenset[str] | None = None
    old_fields: frozenset[str] | None = None

    def interpret(self, activation: dict[str, Any]) -> Any:
        """The rule's result from cel-python's interpreter (raises the interpreter's error,
        which names the cause where the transpiled runner only says "evaluation error")."""
        import celpy

        env = celpy.Environment()
        source = to_text(rewrite(self.ast)) if needs_rewrite(self.ast) else desugar(self.rule)
        return env.program(env.compile(source), functions=functions()).evaluate(activation)


@dataclass(slots=True)
class RuleNode:
    """Rules at one schema node and the nodes below that carry rules."""

    rules: list[Rule] = field(default_factory=list)
    props: dict[str, "RuleNode"] = field(default_factory=dict)
    extra: "RuleNode | None" = None
    items: "RuleNode | None" = None
    map_keys: tuple[str, ...] = ()
    type: CelType | None = None  # the CEL type of values here (for conversion to CEL)
    optional_below: bool = False  # an optionalOldSelf rule here or below


@dataclass(slots=True)
class _Context:
    env: Any
    causes: Causes
    total: int = 0
    expensive: list[tuple[int, str]] = field(default_factory=list)

    def observe(self, path: str, cost: int) -> None:
        self.total += cost
        self.expensive = sorted([*self.expensive, (cost, path)], key=lambda e: -e[0])[:4]


def compile_schema(schema: Schema, path: str) -> tuple[RuleNode | None, Causes]:
    """The rule tree of ``schema`` (the root of a custom resource) and the causes that refuse
    it; ``path`` is the schema's field path in the CRD."""
    import celpy

    ctx = _Context(celpy.Environment(runner_class=celpy.CompiledRunner), [])
    root = _compile(schema, path, ctx, cardinality=1, root=True)
    if ctx.total > CRD_COST_LIMIT:
        for _, where in ctx.expensive:
            ctx.causes.append(field_error(where, "Forbidden: contributed to estimated rule cost total exceeding "
                                                 "cost limit for entire OpenAPIv3 schema", reason="FieldValueForbidden"))
        ctx.causes.append(field_error(path, "Forbidden: " + cost_message(
            "x-kubernetes-validations estimated rule cost total for entire OpenAPIv3 schema", ctx.total, CRD_COST_LIMIT),
            reason="FieldValueForbidden"))
    return root, ctx.causes


def cost_message(what: str, cost: int, limit: int) -> str:
    factor = cost / limit
    if factor > 100:
        text = "more than 100x"
    elif factor < 1.5:
        text = f"{factor:f}x"
    else:
        text = f"{factor:.1f}x"
    return f"{what} exceeds budget by factor of {text} {_BUDGET_HINT}"


def _compile(schema: Schema, path: str, ctx: _Context, *, cardinality: int, root: bool = False) -> RuleNode | None:
    node = RuleNode()
    rules = schema.get("x-kubernetes-validations") or ()
    if rules or root:
        node.type = decl_type(schema, root=root or bool(schema.get("x-kubernetes-embedded-resource")))
    for i, raw in enumerate(rules):
        rule = _compile_one(raw, f"{path}.x-kubernetes-validations[{i}]", node.type, ctx, cardinality)
        if rule is not None:
            node.rules.append(rule)
    for key, sub in (schema.get("properties") or {}).items():
        if isinstance(sub, dict):
            child = _compile(sub, f"{path}.properties[{key}]", ctx, cardinality=cardinality)
            if child is not None:
                node.props[key] = child
    extra, items = schema.get("additionalProperties"), schema.get("items")
    if isinstance(extra, dict) or isinstance(items, dict):
        own = decl_type(schema)
        times = min(cardinality * (own.max_elements if own is not None else 1), 2**64 - 1)
        if isinstance(extra, dict):
            node.extra = _compile(extra, f"{path}.additionalProperties", ctx, cardinality=times)
        if isinstance(items, dict):
            node.items = _compile(items, f"{path}.items", ctx, cardinality=times)
            if schema.get("x-kubernetes-list-type") == "map":
                node.map_keys = tuple(schema.get("x-kubernetes-list-map-keys") or ())
    if not node.rules and not node.props and node.extra is None and node.items is None:
        return None
    children = [*node.props.values(), node.extra, node.items]
    node.optional_below = any(r.optional_old for r in node.rules) or any(c is not None and c.optional_below
                                                                         for c in children)
    return node


def _compile_one(raw: Any, rpath: str, self_type: CelType | None, ctx: _Context, cardinality: int) -> Rule | None:
    causes = ctx.causes
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
    optional_old = raw.get("optionalOldSelf")
    if optional_old is not None and not isinstance(optional_old, bool):
        causes.append(field_error(f"{rpath}.optionalOldSelf", f"Invalid value: {go_value(optional_old)}: must be a boolean"))
        optional_old = None
    self_t = self_type or primitive("dyn")
    env_types = {"self": self_t, "oldSelf": CelType("optional", elem=self_t) if optional_old else self_t}
    compiled = _compile_expression(text, ctx.env, env_types)
    if isinstance(compiled, str):
        causes.append(field_error(f"{rpath}.rule", f'Invalid value: "{text}": {compiled}'))
        return None
    program, ast, result, cost = compiled
    if result.kind not in ("bool", "dyn"):
        causes.append(field_error(f"{rpath}.rule", f'Invalid value: "{text}": cel expression must evaluate to a bool'))
        return None
    total = min(cost * cardinality, 2**64 - 1)
    if total > COST_LIMIT:
        causes.append(field_error(f"{rpath}.rule", "Forbidden: " + cost_message("estimated rule cost", total, COST_LIMIT),
                                  reason="FieldValueForbidden"))
    ctx.observe(f"{rpath}.rule", total)
    message_program = None
    if raw.get("messageExpression"):
        expr = raw["messageExpression"]
        compiled = _compile_expression(expr, ctx.env, env_types)
        if isinstance(compiled, str):
            causes.append(field_error(f"{rpath}.messageExpression",
                                      f'Invalid value: "{expr}": messageExpression {compiled}'))
        elif compiled[2].kind not in ("string", "dyn"):
            causes.append(field_error(f"{rpath}.messageExpression",
                                      f'Invalid value: "{expr}": must evaluate to a string'))
        else:
            message_program = compiled[0]
            message_cost = min(compiled[3] * cardinality, 2**64 - 1)
            if message_cost > COST_LIMIT:
                causes.append(field_error(f"{rpath}.messageExpression", "Forbidden: " + cost_message(
                    "estimated messageExpression cost", message_cost, COST_LIMIT), reason="FieldValueForbidden"))
            ctx.observe(f"{rpath}.messageExpression", message_cost)
    uses_old = "oldSelf" in _idents(ast)
    if optional_old and not uses_old:
        causes.append(field_error(f"{rpath}.optionalOldSelf",
                                  "Invalid value: true: may not be set if oldSelf is not used in rule"))
    self_fields, old_fields = fields_read(ast, "self"), fields_read(ast, "oldSelf")
    if message_program is not None:  # the message expression sees the same activation
        self_fields = _union(self_fields, fields_read(compiled[1], "self"))
        old_fields = _union(old_fields, fields_read(compiled[1], "oldSelf"))
    return Rule(text, program, str(raw.get("message") or ""), message_program, _field_path(fpath), reason,
                uses_old, bool(optional_old) and uses_old, ast, self_t, cost,
                self_fields if self_t.kind == "object" else None, old_fields if self_t.kind == "object" else None)


def _union(a: frozenset[str] | None, b: frozenset[str] | None) -> frozenset[str] | None:
    return None if a is None or b is None else a | b


def fields_read(node: Node, var: str) -> frozenset[str] | None:
    """The fields of ``var`` that ``node`` selects, or None when it uses ``var`` otherwise
    (whole, compared, iterated, sized)."""
    found: set[str] = set()

    def walk(n: Node) -> bool:
        target = n.target
        if target is not None and target.op == "ident" and target.name == var:
            if n.op in ("select", "has"):
                found.add(n.name)
                return all(walk(a) for a in n.args)
            if n.op == "call" and n.name == "_optSelect_" and n.args and n.args[0].op == "lit":
                found.add(str(n.args[0].value))
                return True
        if n.op == "ident" and n.name == var:
            return False
        if n.op == "comp" and var in (n.var, n.value):
            return walk(n.target) if n.target is not None else True
        return all(walk(c) for c in ([n.target] if n.target is not None else []) + n.args)

    return frozenset(found) if walk(node) else None


def _compile_expression(text: str, env: Any, env_types: dict[str, CelType]) -> tuple[Any, Node, CelType, int] | str:
    """(program, ast, result type, cost), or the ``compilation failed: …`` text."""
    source, origin = desugar_map(text)
    try:
        tree = env.compile(source)
    except Exception as exc:  # celpy raises its parser's errors
        return f"compilation failed: {_syntax(exc)}"
    try:
        ast = to_ast(tree, source)
        checked = check_ast(ast, env_types)
    except (ValueError, TypeError, RecursionError) as exc:  # syntax the checker does not know: refuse, never a 500
        return f"compilation failed: ERROR: <input>: {exc}"
    if checked.type is None:
        issues = [(origin(pos), message) for pos, message in checked.issues]
        return f"compilation failed: {format_issues(text, issues)}"
    if needs_rewrite(ast):  # comprehensions cel-python lacks: run the equivalent it has
        rewritten = rewrite(ast)
        return _program(env, None, to_text(rewritten), True), ast, checked.type, checked.cost
    return _program(env, tree, source, _uses_library(ast)), ast, checked.type, checked.cost


def _idents(node: Node) -> set[str]:
    out = {node.name} if node.op == "ident" else set()
    for child in ([node.target] if node.target is not None else []) + node.args:
        out |= _idents(child)
    return out


def _uses_library(node: Node) -> bool:
    if node.op == "call" and (node.name in _library_names() or node.name.startswith("_opt")):
        return True
    return any(_uses_library(c) for c in ([node.target] if node.target is not None else []) + node.args)


@functools.lru_cache(maxsize=1)
def _library_names() -> frozenset[str]:
    return frozenset(NAMESPACED.get(n, n) for n in functions()) | frozenset(NAMESPACED)


def _program(env: Any, tree: Any, source: str, library: bool) -> Any:
    """Transpiled when celpy can (about 4x faster); interpreted for rules that call the
    Kubernetes library functions, which celpy's transpiler cannot reference."""
    import celpy

    if not library:
        try:
            return env.program(tree, functions={})
        except Exception:  # noqa: BLE001 - what the transpiler does not take, the interpreter does
            pass
    interpreted = celpy.Environment()
    return interpreted.program(interpreted.compile(source), functions=functions())


def _syntax(exc: Exception) -> str:
    line, column = getattr(exc, "line", None), getattr(exc, "column", None)
    where = f"<input>:{line}:{column}" if line is not None else "<input>"
    snippet = " | ".join(x for x in str(exc.args[0] if exc.args else exc).splitlines() if x.strip())
    return f"ERROR: {where}: Syntax error: | {snippet}"


def _field_path(fpath: str) -> str:
    """``.spec['a.b'][0]`` → ``spec.a.b[0]`` (the suffix of the error's field path)."""
    out = re.sub(r"\['([^']*)'\]", r".\1", fpath)
    return out.lstrip(".")


def err_text(exc: Exception) -> str:
    """A celpy evaluation error as Kubernetes words it (``no such key: x``)."""
    args = getattr(exc, "args", ())
    if args and isinstance(args[0], str):
        text = args[0]
        m = re.match(r"no such member in mapping: '([^']*)'", text)
        if m:
            return f"no such key: {m.group(1)}"
        return text
    return str(exc)
