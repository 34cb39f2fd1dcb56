"""JSON patch (RFC 6902) and JSON merge patch (RFC 7386) with Kubernetes' error codes."""

from __future__ import annotations

import pytest

from vkube.api import errors
from vkube.api.patch import MAX_JSON_PATCH_OPERATIONS, apply_json_patch, apply_merge_patch

OBJ = {"metadata": {"name": "x", "labels": {"a": "1"}}, "spec": {"replicas": 1, "list": [1, 2]}}


def test_json_patch_all_ops() -> None:
    ops = [
        {"op": "test", "path": "/spec/replicas", "value": 1},
        {"op": "replace", "path": "/spec/replicas", "value": 3},
        {"op": "add", "path": "/spec/list/-", "value": 3},
        {"op": "add", "path": "/metadata/labels/b~1c", "value": "2"},
        {"op": "remove", "path": "/metadata/labels/a"},
        {"op": "copy", "from": "/spec/replicas", "path": "/spec/copied"},
        {"op": "move", "from": "/spec/list", "path": "/spec/moved"},
    ]
    out = apply_json_patch(OBJ, ops)
    assert out == {"metadata": {"name": "x", "labels": {"b/c": "2"}},
                   "spec": {"replicas": 3, "copied": 3, "moved": [1, 2, 3]}}
    assert OBJ["spec"]["replicas"] == 1  # not mutated


def test_failed_test_is_422_and_all_or_nothing() -> None:
    with pytest.raises(errors.Invalid) as exc:
        apply_json_patch(OBJ, [{"op": "replace", "path": "/spec/replicas", "value": 5},
                               {"op": "test", "path": "/spec/replicas", "value": 1}])
    assert exc.value.code == 422 and exc.value.reason == "Invalid"
    # kube-apiserver's words: no Python repr of the compared values, no causes
    assert exc.value.message == "the server rejected our request due to an error in our request"
    assert exc.value.to_status()["details"] == {}
    assert OBJ["spec"]["replicas"] == 1


@pytest.mark.parametrize("op", [
    {"op": "remove", "path": "/spec/nope"},
    {"op": "replace", "path": "/nope/deeper", "value": 1},
    {"op": "add", "path": "/spec/list/9", "value": 1},
    {"op": "move", "from": "/missing", "path": "/x"},
    {"op": "bogus", "path": "/x"},
    {"op": "add", "path": "no-slash", "value": 1},
])
def test_bad_paths_are_422_as_kube_apiserver_words_it(op: dict) -> None:
    with pytest.raises(errors.Invalid) as exc:
        apply_json_patch(OBJ, [op])
    assert exc.value.message == "the server rejected our request due to an error in our request"


@pytest.mark.parametrize("ops", [{"op": "add"}, "x", [1]])
def test_undecodable_json_patch_is_400(ops: object) -> None:
    with pytest.raises(errors.BadRequest):
        apply_json_patch(OBJ, ops)


def test_too_many_operations_is_413() -> None:
    ops = [{"op": "test", "path": "/spec/replicas", "value": 1}] * (MAX_JSON_PATCH_OPERATIONS + 1)
    with pytest.raises(errors.RequestEntityTooLarge):
        apply_json_patch(OBJ, ops)


def test_replacing_root_with_non_object_is_rejected() -> None:
    with pytest.raises(errors.StatusError) as exc:
        apply_json_patch(OBJ, [{"op": "replace", "path": "", "value": 1}])
    assert exc.value.code in (400, 422)


def test_merge_patch() -> None:
    out = apply_merge_patch(OBJ, {"metadata": {"labels": {"a": None, "b": "2"}}, "spec": {"list": [9], "new": {"x": None, "y": 1}}})
    assert out == {"metadata": {"name": "x", "labels": {"b": "2"}}, "spec": {"replicas": 1, "list": [9], "new": {"y": 1}}}
    assert OBJ["metadata"]["labels"] == {"a": "1"}


@pytest.mark.parametrize("patch", [[1], "x", 3, None])
def test_merge_patch_must_be_object(patch: object) -> None:
    with pytest.raises(errors.BadRequest):
        apply_merge_patch(OBJ, patch)


POD = {"metadata": {"name": "p", "uid": "u-1", "labels": {"a": "1"}},
       "spec": {"containers": [{"name": "c"}]}, "status": {"phase": "Pending", "conditions": []}}
PLAIN_AND_NOT = [
    # plain ops on object members (applied without the library) and their neighbours it applies
    [{"op": "test", "path": "/metadata/uid", "value": "u-1"},
     {"op": "add", "path": "/status/phase", "value": "Running"},
     {"op": "add", "path": "/status/podIP", "value": "10.0.0.1"},
     {"op": "replace", "path": "/status/conditions", "value": [{"type": "Ready", "status": "True"}]},
     {"op": "remove", "path": "/metadata/labels/a"}],
    [{"op": "test", "path": "/metadata/uid", "value": "u-2"}],  # fails
    [{"op": "test", "path": "/metadata/missing", "value": "x"}],
    [{"op": "test", "path": "/spec/containers", "value": [{"name": "c"}]}],  # not a string
    [{"op": "remove", "path": "/status/podIP"}],  # missing member
    [{"op": "replace", "path": "/status/podIP", "value": "x"}],
    [{"op": "add", "path": "/nope/x", "value": 1}],  # missing parent
    [{"op": "add", "path": "/spec/containers/0/image", "value": "nginx"}],  # through a list
    [{"op": "add", "path": "/metadata/labels/b~1c", "value": "2"}],  # an escape
    [{"op": "add", "path": "/status/phase"}],  # no value
    [{"op": "add", "path": "", "value": {"kind": "X"}}],  # the root
    [{"op": "add", "path": "/status/phase", "value": "Running"}, {"op": "remove", "path": "/status/x"}],
]


@pytest.mark.parametrize("ops", PLAIN_AND_NOT)
def test_plain_ops_give_what_the_library_gives(ops: list, monkeypatch: pytest.MonkeyPatch) -> None:
    """Plain ops are applied without building the library's objects; every answer (result or
    error, and the target left untouched) must be the library's own."""
    from vkube.api import patch as patch_mod

    def outcome() -> object:
        import copy

        target = copy.deepcopy(POD)
        try:
            out = apply_json_patch(target, copy.deepcopy(ops))
        except errors.StatusError as e:
            out = (type(e).__name__, e.code, e.message)
        assert target == POD
        return out

    fast = outcome()
    monkeypatch.setattr(patch_mod, "_plain_op", lambda doc, op: False)
    assert fast == outcome()


def test_patched_document_owns_the_values_it_was_given() -> None:
    """As the library does, an added or replacing value is copied: the same patch applied
    again (a retried write) or a later change of the result never sees the other."""
    ops = [{"op": "replace", "path": "/status", "value": {"phase": "Pending", "conditions": [{"type": "Ready"}]}},
           {"op": "add", "path": "/metadata/labels", "value": {"a": "2"}}]
    first = apply_json_patch(POD, ops)
    first["status"]["conditions"].append({"type": "Extra"})
    first["metadata"]["labels"]["b"] = "3"
    assert ops[0]["value"] == {"phase": "Pending", "conditions": [{"type": "Ready"}]}
    assert ops[1]["value"] == {"a": "2"}
    assert apply_json_patch(POD, ops)["status"]["conditions"] == [{"type": "Ready"}]
