"""Label selectors as controllers meet them: ``matchLabels``/``matchExpressions`` dicts (the
LabelSelector of Deployments, PDBs, …), plain label maps (Services), and the string form.
The matching itself is ``vkube.api.selectors``' — one implementation for server and clients."""

from __future__ import annotations

from typing import Any

from vkube.api.errors import BadRequest
from vkube.api.selectors import (
    label_selector_from_dict,
    parse_label_selector,
    selector_to_string,
)

Labels = dict[str, str]


def is_label_selector(sel: dict[str, Any]) -> bool:
    """True for a LabelSelector dict; False for a plain ``{key: value}`` label map."""
    return bool(sel) and set(sel) <= {"matchLabels", "matchExpressions"} and all(
        not isinstance(v, str) for v in sel.values())


def matches(selector: Any, labels: Labels | None) -> bool:
    """Does ``selector`` (None, label map, LabelSelector dict or string) select ``labels``?

    None selects everything; an empty LabelSelector ``{}`` selects everything too (as in
    Deployments); callers that need "empty selects nothing" (Services, PDBs) check first.
    A selector the API server would reject matches nothing."""
    labels = labels or {}
    if selector is None:
        return True
    try:
        if isinstance(selector, str):
            return parse_label_selector(selector).matches(labels)
        if not is_label_selector(selector):
            return all(labels.get(k) == v for k, v in selector.items())
        return label_selector_from_dict(selector).matches(labels)
    except BadRequest:
        return False


def to_string(selector: dict[str, Any] | None) -> str:
    """The ``labelSelector`` query form of a label map or LabelSelector dict."""
    return selector_to_string(selector) if selector else ""
