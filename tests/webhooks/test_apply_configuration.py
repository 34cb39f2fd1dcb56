"""How a MutatingAdmissionPolicy's apply configuration merges into an object: maps field by
field, ``listType: map`` lists by their keys, ``set`` lists as a union, other lists replaced
(server-side apply's merge, without field ownership)."""

from __future__ import annotations

from vkube.apiserver.admission.mutatingpolicies import apply_configuration

SCHEMA = {"type": "object", "properties": {
    "spec": {"type": "object", "properties": {
        "containers": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
                       "items": {"type": "object", "properties": {"name": {"type": "string"},
                                                                  "args": {"type": "array", "items": {"type": "string"}}}}},
        "finalizers": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}},
        "args": {"type": "array", "items": {"type": "string"}},
    }}}}


def test_maps_merge_and_lists_follow_their_list_type():
    obj = {"spec": {"containers": [{"name": "a", "image": "x"}, {"name": "b", "image": "y"}],
                    "finalizers": ["one"], "args": ["1", "2"], "keep": True}}
    config = {"spec": {"containers": [{"name": "b", "imagePullPolicy": "Always"}, {"name": "c", "image": "z"}],
                       "finalizers": ["two", "one"], "args": ["3"]}, "metadata": {"labels": {"l": "v"}}}
    out = apply_configuration(obj, config, SCHEMA)
    assert out["spec"]["containers"] == [{"name": "a", "image": "x"},
                                         {"name": "b", "image": "y", "imagePullPolicy": "Always"},
                                         {"name": "c", "image": "z"}]
    assert out["spec"]["finalizers"] == ["one", "two"]
    assert out["spec"]["args"] == ["3"]  # atomic: replaced
    assert out["spec"]["keep"] is True and out["metadata"] == {"labels": {"l": "v"}}
    assert obj["spec"]["containers"][1] == {"name": "b", "image": "y"}  # the input is not changed
