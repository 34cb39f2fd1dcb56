"""Quantities are canonicalized wherever the schema says Quantity, in every built-in kind."""

from __future__ import annotations

from typing import Any

import pytest

from vkube.api import openapi_convert as conv
from vkube.api.builtin import builtin_specs
from vkube.api.canonical import QuantityIndex, canonicalize_quantities


def schema(group: str, version: str, kind: str) -> dict:
    name = conv.gvk_index()[(group, version, kind)]
    out = conv.builtin_resolver().definition(name)
    assert out is not None
    return out


def quantity_paths(node: Any, prefix: tuple = (), stack: frozenset = frozenset(),
                   depth: int = 14) -> list[tuple]:
    """Every path (property names, "[]" for list items, "{}" for map values) to a Quantity,
    found from the schema alone; recursive types are followed once."""
    if not isinstance(node, dict) or depth == 0 or id(node) in stack:
        return []
    if node.get(conv.QUANTITY_MARK):
        return [prefix]
    stack = stack | {id(node)}
    out = []
    for key, sub in (node.get("properties") or {}).items():
        out += quantity_paths(sub, prefix + (key,), stack, depth - 1)
    if isinstance(node.get("additionalProperties"), dict):
        out += quantity_paths(node["additionalProperties"], prefix + ("{}",), stack, depth - 1)
    if isinstance(node.get("items"), dict):
        out += quantity_paths(node["items"], prefix + ("[]",), stack, depth - 1)
    return out


def build(path: tuple, leaf: Any) -> Any:
    if not path:
        return leaf
    head, rest = path[0], path[1:]
    if head == "[]":
        return [build(rest, leaf)]
    if head == "{}":
        return {"k": build(rest, leaf)}
    return {head: build(rest, leaf)}


def fetch(obj: Any, path: tuple) -> Any:
    for step in path:
        obj = obj[0] if step == "[]" else obj["k"] if step == "{}" else obj[step]
    return obj


def test_every_quantity_of_every_builtin_kind() -> None:
    seen: set[str] = set()
    kinds_with = 0
    for spec in builtin_specs():
        if (spec.group, spec.version, spec.kind) not in conv.gvk_index():
            continue
        sch = schema(spec.group, spec.version, spec.kind)
        index = QuantityIndex(sch)  # kept across writes of the kind, as the storage keeps it
        paths = quantity_paths(sch)
        kinds_with += bool(paths)
        for path in paths:
            obj = build(path, "0.1")
            assert canonicalize_quantities(obj, sch) == [], (spec.kind, path)
            assert fetch(obj, path) == "100m", (spec.kind, path)
            obj = build(path, "1.5Gi")
            canonicalize_quantities(obj, sch, index)
            assert fetch(obj, path) == "1536Mi", (spec.kind, path)
            seen.add(f"{spec.kind}:" + ".".join(path))
    # the ones issue 11 names are among those found from the schemas
    for expected in (
        "Pod:spec.containers.[].resources.requests.{}",
        "Pod:spec.overhead.{}",
        "Pod:spec.volumes.[].emptyDir.sizeLimit",
        "Deployment:spec.template.spec.containers.[].resources.limits.{}",
        "StatefulSet:spec.volumeClaimTemplates.[].spec.resources.requests.{}",
        "CronJob:spec.jobTemplate.spec.template.spec.initContainers.[].resources.limits.{}",
        "PersistentVolumeClaim:status.capacity.{}",
        "PersistentVolume:spec.capacity.{}",
        "ResourceQuota:spec.hard.{}",
        "LimitRange:spec.limits.[].maxLimitRequestRatio.{}",
        "Node:status.allocatable.{}",
    ):
        assert expected in seen, expected
    assert kinds_with >= 10


def test_issue_example_and_numbers_and_bad_values() -> None:
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": [
        {"name": "c", "image": "x", "resources": {
            "requests": {"cpu": "0.1", "memory": "1.5Gi"},
            "limits": {"cpu": "1000m", "memory": "2097152Ki", "nvidia.com/gpu": 1}}}]}}
    assert canonicalize_quantities(pod, schema("", "v1", "Pod")) == []
    res = pod["spec"]["containers"][0]["resources"]
    assert res == {"requests": {"cpu": "100m", "memory": "1536Mi"},
                   "limits": {"cpu": "1", "memory": "2Gi", "nvidia.com/gpu": "1"}}
    lr = {"spec": {"limits": [{"type": "Container", "max": {"cpu": "2x"}, "min": {"cpu": "0.5"}}]}}
    causes = canonicalize_quantities(lr, schema("", "v1", "LimitRange"))
    assert [c["field"] for c in causes] == ["spec.limits[0].max[cpu]"]
    assert causes[0]["message"].startswith('Invalid value: "2x": quantities must match')
    assert lr["spec"]["limits"][0]["min"] == {"cpu": "500m"}
    assert lr["spec"]["limits"][0]["max"] == {"cpu": "2x"}  # left for the error, not mangled


@pytest.mark.parametrize("value", [True, None, {"a": 1}, ["1"]])
def test_wrong_json_types_are_left_to_the_type_checker(value: Any) -> None:
    obj = {"spec": {"hard": {"cpu": value}}}
    assert canonicalize_quantities(obj, schema("", "v1", "ResourceQuota")) == []
    assert obj["spec"]["hard"]["cpu"] == value


def test_non_quantity_strings_are_untouched() -> None:
    cm = {"data": {"cpu": "0.1"}, "metadata": {"labels": {"size": "1000m"}}}
    assert canonicalize_quantities(cm, schema("", "v1", "ConfigMap")) == []
    assert cm == {"data": {"cpu": "0.1"}, "metadata": {"labels": {"size": "1000m"}}}


def test_every_bad_value_is_named_not_only_the_first() -> None:
    """A fast pass without field paths stops at the first bad value; the named walk that
    follows reports each one, and canonicalizes the good ones around them."""
    pod = {"spec": {"containers": [
        {"name": f"c{i}", "image": "x", "resources": {"limits": {"cpu": "1x" if i % 2 else "0.5"}}}
        for i in range(4)]}}
    causes = canonicalize_quantities(pod, schema("", "v1", "Pod"))
    assert [c["field"] for c in causes] == ["spec.containers[1].resources.limits[cpu]",
                                            "spec.containers[3].resources.limits[cpu]"]
    assert [c["resources"]["limits"]["cpu"] for c in pod["spec"]["containers"]] == ["500m", "1x", "500m", "1x"]


def test_the_index_skips_only_what_holds_no_quantity() -> None:
    """The walk is pruned to the schema's quantity-bearing nodes; a cycle (JSONSchemaProps)
    is walked, so a quantity behind one is still found."""
    pod_schema = schema("", "v1", "Pod")
    index = QuantityIndex(pod_schema)
    container = pod_schema["properties"]["spec"]["properties"]["containers"]["items"]
    assert index.below(container) and index.below(container["properties"]["resources"])
    assert not index.below(container["properties"]["ports"])
    assert index.below(container["properties"]["env"])  # valueFrom.resourceFieldRef.divisor
    assert not index.below(pod_schema["properties"]["metadata"])
    pod = {"metadata": {"labels": {"cpu": "0.1"}}, "spec": {"containers": [
        {"name": "c", "env": [{"name": "X", "value": "0.1"}], "resources": {"limits": {"cpu": "0.1"}}}]}}
    assert canonicalize_quantities(pod, pod_schema, index) == []
    assert pod["spec"]["containers"][0]["resources"]["limits"] == {"cpu": "100m"}
    assert pod["spec"]["containers"][0]["env"] == [{"name": "X", "value": "0.1"}]
    assert pod["metadata"]["labels"] == {"cpu": "0.1"}
    node: dict = {"type": "object", "properties": {"size": {"type": "string", conv.QUANTITY_MARK: True},
                                                   "name": {"type": "string"}}}
    node["properties"]["child"] = node
    node["properties"]["children"] = {"type": "array", "items": node}
    cyclic = QuantityIndex(node)
    obj = {"name": "0.1", "child": {"children": [{"child": {"size": "0.5"}}]}}
    assert canonicalize_quantities(obj, node, cyclic) == []
    assert obj == {"name": "0.1", "child": {"children": [{"child": {"size": "500m"}}]}}
    assert not cyclic.below(node["properties"]["name"]) and cyclic.below(node)
    # an index of another schema is not used for this one
    other = {"type": "object", "properties": {"size": {"type": "string", conv.QUANTITY_MARK: True}}}
    obj = {"size": "0.25"}
    assert canonicalize_quantities(obj, other, cyclic) == [] and obj == {"size": "250m"}
