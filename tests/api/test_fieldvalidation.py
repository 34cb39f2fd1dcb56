"""Unknown and duplicate fields, in Kubernetes' wording."""

from __future__ import annotations

import pytest

from vkube.api import errors
from vkube.api.fieldvalidation import duplicate_fields, strict_decoding_error, unknown_fields
from vkube.api.kinds import Registry
from vkube.api.openapi import OpenAPI


@pytest.fixture(scope="module")
def api() -> OpenAPI:
    return OpenAPI(Registry())


def test_unknown_fields_in_builtin(api: OpenAPI) -> None:
    dep = {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "x", "labels": {"any": "thing"}, "bogus": 1},
        "spec": {"replica": 2, "template": {"spec": {"containers": [
            {"name": "a", "image": "i", "resources": {"limits": {"cpu": "1"}}},
            {"name": "b", "imagex": "i"},
        ]}}},
    }
    assert unknown_fields(dep, api.schema_for("apps", "v1", "Deployment")) == [
        'unknown field "metadata.bogus"',
        'unknown field "spec.replica"',
        'unknown field "spec.template.spec.containers[1].imagex"',
    ]


def test_raw_extension_and_managed_fields_accept_anything(api: OpenAPI) -> None:
    pod = {"metadata": {"managedFields": [{"manager": "m", "fieldsV1": {"f:spec": {"f:x": {}}}}]}}
    assert unknown_fields(pod, api.schema_for("", "v1", "Pod")) == []
    crd_schema = api.schema_for("apiextensions.k8s.io", "v1", "CustomResourceDefinition")
    crd = {"spec": {"versions": [{"name": "v1", "schema": {"openAPIV3Schema": {"type": "object", "default": {"a": 1}, "x-kubernetes-preserve-unknown-fields": True}}}]}}
    assert unknown_fields(crd, crd_schema) == []


def test_custom_resource_schema(api: OpenAPI) -> None:
    api.add_schema("example.com", "v1", "Widget", {
        "type": "object",
        "properties": {
            "spec": {"type": "object", "properties": {
                "size": {"type": "integer"},
                "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                "tags": {"type": "object", "additionalProperties": {"type": "string"}},
                "template": {"type": "object", "x-kubernetes-embedded-resource": True, "properties": {"spec": {"type": "object"}}},
                "sealed": {"type": "object"},
            }},
        },
    })
    schema = api.schema_for("example.com", "v1", "Widget")
    obj = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"},
           "spec": {"size": 1, "sise": 2, "free": {"x": {"y": 1}}, "tags": {"a": "b"},
                    "template": {"apiVersion": "v1", "kind": "Pod", "metadata": {}, "spec": {}, "other": 1},
                    "sealed": {"nope": 1}}}
    assert unknown_fields(obj, schema) == [
        'unknown field "spec.sise"', 'unknown field "spec.template.other"', 'unknown field "spec.sealed.nope"',
    ]
    assert unknown_fields(obj, None) == []


def test_duplicate_fields_json() -> None:
    raw = b'{"metadata": {"name": "a", "name": "b"}, "spec": {"replicas": 1, "list": [{"x": 1, "x": 2}], "replicas": 2}}'
    assert duplicate_fields(raw, "application/json; charset=utf-8") == [
        'duplicate field "metadata.name"', 'duplicate field "spec.list[0].x"', 'duplicate field "spec.replicas"',
    ]
    assert duplicate_fields(b'{"a": {"b": 1}, "b": 1}', "application/json") == []


def test_duplicate_fields_yaml() -> None:
    raw = b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n  name: b\ndata:\n  x: '1'\ndata: {}\n"
    assert duplicate_fields(raw, "application/yaml") == [
        'line 5: key "name" already set in map', 'line 8: key "data" already set in map',
    ]
    assert duplicate_fields(b"a: 1\nb: {a: 1}\n", "application/apply-patch+yaml") == []


@pytest.mark.parametrize(("raw", "ctype"), [(b"{nope", "application/json"), (b"a: [", "application/yaml")])
def test_undecodable_body_is_400(raw: bytes, ctype: str) -> None:
    with pytest.raises(errors.BadRequest):
        duplicate_fields(raw, ctype)


def test_strict_error_message() -> None:
    err = strict_decoding_error("Deployment", "v1", ['unknown field "spec.replica"'])
    assert err.code == 400
    assert err.message == 'Deployment in version "v1" cannot be handled as a Deployment: strict decoding error: unknown field "spec.replica"'


@pytest.mark.parametrize("raw", [
    b'{"metadata":{"name":"a","name":"b"}}',  # compact, as vkube's and Go's clients write
    b'{"a":1,"b":{"c":[{"x":1,"x":1}]}}',
    b'{"a":1,"a":1}',
])
def test_duplicate_fields_in_compact_json(raw: bytes) -> None:
    """The fast path (orjson writes the body back byte for byte: no key repeats) never hides a
    repeat: a repeated key is missing from the rewrite, so such bodies take the full check."""
    assert duplicate_fields(raw, "application/json")
    assert duplicate_fields(b'{"metadata":{"name":"a"},"data":{"k":"\\u00e9"}}', "application/json") == []
    assert duplicate_fields(b'{"n":1e3,"m":12345678901234567890123}', "application/json") == []
