"""Strategic merge patch: golden cases from apimachinery's strategicpatch tests (current object
+ three-way patch → result), the "kubectl patch" task page, and kubectl apply's patches."""

from __future__ import annotations

import pytest
import yaml

from vkube.api import errors
from vkube.api.kinds import Registry
from vkube.api.openapi import OpenAPI
from vkube.api.patch import apply_strategic_merge_patch

# The test schema of apimachinery's strategicpatch tests, reduced to what the cases use.
MERGE_ITEM: dict = {"type": "object", "properties": {}}
MERGE_ITEM["properties"] = {
    "name": {"type": "string"}, "value": {"type": "string"}, "other": {"type": "string"},
    "mergingList": {"type": "array", "items": MERGE_ITEM, "x-kubernetes-patch-strategy": "merge", "x-kubernetes-patch-merge-key": "name"},
    "nonMergingList": {"type": "array", "items": MERGE_ITEM},
    "mergingIntList": {"type": "array", "items": {"type": "integer"}, "x-kubernetes-patch-strategy": "merge"},
    "nonMergingIntList": {"type": "array", "items": {"type": "integer"}},
    "simpleMap": {"type": "object", "additionalProperties": {"type": "string"}},
    "retainKeysMap": {"type": "object", "x-kubernetes-patch-strategy": "retainKeys", "properties": {
        "name": {"type": "string"}, "value": {"type": "string"}, "other": {"type": "string"}}},
}

GOLDEN = [
    ("delete an item and reorder", """
current: {mergingList: [{name: 1, other: a}, {name: 2, value: 2, other: b}, {name: 3, value: 3}]}
patch: {$setElementOrder/mergingList: [{name: 2}, {name: 1}], mergingList: [{name: 3, $patch: delete}]}
result: {mergingList: [{name: 2, value: 2, other: b}, {name: 1, other: a}]}
"""),
    ("change an item and preserve order", """
current: {mergingList: [{name: 1, other: a}, {name: 2, value: 2, other: b}, {name: 3, value: 3}]}
patch: {$setElementOrder/mergingList: [{name: 2}, {name: 3}, {name: 1}], mergingList: [{name: 3, value: x}]}
result: {mergingList: [{name: 2, value: 2, other: b}, {name: 3, value: x}, {name: 1, other: a}]}
"""),
    ("add and delete an item and preserve order", """
current: {mergingList: [{name: 1, other: a}, {name: 2, value: 2, other: b}, {name: 3, value: 3}]}
patch: {$setElementOrder/mergingList: [{name: 4}, {name: 2}, {name: 1}], mergingList: [{name: 4, value: 4}, {name: 3, $patch: delete}]}
result: {mergingList: [{name: 4, value: 4}, {name: 2, value: 2, other: b}, {name: 1, other: a}]}
"""),
    ("set order with server-only items", """
current: {mergingList: [{name: 1, other: a}, {name: 2, value: 2}, {name: 7}, {name: 9}, {name: 8}, {name: 3, value: 3}, {name: 4, value: 4}]}
patch: {$setElementOrder/mergingList: [{name: 2}, {name: 1}, {name: 4}, {name: 3}]}
result: {mergingList: [{name: 2, value: 2}, {name: 1, other: a}, {name: 7}, {name: 9}, {name: 8}, {name: 4, value: 4}, {name: 3, value: 3}]}
"""),
    ("set order in an int list with server-only items", """
current: {mergingIntList: [1, 2, 7, 9, 8, 3, 4]}
patch: {$setElementOrder/mergingIntList: [2, 1, 4, 3]}
result: {mergingIntList: [2, 1, 7, 9, 8, 4, 3]}
"""),
    ("add and delete in an int list and preserve order", """
current: {mergingIntList: [1, 2, 3]}
patch: {$setElementOrder/mergingIntList: [4, 2, 1], mergingIntList: [4], $deleteFromPrimitiveList/mergingIntList: [3]}
result: {mergingIntList: [4, 2, 1]}
"""),
    ("duplicates in a merging list", """
current: {mergingList: [{name: 1}, {name: 2, value: dup1}, {name: 3}, {name: 2, value: dup2}, {name: 4}]}
patch: {$setElementOrder/mergingList: [{name: 2}, {name: 1}, {name: 4}, {name: 3}, {name: 2}]}
result: {mergingList: [{name: 2, value: dup1}, {name: 2, value: dup2}, {name: 1}, {name: 4}, {name: 3}]}
"""),
    ("retainKeys clears a defaulted field", """
current: {retainKeysMap: {value: foo}}
patch: {retainKeysMap: {$retainKeys: [other], other: bar}}
result: {retainKeysMap: {other: bar}}
"""),
    ("retainKeys deletes a field and clears another", """
current: {retainKeysMap: {name: foo, value: bar, other: a}}
patch: {retainKeysMap: {$retainKeys: [name], value: null}}
result: {retainKeysMap: {name: foo}}
"""),
    ("new item without order goes first", """
current: {mergingList: [{name: 1}, {name: 2}]}
patch: {mergingList: [{name: 3}]}
result: {mergingList: [{name: 3}, {name: 1}, {name: 2}]}
"""),
    ("non-merging list is replaced", """
current: {nonMergingList: [{name: 1}, {name: 2}], nonMergingIntList: [1, 2]}
patch: {nonMergingList: [{name: 3}], nonMergingIntList: [2, 2]}
result: {nonMergingList: [{name: 3}], nonMergingIntList: [2, 2]}
"""),
    ("$patch replace on a list", """
current: {mergingList: [{name: 1, value: a}, {name: 2}]}
patch: {mergingList: [{name: 3}, {$patch: replace}]}
result: {mergingList: [{name: 3}]}
"""),
    ("$patch replace and delete on maps, null deletes", """
current: {simpleMap: {a: x, b: y}, retainKeysMap: {name: n}, value: v, other: o}
patch: {simpleMap: {c: z, $patch: replace}, retainKeysMap: {$patch: delete}, value: null}
result: {simpleMap: {c: z}, retainKeysMap: {}, other: o}
"""),
    ("merging into an absent list strips directives", """
current: {}
patch: {mergingList: [{name: 1, simpleMap: {k: null, j: v}}, {name: 2, $patch: delete}]}
result: {mergingList: [{name: 1, simpleMap: {j: v}}]}
"""),
]


@pytest.mark.parametrize("case", [c[1] for c in GOLDEN], ids=[c[0] for c in GOLDEN])
def test_golden(case: str) -> None:
    data = yaml.safe_load(case)
    current = data["current"]
    before = yaml.safe_load(yaml.safe_dump(current))
    assert apply_strategic_merge_patch(current, data["patch"], MERGE_ITEM) == data["result"]
    assert current == before  # the input is never mutated


@pytest.fixture(scope="module")
def openapi() -> OpenAPI:
    return OpenAPI(Registry())


DEPLOYMENT = yaml.safe_load("""
apiVersion: apps/v1
kind: Deployment
metadata: {name: patch-demo, finalizers: [a, b], ownerReferences: [{apiVersion: v1, kind: X, name: o, uid: u1}]}
spec:
  replicas: 2
  strategy: {type: RollingUpdate, rollingUpdate: {maxSurge: 25%, maxUnavailable: 25%}}
  template:
    spec:
      containers:
      - {name: patch-demo-ctr, image: nginx, ports: [{containerPort: 80, protocol: TCP}], env: [{name: A, value: "1"}]}
      tolerations: [{effect: NoSchedule, key: dedicated, value: test-team}]
""")


def test_task_page_adds_container_first(openapi: OpenAPI) -> None:
    """The "Update API Objects in Place Using kubectl patch" page: the new container comes
    first, tolerations (no patch strategy) are replaced."""
    schema = openapi.schema_for("apps", "v1", "Deployment")
    patch = yaml.safe_load("""
spec:
  template:
    spec:
      containers: [{name: patch-demo-ctr-2, image: redis}]
      tolerations: [{effect: NoSchedule, key: disktype, value: ssd}]
""")
    out = apply_strategic_merge_patch(DEPLOYMENT, patch, schema)
    spec = out["spec"]["template"]["spec"]
    assert [c["name"] for c in spec["containers"]] == ["patch-demo-ctr-2", "patch-demo-ctr"]
    assert spec["containers"][1]["image"] == "nginx"
    assert spec["tolerations"] == [{"effect": "NoSchedule", "key": "disktype", "value": "ssd"}]


def test_task_page_retain_keys(openapi: OpenAPI) -> None:
    schema = openapi.schema_for("apps", "v1", "Deployment")
    patch = {"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}
    out = apply_strategic_merge_patch(DEPLOYMENT, patch, schema)
    assert out["spec"]["strategy"] == {"type": "Recreate"}


def test_kubectl_apply_three_way_patch(openapi: OpenAPI) -> None:
    """A patch as kubectl apply computes it: ordered containers, ports by containerPort, env by
    name, an env var removed, finalizers merged as a set, ownerReferences by uid."""
    schema = openapi.schema_for("apps", "v1", "Deployment")
    patch = yaml.safe_load("""
metadata:
  $deleteFromPrimitiveList/finalizers: [a]
  finalizers: [c, b]
  ownerReferences: [{apiVersion: v1, kind: X, name: renamed, uid: u1}]
spec:
  replicas: 3
  template:
    spec:
      $setElementOrder/containers: [{name: patch-demo-ctr}, {name: sidecar}]
      containers:
      - name: patch-demo-ctr
        image: nginx:1.27
        $setElementOrder/ports: [{containerPort: 80}, {containerPort: 443}]
        ports: [{containerPort: 443, protocol: TCP}]
        env: [{name: A, $patch: delete}, {name: B, value: "2"}]
      - {name: sidecar, image: busybox}
""")
    out = apply_strategic_merge_patch(DEPLOYMENT, patch, schema)
    assert out["metadata"]["finalizers"] == ["c", "b"]
    assert out["metadata"]["ownerReferences"] == [{"apiVersion": "v1", "kind": "X", "name": "renamed", "uid": "u1"}]
    ctrs = out["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in ctrs] == ["patch-demo-ctr", "sidecar"]
    assert ctrs[0]["image"] == "nginx:1.27"
    assert [p["containerPort"] for p in ctrs[0]["ports"]] == [80, 443]
    assert ctrs[0]["env"] == [{"name": "B", "value": "2"}]
    assert out["spec"]["replicas"] == 3
    assert out["spec"]["template"]["spec"]["tolerations"] == DEPLOYMENT["spec"]["template"]["spec"]["tolerations"]


def test_conditions_merge_by_type(openapi: OpenAPI) -> None:
    schema = openapi.schema_for("", "v1", "Pod")
    pod = {"status": {"conditions": [{"type": "Ready", "status": "False"}, {"type": "Initialized", "status": "True"}]}}
    out = apply_strategic_merge_patch(pod, {"status": {"conditions": [{"type": "Ready", "status": "True"}]}}, schema)
    assert {c["type"]: c["status"] for c in out["status"]["conditions"]} == {"Ready": "True", "Initialized": "True"}


def test_labels_merge_and_null_deletes(openapi: OpenAPI) -> None:
    schema = openapi.schema_for("", "v1", "ConfigMap")
    cm = {"metadata": {"labels": {"a": "1", "b": "2"}}, "data": {"x": "1"}}
    out = apply_strategic_merge_patch(cm, {"metadata": {"labels": {"a": None, "c": "3"}}, "data": {"y": "2"}}, schema)
    assert out == {"metadata": {"labels": {"b": "2", "c": "3"}}, "data": {"x": "1", "y": "2"}}


def test_custom_resource_refused() -> None:
    with pytest.raises(errors.UnsupportedMediaType) as exc:
        apply_strategic_merge_patch({}, {"spec": {}}, None)
    assert exc.value.code == 415


@pytest.mark.parametrize("patch", [[1, 2], "x", {"mergingList": [{"value": "no key"}]}, {"simpleMap": {"$patch": "bogus"}}, {"$bogus": 1}])
def test_bad_patches_are_400(patch: object) -> None:
    with pytest.raises(errors.BadRequest):
        apply_strategic_merge_patch({"mergingList": [{"name": "1"}], "simpleMap": {}}, patch, MERGE_ITEM)


def test_retain_keys_mismatch_is_422() -> None:
    with pytest.raises(errors.Invalid):
        apply_strategic_merge_patch({}, {"retainKeysMap": {"$retainKeys": ["name"], "value": "x"}}, MERGE_ITEM)


def test_missing_merge_key_is_worded_as_go_prints_the_item(openapi: OpenAPI) -> None:
    """A list item without its merge key: apimachinery's words, the item as Go's ``%v`` prints a
    decoded map (``map[k:v]``, keys sorted, numbers as float64) — never a Python repr."""
    schema = openapi.schema_for("apps", "v1", "Deployment")
    patch = {"spec": {"template": {"spec": {"containers": [
        {"image": "x", "ports": [{"containerPort": 1000000}], "tty": True}]}}}}
    with pytest.raises(errors.BadRequest) as err:
        apply_strategic_merge_patch(DEPLOYMENT, patch, schema)
    assert str(err.value.message) == ("map: map[image:x ports:[map[containerPort:1e+06]] tty:true] "
                                      "does not contain declared merge key: name")
