"""CEL expressions as a small AST, built from cel-python's parse tree (lark), for the type
checker and cost estimator (``cel_check``): operators become calls named as CEL names them
(``_&&_``, ``_==_``, ``_[_]``, ``_?_:_``), macros (``has``, ``all``, ``exists``,
``exists_one``, ``map``, ``filter``) become comprehensions, and every node keeps the offset
in the source that an error points at.

Optional syntax (``a.?b``, ``a[?k]``) and namespaced functions (``optional.of``) are not in
cel-python's grammar; ``desugar``
rewrites it before parsing into the calls CEL itself desugars it to (``_?._``, ``_[?_]``),
spelled as methods cel-python can parse.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable

__all__ = ["Node", "to_ast", "desugar", "desugar_map", "OPT_SELECT", "OPT_INDEX", "MACROS", "TWO_VAR_MACROS",
           "NAMESPACED"]

OPT_SELECT, OPT_INDEX = "_optSelect_", "_optIndex_"
FORMAT_NAMES = ("dns1123Label", "dns1123Subdomain", "dns1035Label", "qualifiedName", "dns1123LabelPrefix",
                "dns1123SubdomainPrefix", "dns1035LabelPrefix", "labelValue", "uri", "uuid", "byte", "date", "datetime")
#: namespaced functions (``optional.of(x)``), spelled as plain identifiers cel-python can call
NAMESPACED = {f"{ns}.{fn}": f"{ns}_{fn}" for ns, fns in (
    ("optional", ("of", "none", "ofNonZeroValue")), ("sets", ("contains", "equivalent", "intersects")),
    ("strings", ("quote",)), ("ip", ("isCanonical",)), ("lists", ("range",)),
    ("format", ("named", *FORMAT_NAMES))) for fn in fns}
_UNSPACED = {v: k for k, v in NAMESPACED.items()}
MACROS = {"all", "exists", "exists_one", "map", "filter"}
#: cel-go's two-variable comprehensions (index or key, and value), in Kubernetes since 1.32
TWO_VAR_MACROS = {"all", "exists", "existsOne", "exists_one", "transformList"}
#: namespaces of global functions written as ``ns.fn(...)``
_NAMESPACES = {"optional", "ip", "sets", "strings", "lists", "math", "base64", "format"}
_TOKENS = re.compile(r"""(?P<str>[rRbB]{0,2}(?:\"\"\"[\s\S]*?\"\"\"|'''[\s\S]*?'''|"(?:\\.|[^"\\\n])*"|'(?:\\.|[^'\\\n])*'))"""
                     r"""|(?P<ns>(?<![\w.])(?:optional|sets|strings|ip|lists|format)\s*\.\s*[A-Za-z]\w*(?=\s*\())"""
                     r"""|(?P<optsel>\.\?\s*(?P<field>[_A-Za-z]\w*))|(?P<optidx>\[\?)|(?P<open>\[)|(?P<close>\])""")
_BINARY = {"conditionalor": "_||_", "conditionaland": "_&&_"}
_OPS = {"relation_lt": "_<_", "relation_le": "_<=_", "relation_gt": "_>_", "relation_ge": "_>=_",
        "relation_eq": "_==_", "relation_ne": "_!=_", "relation_in": "@in", "addition_add": "_+_",
        "addition_sub": "_-_", "multiplication_mul": "_*_", "multiplication_div": "_/_",
        "multiplication_mod": "_%_"}


@dataclass(slots=True)
class Node:
    """``op``: lit, ident, select, has, call, list, map, comp. ``name``: identifier, field,
    function or macro name; ``target``: a method's receiver; ``value``: a literal's value and
    ``kind`` its CEL type; ``var``: a comprehension's variable."""

    op: str
    pos: int
    name: str = ""
    args: list["Node"] = field(default_factory=list)
    target: "Node | None" = None
    value: Any = None
    kind: str = ""
    var: str = ""


def desugar(text: str) -> str:
    """``a.?b`` → ``a._optSelect_('b')``; ``a[?k]`` → ``a._optIndex_(k)``;
    ``optional.of(x)`` → ``optional_of(x)`` (string literals untouched)."""
    return desugar_map(text)[0]


def desugar_map(text: str) -> tuple[str, Callable[[int], int]]:
    """``desugar`` and a map from offsets in its result back to offsets in ``text`` (errors
    point into what the user wrote)."""
    if ".?" not in text and "[?" not in text and not any(ns in text for ns in ("optional.", "sets.", "strings.", "ip.", "lists.", "format.")):
        return text, lambda pos: pos
    out: list[str] = []
    anchors: list[tuple[int, int, bool]] = []  # (offset in result, offset in text, copied verbatim)
    closers: list[str] = []
    last = size = 0

    def emit(piece: str, origin: int, verbatim: bool) -> None:
        nonlocal size
        anchors.append((size, origin, verbatim))
        out.append(piece)
        size += len(piece)

    for m in _TOKENS.finditer(text):
        emit(text[last:m.start()], last, True)
        last = m.end()
        if m.group("str"):
            emit(m.group("str"), m.start(), True)
        elif m.group("ns"):
            name = re.sub(r"\s+", "", m.group("ns"))
            emit(NAMESPACED.get(name, m.group("ns")), m.start(), False)
        elif m.group("optsel"):
            emit(f".{OPT_SELECT}('{m.group('field')}')", m.start(), False)
        elif m.group("optidx"):
            emit(f".{OPT_INDEX}(", m.start(), False)
            closers.append(")")
        elif m.group("open"):
            emit("[", m.start(), True)
            closers.append("]")
        else:
            emit(closers.pop() if closers else "]", m.start(), False)
    emit(text[last:], last, True)

    def origin(pos: int) -> int:
        for at, orig, verbatim in reversed(anchors):
            if at <= pos:
                return orig + (pos - at) if verbatim else orig
        return pos

    return "".join(out), origin


def _pos(tree: Any) -> int:
    """The offset where ``tree`` starts (its first token's)."""
    while not hasattr(tree, "start_pos") or getattr(tree, "type", None) is None:
        kids = [c for c in getattr(tree, "children", ()) if c is not None]
        if not kids:
            return 0
        tree = kids[0]
    return tree.start_pos or 0


def _end(tree: Any) -> int:
    """The offset just past ``tree`` (its last token's end)."""
    while not hasattr(tree, "end_pos") or getattr(tree, "type", None) is None:
        kids = [c for c in getattr(tree, "children", ()) if c is not None]
        if not kids:
            return 0
        tree = kids[-1]
    return tree.end_pos or 0


def _int(text: str) -> int:
    return int(text, 16) if "x" in text.lower() else int(text, 10)


def _literal(token: Any) -> Node:
    from celpy.evaluation import celbytes, celstr

    kind, text, pos = token.type, str(token), token.start_pos
    if kind == "INT_LIT":
        return Node("lit", pos, value=_int(text), kind="int")
    if kind == "UINT_LIT":
        return Node("lit", pos, value=_int(text[:-1]), kind="uint")
    if kind == "FLOAT_LIT":
        return Node("lit", pos, value=float(text), kind="double")
    if kind in ("STRING_LIT", "MLSTRING_LIT"):
        return Node("lit", pos, value=str(celstr(token)), kind="string")
    if kind == "BYTES_LIT":
        return Node("lit", pos, value=bytes(celbytes(token)), kind="bytes")
    if kind == "BOOL_LIT":
        return Node("lit", pos, value=text == "true", kind="bool")
    return Node("lit", pos, value=None, kind="null_type")


class _Builder:
    def __init__(self, text: str) -> None:
        self.text = text

    def op_pos(self, left: Any, right: Any, op: str) -> int:
        """The offset of the operator between two operands (CEL points errors at it)."""
        start, end = _end(left), _pos(right)
        found = self.text.find(op.strip("_").replace("@", ""), start, end) if end > start else -1
        return found if found >= 0 else start

    def build(self, t: Any) -> Node:  # noqa: C901 - one case per grammar rule
        from lark import Token

        if isinstance(t, Token):
            return Node("ident", t.start_pos, name=str(t))
        rule = t.data if isinstance(t.data, str) else t.data.value
        kids = [c for c in t.children if c is not None]
        if rule == "expr":
            if len(kids) == 1:
                return self.build(kids[0])
            a, b, c = (self.build(k) for k in kids)
            return Node("call", self.op_pos(kids[0], kids[1], "?"), name="_?_:_", args=[a, b, c])
        if rule in _BINARY:
            if len(kids) == 1:
                return self.build(kids[0])
            return Node("call", self.op_pos(kids[0], kids[1], _BINARY[rule]), name=_BINARY[rule],
                        args=[self.build(kids[0]), self.build(kids[1])])
        if rule in ("relation", "addition", "multiplication"):
            if len(kids) == 1:
                return self.build(kids[0])
            left_op, right = kids
            name = _OPS[left_op.data if isinstance(left_op.data, str) else left_op.data.value]
            left = left_op.children[0]
            symbol = "in" if name == "@in" else name
            return Node("call", self.op_pos(left, right, symbol), name=name, args=[self.build(left), self.build(right)])
        if rule == "unary":
            if len(kids) == 1:
                return self.build(kids[0])
            sign, operand = kids
            name = "!_" if (sign.data if isinstance(sign.data, str) else sign.data.value) == "unary_not" else "-_"
            inner = self.build(operand)
            if name == "-_" and inner.op == "lit" and inner.kind in ("int", "double"):
                return Node("lit", _pos(t), value=-inner.value, kind=inner.kind)  # -1 is a literal in CEL
            return Node("call", _pos(t), name=name, args=[inner])
        if rule in ("member", "primary", "paren_expr"):
            return self.build(kids[0])
        if rule == "member_dot":
            operand, ident = kids
            return Node("select", ident.start_pos - 1, name=str(ident), target=self.build(operand))
        if rule == "member_dot_arg":
            operand, ident = kids[0], kids[1]
            args = [self.build(a) for a in kids[2].children] if len(kids) > 2 else []
            name = str(ident)
            paren = ident.end_pos
            target = self.build(operand)
            namespaced = target.op == "ident" and target.name in _NAMESPACES
            if name in TWO_VAR_MACROS and not namespaced and len(args) >= 3 and args[0].op == args[1].op == "ident" \
                    and (len(args) == 3 or name == "transformList" and len(args) == 4):
                return Node("comp", paren, name=name, target=target, var=args[0].name, value=args[1].name,
                            args=args[2:])
            if name in MACROS and not namespaced:
                if len(args) in (2, 3) and args[0].op == "ident" and (name == "map" or len(args) == 2):
                    return Node("comp", paren, name=name, target=target, var=args[0].name, args=args[1:])
            if target.op == "ident" and target.name in _NAMESPACES:
                return Node("call", paren, name=f"{target.name}.{name}", args=args)
            return Node("call", paren, name=name, target=target, args=args)
        if rule == "member_index":
            operand, index = kids
            return Node("call", _end(operand), name="_[_]", args=[self.build(operand), self.build(index)])
        if rule == "member_object":
            return Node("call", _pos(t), name="@struct", args=[])
        if rule in ("ident", "dot_ident"):
            return Node("ident", kids[0].start_pos, name=str(kids[0]))
        if rule in ("ident_arg", "dot_ident_arg"):
            ident = kids[0]
            args = [self.build(a) for a in kids[1].children] if len(kids) > 1 else []
            if str(ident) == "has" and len(args) == 1 and args[0].op == "select":
                return Node("has", args[0].pos, name=args[0].name, target=args[0].target)
            return Node("call", ident.end_pos, name=_UNSPACED.get(str(ident), str(ident)), args=args)
        if rule == "list_lit":
            return Node("list", _pos(t), args=[self.build(a) for a in kids[0].children] if kids else [])
        if rule == "map_lit":
            return Node("map", _pos(t), args=[self.build(a) for a in kids[0].children] if kids else [])
        if rule == "literal":
            return _literal(kids[0])
        if rule == "exprlist":
            return self.build(kids[0])
        raise ValueError(f"unexpected CEL syntax node {rule}")


def to_ast(tree: Any, text: str) -> Node:
    """The AST of cel-python's parse tree of ``text``."""
    return _Builder(text).build(tree)
