"""YAML request bodies, parsed once and refused before they can expand.

An alias (``*a``) makes PyYAML hand back the anchored object again, so a 500-byte body of
nested aliases decodes to a small shared graph that becomes hundreds of megabytes when it is
written as JSON (a "billion laughs"; CVE-2019-11253 in go-yaml). kube-apiserver refuses such
a body with go-yaml's alias-ratio rule: ``error converting YAML to JSON: yaml: document
contains excessive aliasing``. The rule is applied here on the composed node graph, counting
what the expansion *would* decode without expanding anything, together with a cap on the
expanded size (the decoded object cannot be larger than a request may be) and a refusal of
an anchor whose value contains itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

from vkube.api import errors

__all__ = ["YamlBody", "load_yaml", "excessive_aliasing"]

# go-yaml v2 decode.go: below 400k decoded nodes 99% of them may come from aliases, above 4M
# only 10%, linear in between; never refused with at most 100 aliased nodes or 1,000 decoded.
_RATIO_LOW, _RATIO_HIGH = 400_000, 4_000_000


def _allowed_alias_ratio(decoded: int) -> float:
    if decoded <= _RATIO_LOW:
        return 0.99
    if decoded >= _RATIO_HIGH:
        return 0.10
    return 0.99 - 0.89 * (decoded - _RATIO_LOW) / (_RATIO_HIGH - _RATIO_LOW)


def _loader() -> Any:
    return getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(frozen=True, slots=True)
class YamlBody:
    """The decoded documents and their composed nodes (duplicate-key checks read the nodes,
    so the body is parsed once)."""
    docs: list[Any]
    nodes: list[yaml.Node]


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _expanded_sizes(root: yaml.Node) -> dict[int, tuple[int, int]]:
    """Per node (by id): (nodes, bytes) of its subtree with every alias expanded — computed
    once per distinct node, so the cost is the size of the body, not of its expansion."""
    sizes: dict[int, tuple[int, int]] = {}
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        if done:
            on_path.discard(key)
            count, size = 1, (len(node.value) + 2) if isinstance(node, yaml.ScalarNode) else 2
            for child in _children(node):
                c_count, c_size = sizes[id(child)]
                count += c_count
                size += c_size + 1
            sizes[key] = (count, size)
            continue
        if key in sizes:
            continue
        if key in on_path:
            raise errors.BadRequest(
                "error converting YAML to JSON: yaml: anchor value contains itself")
        on_path.add(key)
        stack.append((node, True))
        stack.extend((child, False) for child in _children(node) if id(child) not in sizes)
    return sizes


def excessive_aliasing(root: yaml.Node, max_bytes: int) -> errors.StatusError | None:
    """The refusal kube-apiserver gives ``root``'s aliases, or None. Counted as go-yaml
    counts while decoding: every node decoded, and those decoded through an alias."""
    sizes = _expanded_sizes(root)
    decoded = aliased = 0
    seen: set[int] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) in seen:  # a second reference: an alias, decoded again in full
            count = sizes[id(node)][0]
            decoded += 1 + count
            aliased += count
            continue
        seen.add(id(node))
        decoded += 1
        stack.extend(reversed(_children(node)))
    if aliased > 100 and decoded > 1000 and aliased / decoded > _allowed_alias_ratio(decoded):
        return errors.BadRequest("error converting YAML to JSON: yaml: document contains excessive aliasing")
    if sizes[id(root)][1] > max_bytes:  # few aliases of big values: within the ratio, still too big
        return errors.request_entity_too_large(f"limit is {max_bytes}")
    return None


def load_yaml(raw: bytes | str, *, max_bytes: int) -> YamlBody:
    """All documents of ``raw``; a YAML error, a self-containing anchor or aliasing that would
    expand past go-yaml's ratio or ``max_bytes`` is a 400 (413 for the size) before any
    object is built."""
    anchors = (b"&" in raw) if isinstance(raw, bytes) else ("&" in raw)  # else no aliases
    loader = _loader()(raw)
    try:
        nodes = []
        docs = []
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            if anchors:
                refusal = excessive_aliasing(node, max_bytes)
                if refusal is not None:
                    raise refusal
            nodes.append(node)
            docs.append(loader.construct_document(node))
        return YamlBody(docs, nodes)
    except yaml.YAMLError as exc:
        raise errors.BadRequest(f"error converting YAML to JSON: {str(exc).splitlines()[0]}") from None
    finally:
        loader.dispose()
