"""The error tree renders kube-apiserver's Status objects (errors.go in k8s.io/apimachinery)."""

from __future__ import annotations

import orjson

from vkube.api import errors
from vkube.apiserver.http import status_bytes

ORDER = ["kind", "apiVersion", "metadata", "status", "message", "reason", "details", "code"]


def test_every_reason_keeps_go_key_order() -> None:
    made = [
        errors.not_found("pods", "p"), errors.already_exists("deployments", "d", group="apps"),
        errors.conflict("configmaps", "c"), errors.invalid("Pod", "p", [errors.field_error(
            "spec.x", "Required value", reason="FieldValueRequired")]),
        errors.BadRequest("bad"), errors.method_not_allowed(), errors.resource_expired("old"),
        errors.request_entity_too_large("limit is 1"), errors.UnsupportedMediaType("x"),
        errors.NotAcceptable("y"), errors.forbidden("pods", "p", "no"),
        errors.internal_error("boom"), errors.timeout("slow", 2),
        errors.TooManyRequests("later", retry_after=10), errors.server_rejected(),
    ]
    for err in made:
        st = err.to_status()
        keys = list(st)
        assert keys == [k for k in ORDER if k in keys], (err, keys)
        assert st["code"] == err.code and st["status"] == "Failure"
        for cause in (st.get("details") or {}).get("causes", ()):
            assert list(cause) == [k for k in ("reason", "message", "field") if k in cause]


def test_messages_and_details_as_upstream() -> None:
    st = errors.not_found("pods", "p").to_status()
    assert st["details"] == {"name": "p", "kind": "pods"}  # no empty group
    st = errors.already_exists("deployments", "d", group="apps").to_status()
    assert st["message"] == 'deployments.apps "d" already exists'
    assert list(st["details"]) == ["name", "group", "kind"]
    assert errors.BadRequest("x").to_status().get("details") is None
    assert errors.method_not_allowed().to_status()["details"] == {}
    assert errors.method_not_supported("pods", "watch").message == (
        'watch is not supported on resources of kind "pods"')
    t = errors.timeout("Too large resource version: 9, current: 3", 1)
    assert t.message == "Timeout: Too large resource version: 9, current: 3"
    assert t.to_status()["details"] == {"retryAfterSeconds": 1} and t.retry_after == 1
    big = errors.too_large_resource_version(9, 3).to_status()
    assert big["details"]["causes"] == [{"reason": "ResourceVersionTooLarge",
                                         "message": "Too large resource version"}]
    ie = errors.internal_error("disk on fire").to_status()
    assert ie["message"] == "Internal error occurred: disk on fire"
    assert ie["details"] == {"causes": [{"message": "disk on fire"}]}
    fb = errors.forbidden("pods", "", "nope").to_status()
    assert fb["message"] == "pods is forbidden: nope" and fb["details"] == {"kind": "pods"}


def test_invalid_aggregates_like_go() -> None:
    a = errors.field_error("spec.a", "Required value", reason="FieldValueRequired")
    b = errors.field_error("spec.b", 'Invalid value: "x": bad')
    one = errors.invalid("Deployment", "d", [a], group="apps")
    assert one.message == 'Deployment.apps "d" is invalid: spec.a: Required value'
    assert one.to_status()["details"] == {"name": "d", "group": "apps", "kind": "Deployment",
                                          "causes": [a]}
    two = errors.invalid("Pod", "p", [a, b, dict(a)])  # duplicates are listed once
    assert two.message == 'Pod "p" is invalid: [spec.a: Required value, spec.b: Invalid value: "x": bad]'
    assert len(two.causes) == 3
    assert errors.invalid("Pod", "p", []).message == 'Pod "p" is invalid'
    # the cause's message leaves the path to ``field``
    assert a == {"reason": "FieldValueRequired", "message": "Required value", "field": "spec.a"}


def test_bytes_escape_like_go_and_end_with_a_newline() -> None:
    body = status_bytes(errors.BadRequest("a <b> & c \u2028"))
    assert body.endswith(b"}\n")
    assert b"\\u003cb\\u003e \\u0026 c \\u2028" in body
    assert orjson.loads(body)["message"] == "a <b> & c \u2028"


def test_from_status_round_trips() -> None:
    st = errors.conflict("configmaps", "c").to_status()
    err = errors.from_status(st)
    assert isinstance(err, errors.Conflict) and err.to_status() == st
    err = errors.from_status({"code": 429, "reason": "TooManyRequests", "message": "m",
                              "details": {"retryAfterSeconds": 3}})
    assert err.retry_after == 3
