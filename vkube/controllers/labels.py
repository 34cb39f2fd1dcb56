"""Label selectors as controllers meet them: ``matchLabels``/``matchExpressions`` dicts (the
LabelSelector of Deployments, PDBs, …), plain label maps (Services), and the string form."""

from __future__ import annotations

from typing import Any

Labels = dict[str, str]


def is_label_selector(sel: dict[str, Any]) -> bool:
    """True for a LabelSelector dict; False for a plain ``{key: value}`` label map."""
    return bool(sel) and set(sel) <= {"matchLabels", "matchExpressions"} and all(
        not isinstance(v, str) for v in sel.values())


def _expr_matches(expr: dict[str, Any], labels: Labels) -> bool:
    key, op = expr.get("key", ""), expr.get("operator", "")
    values = expr.get("values") or []
    if op == "In":
        return key in labels and labels[key] in values
    if op == "NotIn":
        return key not in labels or labels[key] not in values
    if op == "Exists":
        return key in labels
    if op == "DoesNotExist":
        return key not in labels
    return False  # an unknown operator matches nothing, as Kubernetes rejects it


def matches(selector: Any, labels: Labels | None) -> bool:
    """Does ``selector`` (None, label map, LabelSelector dict or string) select ``labels``?

    None selects everything; an empty LabelSelector ``{}`` selects everything too (as in
    Deployments); callers that need "empty selects nothing" (Services, PDBs) check first."""
    labels = labels or {}
    if selector is None:
        return True
    if isinstance(selector, str):
        return all(_expr_matches(e, labels) for e in parse(selector))
    if not is_label_selector(selector):
        return all(labels.get(k) == v for k, v in selector.items())
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    return all(_expr_matches(e, labels) for e in selector.get("matchExpressions") or [])


def to_string(selector: dict[str, Any] | None) -> str:
    """The ``labelSelector`` query form of a label map or LabelSelector dict."""
    if not selector:
        return ""
    if not is_label_selector(selector):
        return ",".join(f"{k}={v}" for k, v in sorted(selector.items()))
    parts = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for e in selector.get("matchExpressions") or []:
        op, key, vals = e["operator"], e["key"], ",".join(sorted(e.get("values") or []))
        parts.append({"In": f"{key} in ({vals})", "NotIn": f"{key} notin ({vals})",
                      "Exists": key, "DoesNotExist": f"!{key}"}[op])
    return ",".join(parts)


def _split_terms(text: str) -> list[str]:
    terms, depth, cur = [], 0, ""
    for ch in text:
        depth += ch == "("
        depth -= ch == ")"
        if ch == "," and depth == 0:
            terms.append(cur)
            cur = ""
        else:
            cur += ch
    terms.append(cur)
    return [t.strip() for t in terms if t.strip()]


def parse(text: str) -> list[dict[str, Any]]:
    """The string form (``a=b,c!=d,e in (x,y),!f,g``) as matchExpressions."""
    out: list[dict[str, Any]] = []
    for term in _split_terms(text):
        low = term.replace("  ", " ")
        for word, op in ((" notin ", "NotIn"), (" in ", "In")):
            if word in low:
                key, vals = low.split(word, 1)
                values = [v.strip() for v in vals.strip().strip("()").split(",") if v.strip()]
                out.append({"key": key.strip(), "operator": op, "values": values})
                break
        else:
            if "!=" in term:
                k, v = term.split("!=", 1)
                out.append({"key": k.strip(), "operator": "NotIn", "values": [v.strip()]})
            elif "=" in term:
                k, v = term.replace("==", "=").split("=", 1)
                out.append({"key": k.strip(), "operator": "In", "values": [v.strip()]})
            elif term.startswith("!"):
                out.append({"key": term[1:].strip(), "operator": "DoesNotExist"})
            else:
                out.append({"key": term, "operator": "Exists"})
    return out
