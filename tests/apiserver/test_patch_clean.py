"""The patch shortcut (``patching.body_is_clean``): a patch whose values are well typed and
known skips the walks of the whole patched object. It must never call a patch clean whose
result the full walks would fault, so each case here is checked against them."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from vkube.api.fieldvalidation import unknown_fields
from vkube.api.kinds import Registry
from vkube.api.openapi import OpenAPI
from vkube.api.typecheck import type_errors
from vkube.apiserver import patching


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    s = OpenAPI(Registry()).schema_for("", "v1", "Pod")
    assert s is not None
    return s


POD = {"apiVersion": "v1", "kind": "Pod",
       "metadata": {"name": "p", "namespace": "ns", "uid": "u1", "labels": {"app": "a"}},
       "spec": {"containers": [{"name": "c", "image": "nginx"}]},
       "status": {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "True"}]}}

RUNNING = {"phase": "Running", "podIP": "10.0.0.5", "startTime": "2026-01-01T00:00:00Z",
           "conditions": [{"type": "Ready", "status": "True", "lastProbeTime": None,
                           "lastTransitionTime": "2026-01-01T00:00:01Z"}],
           "containerStatuses": [{"name": "c", "image": "nginx", "imageID": "", "ready": True,
                                  "restartCount": 0, "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}}}]}

CASES: list[tuple[str, Any, bool]] = [
    # (patch type, body, clean?)
    ("merge", {"status": RUNNING}, True),
    ("strategic", {"status": RUNNING}, True),
    ("merge", {"metadata": {"labels": {"app": None, "b": "x"}}}, True),
    ("json", [{"op": "test", "path": "/metadata/uid", "value": "u1"},
              {"op": "add", "path": "/status/phase", "value": "Running"},
              {"op": "add", "path": "/status/conditions", "value": RUNNING["conditions"]},
              {"op": "remove", "path": "/metadata/labels/app"}], True),
    # a wrong type, an unknown field, a bad time: the full walks give the exact error
    ("merge", {"status": {"phase": 5}}, False),
    ("merge", {"status": {"phaze": "Running"}}, False),
    ("strategic", {"status": {"startTime": "yesterday"}}, False),
    ("json", [{"op": "add", "path": "/status/phase", "value": ["Running"]}], False),
    ("json", [{"op": "add", "path": "/status/bogus", "value": 1}], False),
    ("json", [{"op": "add", "path": "/spec/containers/0/image", "value": 7}], False),
    # what the shortcut does not place: list items, escaped keys, the root, copy and move
    ("json", [{"op": "add", "path": "/spec/containers/0/image", "value": "x"}], False),
    ("json", [{"op": "add", "path": "/metadata/labels/a~1b", "value": "x"}], False),
    ("json", [{"op": "replace", "path": "", "value": POD}], False),
    ("json", [{"op": "copy", "from": "/metadata/name", "path": "/metadata/generateName"}], False),
    ("json", [{"op": "move", "from": "/status/phase", "path": "/status/reason"}], False),
    # SMP directives look unknown: the full walks decide
    ("strategic", {"spec": {"$setElementOrder/containers": [{"name": "c"}]}}, False),
    ("merge", ["not", "an", "object"], False),
]


@pytest.mark.parametrize("ptype,body,clean", CASES)
def test_clean_means_the_full_walks_find_nothing(schema: dict[str, Any], ptype: str, body: Any,
                                                 clean: bool) -> None:
    assert patching.body_is_clean(ptype, body, schema) is clean
    if not clean:
        return
    result = patching.patch(ptype, copy.deepcopy(POD), body, schema=schema, spec=None)
    assert type_errors(result, schema) == []
    assert unknown_fields(result, schema) == []


def test_faulty_values_are_never_clean(schema: dict[str, Any]) -> None:
    """Every typed leaf of a status given a value of the wrong type is caught by the shortcut
    or left to the full walks, never passed as clean while the result has a type error."""
    for field, bad in (("phase", 1), ("podIP", True), ("startTime", "not a time"),
                       ("conditions", {"type": "Ready"}), ("containerStatuses", [{"restartCount": "x"}])):
        for ptype, body in (("merge", {"status": {field: bad}}), ("strategic", {"status": {field: bad}}),
                            ("json", [{"op": "add", "path": f"/status/{field}", "value": bad}])):
            result = patching.patch(ptype, copy.deepcopy(POD), body, schema=schema, spec=None)
            assert type_errors(result, schema), (ptype, field)
            assert not patching.body_is_clean(ptype, body, schema), (ptype, field)


def test_custom_resources_and_no_schema_take_the_full_path(schema: dict[str, Any]) -> None:
    assert not patching.body_is_clean("merge", {"status": RUNNING}, schema, custom=True)
    assert not patching.body_is_clean("merge", {"status": RUNNING}, None)
    assert not patching.body_is_clean("apply", {"status": RUNNING}, schema)
