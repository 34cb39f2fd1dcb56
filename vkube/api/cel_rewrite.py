"""CEL that cel-python cannot run as written, rewritten to equivalent CEL it can: the
two-variable comprehensions of Kubernetes' environment (``all(i, v, p)``, ``exists``,
``existsOne``, ``transformList``) and the three-argument ``map(x, p, e)``.

``l.all(i, v, p)`` over a list becomes ``lists.range(size(l)).all(i, p[v := l[i]])``, over a map
``m.all(k, p[v := m[k]])``; ``l.map(x, p, e)`` becomes ``l.filter(x, p).map(x, e)``. The result
is printed back to text (``to_text``) and compiled by cel-python; the checker and the cost
estimate work on the rule as written.
"""

from __future__ import annotations

import json
import math

from vkube.api.cel_ast import NAMESPACED, Node

__all__ = ["needs_rewrite", "rewrite", "to_text"]

_INFIX = {"_&&_": "&&", "_||_": "||", "_==_": "==", "_!=_": "!=", "_<_": "<", "_<=_": "<=", "_>_": ">",
          "_>=_": ">=", "_+_": "+", "_-_": "-", "_*_": "*", "_/_": "/", "_%_": "%", "@in": "in"}


def _children(n: Node) -> list[Node]:
    return ([n.target] if n.target is not None else []) + n.args


def needs_rewrite(n: Node) -> bool:
    if n.op == "comp" and (n.value or (n.name == "map" and len(n.args) == 2)):
        return True
    return any(needs_rewrite(c) for c in _children(n))


def _substitute(n: Node, name: str, replacement: Node) -> Node:
    """``n`` with the free identifier ``name`` replaced (a comprehension rebinding it hides it)."""
    if n.op == "ident":
        return replacement if n.name == name else n
    target = _substitute(n.target, name, replacement) if n.target is not None else None
    if n.op == "comp" and name in (n.var, n.value):
        return Node(n.op, n.pos, n.name, list(n.args), target, n.value, n.kind, n.var)
    args = [_substitute(a, name, replacement) for a in n.args]
    return Node(n.op, n.pos, n.name, args, target, n.value, n.kind, n.var)


def rewrite(n: Node) -> Node:
    """``n`` with every comprehension cel-python lacks expressed with those it has."""
    target = rewrite(n.target) if n.target is not None else None
    args = [rewrite(a) for a in n.args]
    n = Node(n.op, n.pos, n.name, args, target, n.value, n.kind, n.var)
    if n.op != "comp" or target is None:
        return n
    if n.value:  # two variables: index or key, and value
        index = Node("ident", n.pos, name=n.var)
        element = Node("call", n.pos, name="_[_]", args=[target, index])
        body = [_substitute(a, n.value, element) for a in args]
        if n.kind == "map":
            rng = target
        else:
            size = Node("call", n.pos, name="size", args=[target])
            rng = Node("call", n.pos, name="lists.range", args=[size])
        name = {"existsOne": "exists_one", "transformList": "map"}.get(n.name, n.name)
        return rewrite(Node("comp", n.pos, name, body, rng, None, "", n.var))
    if n.name == "map" and len(args) == 2:
        kept = Node("comp", n.pos, "filter", [args[0]], target, None, "", n.var)
        return Node("comp", n.pos, "map", [args[1]], kept, None, "", n.var)
    return n


def _literal(n: Node) -> str:
    v = n.value
    if n.kind == "string":
        return json.dumps(v, ensure_ascii=False)
    if n.kind == "bytes":
        return 'b"' + "".join(f"\\x{b:02x}" for b in v) + '"'
    if n.kind == "bool":
        return "true" if v else "false"
    if n.kind == "null_type":
        return "null"
    if n.kind == "uint":
        return f"{v}u"
    if n.kind == "double":
        if math.isinf(v) or math.isnan(v):
            return f'double("{"NaN" if math.isnan(v) else ("Infinity" if v > 0 else "-Infinity")}")'
        return repr(float(v))
    return str(v)


def to_text(n: Node) -> str:
    """CEL source for ``n`` (parenthesized throughout; namespaced functions as cel-python
    calls them)."""
    if n.op == "lit":
        return _literal(n)
    if n.op == "ident":
        return n.name
    target = f"({to_text(n.target)})" if n.target is not None else ""
    if n.op == "select":
        return f"{target}.{n.name}"
    if n.op == "has":
        return f"has({target}.{n.name})"
    if n.op == "list":
        return "[" + ", ".join(to_text(a) for a in n.args) + "]"
    if n.op == "map":
        pairs = zip(n.args[0::2], n.args[1::2])
        return "{" + ", ".join(f"{to_text(k)}: {to_text(v)}" for k, v in pairs) + "}"
    if n.op == "comp":
        return f"{target}.{n.name}({n.var}, " + ", ".join(to_text(a) for a in n.args) + ")"
    args = [to_text(a) for a in n.args]
    if n.name in _INFIX:
        return f"({args[0]}) {_INFIX[n.name]} ({args[1]})"
    if n.name == "!_":
        return f"!({args[0]})"
    if n.name == "-_":
        return f"-({args[0]})"
    if n.name == "_?_:_":
        return f"({args[0]}) ? ({args[1]}) : ({args[2]})"
    if n.name == "_[_]":
        return f"({args[0]})[{args[1]}]"
    name = NAMESPACED.get(n.name, n.name)
    return f"{target}.{name}({', '.join(args)})" if target else f"{name}({', '.join(args)})"
