"""Structural schemas applied to custom resources: pruning, defaulting, validation wording."""

from __future__ import annotations

from vkube.api.errors import cause_text
from vkube.api.structural import apply_defaults, prune, validate

SCHEMA = {
    "type": "object",
    "properties": {
        "spec": {
            "type": "object",
            "required": ["size"],
            "properties": {
                "size": {"type": "integer", "minimum": 1, "maximum": 10, "multipleOf": 1},
                "ratio": {"type": "number", "exclusiveMinimum": True, "minimum": 0,
                          "exclusiveMaximum": True, "maximum": 1},
                "step": {"type": "integer", "multipleOf": 5},
                "name": {"type": "string", "minLength": 2, "maxLength": 5, "pattern": "^[a-z]+$"},
                "mode": {"type": "string", "enum": ["fast", "slow"], "default": "slow"},
                "when": {"type": "string", "format": "date-time"},
                "addr": {"type": "string", "format": "ipv4"},
                "port": {"x-kubernetes-int-or-string": True},
                "tags": {"type": "array", "maxItems": 2, "minItems": 1, "uniqueItems": True,
                         "items": {"type": "string"}},
                "labels": {"type": "object", "maxProperties": 1, "minProperties": 1,
                           "additionalProperties": {"type": "string"}},
                "note": {"type": "string", "nullable": True},
                "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                "template": {"type": "object", "x-kubernetes-embedded-resource": True,
                             "properties": {"spec": {"type": "object", "properties": {
                                 "x": {"type": "integer", "default": 7}}}}},
                "items": {"type": "array", "items": {"type": "object", "properties": {
                    "a": {"type": "string", "default": "dflt"}}}},
            },
        },
    },
}


def messages(obj: dict) -> list[str]:
    return [cause_text(c) for c in validate(obj, SCHEMA)]


def test_prune_drops_unknown_fields_but_keeps_preserved_and_embedded_meta() -> None:
    obj = {"apiVersion": "x/v1", "kind": "K", "metadata": {"name": "n", "labels": {"a": "b"}},
           "spec": {"size": 1, "bogus": 1, "free": {"any": {"thing": 1}},
                    "template": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                                 "spec": {"x": 1, "y": 2}}},
           "extra": True}
    prune(obj, SCHEMA)
    assert "extra" not in obj and "bogus" not in obj["spec"]
    assert obj["metadata"] == {"name": "n", "labels": {"a": "b"}}
    assert obj["spec"]["free"] == {"any": {"thing": 1}}
    assert obj["spec"]["template"] == {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                                       "spec": {"x": 1}}


def test_defaults_fill_absent_fields_in_present_objects_and_list_items() -> None:
    obj = {"spec": {"size": 1, "template": {"spec": {}}, "items": [{}, {"a": "set"}]}}
    apply_defaults(obj, SCHEMA)
    assert obj["spec"]["mode"] == "slow"
    assert obj["spec"]["template"]["spec"]["x"] == 7
    assert obj["spec"]["items"] == [{"a": "dflt"}, {"a": "set"}]
    bare: dict = {}
    apply_defaults(bare, SCHEMA)
    assert bare == {}  # spec absent: nothing below it is defaulted


def test_validation_messages_as_kubernetes_words_them() -> None:
    assert messages({"spec": {}}) == ["spec.size: Required value"]
    assert messages({"spec": {"size": "x"}}) == [
        'spec.size: Invalid value: "string": spec.size in body must be of type integer: "string"']
    assert messages({"spec": {"size": 11}}) == [
        "spec.size: Invalid value: 11: spec.size in body should be less than or equal to 10"]
    assert messages({"spec": {"size": 0}}) == [
        "spec.size: Invalid value: 0: spec.size in body should be greater than or equal to 1"]
    assert messages({"spec": {"size": 1, "ratio": 1}}) == [
        "spec.ratio: Invalid value: 1: spec.ratio in body should be less than 1"]
    assert messages({"spec": {"size": 1, "ratio": 0}}) == [
        "spec.ratio: Invalid value: 0: spec.ratio in body should be greater than 0"]
    assert messages({"spec": {"size": 1, "step": 7}}) == [
        "spec.step: Invalid value: 7: spec.step in body should be a multiple of 5"]
    assert messages({"spec": {"size": 1, "name": "toolong"}}) == [
        "spec.name: Too long: may not be more than 5 bytes"]
    assert messages({"spec": {"size": 1, "name": "a"}}) == [
        'spec.name: Invalid value: "a": spec.name in body should be at least 2 chars long']
    assert messages({"spec": {"size": 1, "name": "AB"}}) == [
        "spec.name: Invalid value: \"AB\": spec.name in body should match '^[a-z]+$'"]
    assert messages({"spec": {"size": 1, "mode": "warp"}}) == [
        'spec.mode: Unsupported value: "warp": supported values: "fast", "slow"']
    assert messages({"spec": {"size": 1, "when": "yesterday"}}) == [
        'spec.when: Invalid value: "yesterday": spec.when in body must be of type date-time: "yesterday"']
    assert messages({"spec": {"size": 1, "addr": "1.2.3"}}) == [
        'spec.addr: Invalid value: "1.2.3": spec.addr in body must be of type ipv4: "1.2.3"']
    assert messages({"spec": {"size": 1, "tags": ["a", "b", "c"]}}) == [
        "spec.tags: Too many: 3: must have at most 2 items"]
    assert messages({"spec": {"size": 1, "tags": []}}) == [
        "spec.tags: Invalid value: 0: spec.tags in body should have at least 1 items"]
    assert messages({"spec": {"size": 1, "tags": ["a", "a"]}}) == ['spec.tags[1]: Duplicate value: "a"']
    assert messages({"spec": {"size": 1, "labels": {"a": "1", "b": "2"}}}) == [
        "spec.labels: Too many: 2: must have at most 1 items"]
    assert messages({"spec": {"size": 1, "labels": {}}}) == [
        "spec.labels: Invalid value: 0: spec.labels in body should have at least 1 properties"]
    assert messages({"spec": {"size": 1, "labels": {"a": 1}}}) == [
        'spec.labels.a: Invalid value: "integer": spec.labels.a in body must be of type string: "integer"']
    assert messages({"spec": {"size": 1, "port": True}}) == [
        'spec.port: Invalid value: "boolean": spec.port in body must be of type integer,string: "boolean"']
    assert messages({"spec": {"size": 1, "template": {"spec": {}}}}) == [
        "spec.template.apiVersion: Required value: must not be empty",
        "spec.template.kind: Required value: must not be empty"]
    assert messages({"spec": {"size": 1, "items": [{"a": 1}]}}) == [
        'spec.items[0].a: Invalid value: "integer": spec.items[0].a in body must be of type string: "integer"']


def test_valid_values_pass() -> None:
    assert messages({"spec": {"size": 10, "ratio": 0.5, "step": 10, "name": "ab", "mode": "fast",
                              "when": "2024-01-02T03:04:05Z", "addr": "10.0.0.1", "port": "http",
                              "tags": ["a"], "labels": {"a": "b"}, "note": None, "size2": 1}}) == []
    assert messages({"spec": {"size": 2.0, "port": 8080}}) == []


def test_junctions_validate_the_same_value() -> None:
    schema = {"type": "object", "properties": {
        "port": {"x-kubernetes-int-or-string": True,
                 "anyOf": [{"type": "integer", "maximum": 65535}, {"type": "string", "pattern": "^[a-z]+$"}]},
        "mode": {"type": "string", "oneOf": [{"enum": ["a", "b"]}, {"enum": ["b", "c"]}]},
        "name": {"type": "string", "allOf": [{"minLength": 2}], "not": {"enum": ["admin"]}},
    }}

    def msgs(obj: dict) -> list[str]:
        return [cause_text(c) for c in validate(obj, schema)]

    assert msgs({"port": 80, "mode": "a", "name": "bob"}) == []
    assert msgs({"port": "http", "mode": "c"}) == []
    assert msgs({"port": 70000}) == ["port: Invalid value: 70000: must validate at least one schema (anyOf)"]
    assert msgs({"mode": "b"}) == [
        'mode: Invalid value: "b": must validate one and only one schema (oneOf). Found 2 valid alternatives']
    assert msgs({"name": "x"}) == ['name: Invalid value: "x": name in body should be at least 2 chars long']
    assert msgs({"name": "admin"}) == ['name: Invalid value: "admin": must not validate the schema (not)']
