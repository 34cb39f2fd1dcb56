"""A type checker and cost estimator for CEL validation rules, after cel-go's checker and
``checker/cost.go`` with Kubernetes' library costs (k8s.io/apiserver/pkg/cel/library/cost.go).
cel-python parses and evaluates but has neither.

``check(text, self_type)`` types a rule against the CEL type of its schema node (``cel_types``):
it reports what CEL's checker reports — ``undefined field 'x'``, ``undeclared reference to
'f'``, ``found no matching overload for '_+_' applied to '(int, string)'`` — with the
``<input>:line:column`` and the caret snippet, and the rule's estimated worst-case cost, which
grows with the ``maxLength``/``maxItems``/``maxProperties`` the schema declares (or as many
elements as fit in a request where it declares none).
"""

from __future__ import annotations

import datetime
import math
import re
from dataclasses import dataclass, field
from typing import Callable

from vkube.api.cel_ast import OPT_INDEX, OPT_SELECT, Node
from vkube.api.cel_signatures import SIGNATURES
from vkube.api.cel_types import CelType, primitive, type_name

__all__ = ["Checked", "check_ast", "format_issues"]

_UNBOUNDED = 2**64 - 1
_TRAVERSAL, _REGEX = 0.1, 0.25  # StringTraversalCostFactor, RegexStringLengthCostFactor
_DYN = primitive("dyn")
_BOOL, _STRING = primitive("bool"), primitive("string")
_NUMERIC = ("int", "uint", "double")
_SCALARS = ("int", "uint", "double", "bool", "timestamp", "duration")
_ORDERED = ("int", "uint", "double", "string", "bytes", "bool", "timestamp", "duration")
_DURATION = re.compile(r"[-+]?(0|((\d+(\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h))+)")
_TYPE_IDENTS = {"int", "uint", "double", "bool", "string", "bytes", "list", "map", "null_type", "type", "dyn"}


def _factor(x: int, f: float) -> int:
    return _UNBOUNDED if x >= _UNBOUNDED else int(math.ceil(x * f))


def _add(*xs: int) -> int:
    return min(sum(xs), _UNBOUNDED)


def _mul(a: int, b: int) -> int:
    return min(a * b, _UNBOUNDED)


@dataclass(slots=True)
class Checked:
    """A rule's result type (None when it did not check), its errors as (offset, message),
    and its estimated maximum cost."""

    type: CelType | None
    issues: list[tuple[int, str]] = field(default_factory=list)
    cost: int = 0


def _fits(t: CelType, kind: str) -> bool:
    return kind == "A" or t.kind == "dyn" or t.kind == kind


def _signature(name: str, target: CelType | None, args: list[CelType]) -> str:
    inner = ", ".join(type_name(a) for a in args)
    return f"{type_name(target)}.({inner})" if target is not None else f"({inner})"


# ------------------------------------------------------------------ the checker


class _Checker:
    def __init__(self, env: dict[str, CelType]) -> None:
        self.scopes: list[dict[str, CelType]] = [env]
        self.issues: list[tuple[int, str]] = []
        self.exempt = False  # inside format(): heterogeneous list literals allowed

    def error(self, pos: int, message: str) -> tuple[CelType, int]:
        self.issues.append((pos, message))
        return _DYN, 0

    def lookup(self, name: str) -> CelType | None:
        for scope in reversed(self.scopes):
            if name in scope:
                return scope[name]
        return None

    def visit(self, n: Node) -> tuple[CelType, int]:  # noqa: C901 - one case per node kind
        """(type, estimated maximum cost) of ``n``."""
        if n.op == "lit":
            if n.kind in ("string", "bytes"):
                return primitive(n.kind).with_max(len(n.value)), 0
            return primitive(n.kind), 0
        if n.op == "ident":
            t = self.lookup(n.name)
            if t is None:
                if n.name in _TYPE_IDENTS:
                    return primitive("type"), 1
                return self.error(n.pos, f"undeclared reference to '{n.name}' (in container '')")
            return t, 1
        if n.op in ("select", "has"):
            assert n.target is not None
            operand, cost = self.visit(n.target)
            t = self.select(n, operand)
            if n.op == "has":
                # a presence test costs nothing (PresenceTestHasCost(false)), nor does naming
                # the variable it tests a field of — as Kubernetes' estimates come out
                return _BOOL, cost - 1 if n.target.op == "ident" else cost
            return t, cost + (1 if operand.kind in ("object", "map") else 0)
        if n.op == "list":
            items = [self.visit(a) for a in n.args]
            self.homogeneous(n.args, [t for t, _ in items])
            elem = _join([t for t, _ in items])
            return CelType("list", elem=elem, max_elements=len(items)), _add(10, *(c for _, c in items))
        if n.op == "map":
            entries = [self.visit(a) for a in n.args]
            keys, values = entries[0::2], entries[1::2]
            self.homogeneous(n.args[0::2], [k for k, _ in keys])
            self.homogeneous(n.args[1::2], [v for v, _ in values])
            t = CelType("map", key=_join([k for k, _ in keys]), elem=_join([v for v, _ in values]),
                        max_elements=len(values))
            return t, _add(30, *(c for _, c in entries))
        if n.op == "comp":
            return self.comprehension(n)
        return self.call(n)

    def homogeneous(self, nodes: list[Node], types: list[CelType]) -> None:
        """cel.ValidateHomogeneousAggregateLiterals: a list or map literal holds one type
        (``format``'s argument list excepted)."""
        if self.exempt or len(types) < 2:
            return
        first = types[0]
        for node, t in zip(nodes[1:], types[1:]):
            if type_name(t) != type_name(first):
                self.issues.append((node.pos, f"expected type '{type_name(first)}' but found '{type_name(t)}'"))
                return

    def literal_argument(self, n: Node, arg: Node) -> None:
        """cel.ValidateRegexLiterals / DurationLiterals / TimestampLiterals: a literal argument
        must be valid where the call is written, not only when it runs."""
        if arg.op != "lit" or arg.kind != "string":
            return
        name = n.name
        if name in ("matches", "find", "findAll"):
            try:
                re.compile(arg.value)
            except re.error:
                self.issues.append((arg.pos, f"invalid {name} argument"))
        elif name == "duration" and not _DURATION.fullmatch(arg.value):
            self.issues.append((arg.pos, "invalid duration argument"))
        elif name == "timestamp":
            try:
                datetime.datetime.fromisoformat(arg.value.replace("Z", "+00:00").replace("z", "+00:00"))
                ok = "T" in arg.value.upper()
            except ValueError:
                ok = False
            if not ok:
                self.issues.append((arg.pos, "invalid timestamp argument"))

    def select(self, n: Node, operand: CelType) -> CelType:
        if operand.kind == "object":
            if n.name not in operand.fields:
                return self.error(n.pos, f"undefined field '{n.name}'")[0]
            return operand.fields[n.name]
        if operand.kind == "map":
            # no schema size for a selected map value: scalars count 1, the rest unbounded
            value = operand.elem or _DYN
            return value.with_max(1 if value.kind in _SCALARS else _UNBOUNDED)
        if operand.kind == "dyn":
            return _DYN
        if operand.kind == "optional" and operand.elem is not None:  # optional chaining: a.?b.c
            return CelType("optional", elem=self.select(n, operand.elem))
        return self.error(n.pos, f"type '{type_name(operand)}' does not support field selection")[0]

    def comprehension(self, n: Node) -> tuple[CelType, int]:
        assert n.target is not None
        rng, range_cost = self.visit(n.target)
        n.kind = rng.kind  # two-variable comprehensions are rewritten by the kind of their range
        value = rng.elem or _DYN
        if rng.kind == "list":
            var = primitive("int") if n.value else value
        elif rng.kind == "map":
            var = rng.key or _STRING
        elif rng.kind == "dyn" and not n.value:
            var = _DYN
        else:
            what = "a list or a map" if n.value else "list, map, or dynamic"
            self.error(n.pos, f"expression of type '{type_name(rng)}' cannot be range of a comprehension "
                              f"(must be {what})")
            var = _DYN
        scope = {n.var: var}
        if n.value:
            scope[n.value] = value if rng.kind in ("list", "map") else _DYN
        self.scopes.append(scope)
        try:
            body = [self.visit(a) for a in n.args]
        finally:
            self.scopes.pop()
        for (t, _), a in zip(body, n.args):
            if n.name not in ("map", "transformList") or a is not n.args[-1]:
                if t.kind not in ("bool", "dyn"):
                    self.error(a.pos, f"found no matching overload for '_&&_' applied to '(bool, {type_name(t)})'")
        count = rng.max_elements
        per = _add(*(c for _, c in body))
        if n.name == "all":
            t, init, step, result = _BOOL, 0, 3 + per, 1
        elif n.name == "exists":
            t, init, step, result = _BOOL, 0, 4 + per, 1
        elif n.name in ("exists_one", "existsOne"):
            t, init, step, result = _BOOL, 0, 2 + per, 2
        elif n.name == "filter":
            t, init, step, result = CelType("list", elem=var, max_elements=count), 10, 13 + per, 1
        else:  # map(x, e) / map(x, p, e) / transformList(i, v, [p,] e): __result__ + [e]
            t, init, step, result = CelType("list", elem=body[-1][0], max_elements=count), 10, 12 + per, 1
        return t, _add(range_cost, init, result, _mul(count, step))

    def call(self, n: Node) -> tuple[CelType, int]:
        target, target_cost = (self.visit(n.target) if n.target is not None else (None, 0))
        if n.name in (OPT_SELECT, OPT_INDEX) and target is not None:
            return self.optional_access(n, target, target_cost)
        if n.args and n.name in ("matches", "find", "findAll", "duration", "timestamp"):
            self.literal_argument(n, n.args[-1] if n.name == "matches" and n.target is None else n.args[0])
        exempt, self.exempt = self.exempt, self.exempt or n.name == "format"
        try:
            visited = [self.visit(a) for a in n.args]
        finally:
            self.exempt = exempt
        args = [t for t, _ in visited]
        arg_cost = _add(target_cost, *(c for _, c in visited))
        op = _OPERATORS.get(n.name)
        if op is not None and target is None:
            result = op(self, n, args)
            return result, _add(arg_cost, self.operator_cost(n.name, args, [c for _, c in visited]))
        sigs = SIGNATURES.get(n.name)
        if sigs is None:
            return self.error(n.pos, f"undeclared reference to '{n.name}' (in container '')")
        for recv, kinds, result in sigs:
            if (recv is None) != (target is None) or len(kinds) != len(args):
                continue
            if target is not None and recv is not None and not _fits(target, recv):
                continue
            if all(_fits(a, k) for a, k in zip(args, kinds)):
                t = result(target, args)
                return t, _add(arg_cost, _call_cost(n.name, target, args, n.args))
        if not any((s[0] is None) == (target is None) for s in sigs):
            return self.error(n.pos, f"undeclared reference to '{n.name}' (in container '')")
        return self.error(n.pos, f"found no matching overload for '{n.name}' applied to "
                                 f"'{_signature(n.name, target, args)}'")

    def optional_access(self, n: Node, target: CelType, cost: int) -> tuple[CelType, int]:
        inner = target.elem if target.kind == "optional" and target.elem is not None else target
        if n.name == OPT_SELECT:
            field_name = n.args[0].value if n.args and n.args[0].op == "lit" else ""
            t = self.select(Node("select", n.pos, name=str(field_name)), inner)
            return CelType("optional", elem=t.elem if t.kind == "optional" and t.elem else t), cost + 1
        index, index_cost = self.visit(n.args[0])
        if inner.kind == "list":
            value = inner.elem or _DYN
        elif inner.kind == "map":
            value = inner.elem or _DYN
        elif inner.kind == "dyn":
            value = _DYN
        else:
            return self.error(n.pos, f"found no matching overload for '_[?_]' applied to "
                                     f"'({type_name(inner)}, {type_name(index)})'")
        return CelType("optional", elem=value), _add(cost, index_cost, 1)

    def operator_cost(self, name: str, args: list[CelType], costs: list[int]) -> int:
        """The cost of the operator itself (its operands' costs are added by the caller)."""
        if name in ("_&&_", "_||_"):
            return 0
        if name == "_?_:_":
            return -min(costs[1], costs[2])  # only one branch runs: the caller added both
        if name in ("_==_", "_!=_") or name in ("_<_", "_<=_", "_>_", "_>=_") and args[0].kind in ("string", "bytes"):
            smallest = min(_size(args[0]), _size(args[1]))
            return _factor(smallest, _TRAVERSAL)
        if name == "@in":
            return _size(args[1]) if args[1].kind in ("list", "dyn") else 1
        if name == "_+_" and args[0].kind in ("string", "bytes"):
            return _factor(_add(_size(args[0]), _size(args[1])), _TRAVERSAL)
        return 1


def _size(t: CelType) -> int:
    return t.max_elements


def _join(types: list[CelType]) -> CelType:
    if not types:
        return _DYN
    first = types[0]
    if all(t.kind == first.kind for t in types):
        return CelType(first.kind, first.elem, first.key, first.fields, max(t.max_elements for t in types))
    return _DYN


def _call_cost(name: str, target: CelType | None, args: list[CelType], nodes: list[Node]) -> int:
    """The cost of one library call, as cel-go and Kubernetes' CostEstimator estimate it."""
    recv = _size(target) if target is not None else 0
    if name in ("contains",):
        return _mul(_factor(recv, _TRAVERSAL), _factor(_size(args[0]), _TRAVERSAL))
    if name in ("startsWith", "endsWith"):
        return _factor(_size(args[0]), _TRAVERSAL)
    if name == "matches":
        text, pattern = (target, args[0]) if target is not None else (args[0], args[1])
        return _mul(_factor(_size(text) + 1, _TRAVERSAL), _factor(_size(pattern), _REGEX))
    if name in ("find", "findAll") and target is not None:
        return _mul(_factor(recv + 1, _TRAVERSAL), _factor(_size(args[0]), _REGEX))
    if name in ("slice", "flatten", "distinct", "reverse") and target is not None and target.kind == "list":
        return _mul(recv, recv) if name == "distinct" else recv  # distinct compares each pair
    if name == "sort" and target is not None:
        return _mul(recv, max(1, int(math.ceil(math.log2(recv + 1)))))
    if name == "lists.range":
        return 1 if nodes and nodes[0].op == "lit" and int(nodes[0].value) <= 1 else \
            (int(nodes[0].value) if nodes and nodes[0].op == "lit" else _UNBOUNDED)
    if name in ("isSorted", "sum", "max", "min", "indexOf", "lastIndexOf", "includes") and target is not None:
        if target.kind == "list":
            elem = target.elem or _DYN
            per = 1 + (_factor(_size(elem), _TRAVERSAL) if elem.kind in ("string", "bytes") else 0)
            return _mul(recv, per)
        return _factor(recv, _TRAVERSAL)
    if name in ("lowerAscii", "upperAscii", "substring", "trim", "reverse", "charAt", "format"):
        return _factor(recv, _TRAVERSAL)
    if name in ("replace", "split"):
        return _factor(recv, 2 * _TRAVERSAL)
    if name == "join" and target is not None:
        elem = target.elem or _DYN
        total = _mul(recv, _size(elem))
        if args:
            total = _add(total, _mul(_size(args[0]), max(recv - 1, 0)))
        return _factor(total, _TRAVERSAL)
    if name in ("url", "cidr", "isIP", "isCIDR", "quantity", "isQuantity", "isURL", "strings.quote", "semver",
                "isSemver") or \
            name == "ip" and target is None:
        return _factor(_size(args[0]), _TRAVERSAL) if args else 1
    if name == "ip.isCanonical":
        return _factor(_size(args[0]), 2 * _TRAVERSAL)
    if name == "validate" and args:
        return _factor(_factor(_size(args[0]), _TRAVERSAL), 128 * _REGEX)  # MaxNameFormatRegexSize
    if name in ("containsIP", "containsCIDR"):
        cost = _factor(32, _TRAVERSAL) + (_factor(16, _TRAVERSAL) + 1 if name == "containsCIDR" else 0)
        return cost + (_factor(_size(args[0]), _TRAVERSAL) if args and args[0].kind == "string" else 0)
    if name in ("sets.contains", "sets.equivalent", "sets.intersects"):
        return _mul(_size(args[0]), _size(args[1]))
    if name == "string" and args and args[0].kind in ("bytes",) or name == "bytes" and args and args[0].kind == "string":
        return _factor(_size(args[0]), _TRAVERSAL)
    return 1


# ------------------------------------------------------------------ operators


def _arith(c: _Checker, n: Node, args: list[CelType]) -> CelType:
    a, b = args
    if a.kind == "dyn" or b.kind == "dyn":
        return a if b.kind == "dyn" else b
    name = n.name
    if a.kind == b.kind and a.kind in _NUMERIC:
        return primitive(a.kind)
    if name == "_+_":
        if a.kind == b.kind and a.kind in ("string", "bytes"):
            return CelType(a.kind, max_elements=_add(a.max_elements, b.max_elements))
        if a.kind == b.kind == "list":
            return CelType("list", elem=_join([x for x in (a.elem, b.elem) if x is not None]),
                           max_elements=_add(a.max_elements, b.max_elements))
        if {a.kind, b.kind} == {"timestamp", "duration"}:
            return primitive("timestamp")
        if a.kind == b.kind == "duration":
            return a
    if name == "_-_":
        if a.kind == b.kind == "timestamp":
            return primitive("duration")
        if a.kind == "timestamp" and b.kind == "duration" or a.kind == b.kind == "duration":
            return a
    return c.error(n.pos, f"found no matching overload for '{name}' applied to "
                          f"'({type_name(a)}, {type_name(b)})'")[0]


def _compare(c: _Checker, n: Node, args: list[CelType]) -> CelType:
    a, b = args
    if "dyn" in (a.kind, b.kind) or a.kind == b.kind and a.kind in _ORDERED \
            or a.kind in _NUMERIC and b.kind in _NUMERIC:
        return _BOOL
    return c.error(n.pos, f"found no matching overload for '{n.name}' applied to "
                          f"'({type_name(a)}, {type_name(b)})'")[0]


def _equals(c: _Checker, n: Node, args: list[CelType]) -> CelType:
    a, b = args
    if "dyn" in (a.kind, b.kind) or a.kind == b.kind or "optional" in (a.kind, b.kind) and "null_type" in (a.kind, b.kind) \
            or "null_type" in (a.kind, b.kind) and {a.kind, b.kind} & {"object", "map", "list", "type"}:
        return _BOOL
    return c.error(n.pos, f"found no matching overload for '{n.name}' applied to "
                          f"'({type_name(a)}, {type_name(b)})'")[0]


def _logic(c: _Checker, n: Node, args: list[CelType]) -> CelType:
    for a in args:
        if a.kind not in ("bool", "dyn"):
            return c.error(n.pos, f"found no matching overload for '{n.name}' applied to "
                                  f"'({', '.join(type_name(x) for x in args)})'")[0]
    return _BOOL


def _not(c: _Checker, n: Node, args: list[CelType]) -> CelType:
    return _logic(c, n, args)


def _negate(c: _Checker, n: Node, args: list[CelType]) -> CelType:
    if args[0].kind in ("int", "double", "duration", "dyn"):
        return args[0]
    return c.error(n.pos, f"found no matching overload for '-_' applied to '({type_name(args[0])})'")[0]


def _conditional(c: _Checker, n: Node, args: list[CelType]) -> CelType:
    cond, a, b = args
    if cond.kind not in ("bool", "dyn"):
        return c.error(n.pos, f"found no matching overload for '_?_:_' applied to "
                              f"'({type_name(cond)}, {type_name(a)}, {type_name(b)})'")[0]
    if a.kind == b.kind:
        return CelType(a.kind, a.elem, a.key, a.fields, max(a.max_elements, b.max_elements), a.min_size)
    if "dyn" in (a.kind, b.kind) or "null_type" in (a.kind, b.kind):
        return b if a.kind in ("dyn", "null_type") else a
    return c.error(n.pos, f"found no matching overload for '_?_:_' applied to "
                          f"'({type_name(cond)}, {type_name(a)}, {type_name(b)})'")[0]


def _index(c: _Checker, n: Node, args: list[CelType]) -> CelType:
    a, i = args
    if a.kind == "list" and i.kind in ("int", "uint", "dyn"):
        return a.elem or _DYN
    if a.kind == "map":
        return a.elem or _DYN
    if a.kind == "dyn":
        return _DYN
    return c.error(n.pos, f"found no matching overload for '_[_]' applied to '({type_name(a)}, {type_name(i)})'")[0]


def _in(c: _Checker, n: Node, args: list[CelType]) -> CelType:
    if args[1].kind in ("list", "map", "dyn"):
        return _BOOL
    return c.error(n.pos, f"found no matching overload for '@in' applied to "
                          f"'({type_name(args[0])}, {type_name(args[1])})'")[0]


_OPERATORS: dict[str, Callable[[_Checker, Node, list[CelType]], CelType]] = {
    "_+_": _arith, "_-_": _arith, "_*_": _arith, "_/_": _arith, "_%_": _arith,
    "_<_": _compare, "_<=_": _compare, "_>_": _compare, "_>=_": _compare,
    "_==_": _equals, "_!=_": _equals, "_&&_": _logic, "_||_": _logic, "!_": _not, "-_": _negate,
    "_?_:_": _conditional, "_[_]": _index, "@in": _in,
    "@struct": lambda c, n, a: c.error(n.pos, "object construction is not supported in validation rules")[0],
}


def check_ast(ast: Node, env: dict[str, CelType]) -> Checked:
    """Type and cost of ``ast`` with the variables of ``env``."""
    checker = _Checker(env)
    t, cost = checker.visit(ast)
    return Checked(None if checker.issues else t, checker.issues, cost)


def format_issues(text: str, issues: list[tuple[int, str]]) -> str:
    """cel-go's ``issues.String()``: ``ERROR: <input>:L:C: message`` with the line and a caret."""
    out = []
    lines = text.split("\n")
    for pos, message in sorted(issues, key=lambda i: i[0]):
        line = text.count("\n", 0, pos)
        col = pos - (text.rfind("\n", 0, pos) + 1)
        src = lines[line] if line < len(lines) else ""
        out.append(f"ERROR: <input>:{line + 1}:{col + 1}: {message}\n | {src}\n | {'.' * col}^")
    return "\n".join(out)
