"""The ``scale`` subresource's object: an ``autoscaling/v1`` Scale read from (and written back
into) the resource's own object along its ScaleSpec paths — deployments, replicasets,
statefulsets, replicationcontrollers and custom resources alike. Admission of a ``*/scale``
write sees Scales, as upstream's ``scaleUpdatedObjectInfo`` and ``toScaleUpdateValidation``
hand them to the admission chain (``ResourceStorage._admit_scale``)."""

from __future__ import annotations

from typing import Any

from vkube.api import errors
from vkube.api.kinds import ResourceSpec
from vkube.api.meta import Obj
from vkube.api.selectors import selector_to_string
from vkube.api.typecheck import describe, type_errors

__all__ = ["SCALE", "to_scale", "check_scale", "scale_replicas", "get_path", "set_path"]

#: the kind admission sees for ``*/scale`` (not a served resource: no plural of its own)
SCALE = ResourceSpec("autoscaling", "v1", "Scale", "", "", True)


def get_path(obj: Obj, path: str) -> Any:
    cur: Any = obj
    for part in path.strip(".").split("."):
        if not isinstance(cur, dict):
            return None
        cur = cur.get(part)
    return cur


def set_path(obj: Obj, path: str, value: Any) -> None:
    parts = path.strip(".").split(".")
    cur = obj
    for i, part in enumerate(parts[:-1]):
        cur = cur.setdefault(part, {})
        if not isinstance(cur, dict):  # ``unstructured.SetNestedField``'s error
            raise errors.internal_error(
                f"value cannot be set because .{'.'.join(parts[:i + 1])} is not a map[string]interface{{}}")
    cur[parts[-1]] = value


def _go_v(value: Any) -> str:
    """A value as Go's ``%v`` prints an unstructured one."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "<nil>"
    if isinstance(value, float):
        return repr(value).replace("inf", "+Inf")
    if isinstance(value, list):
        return "[" + " ".join(_go_v(v) for v in value) + "]"
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{_go_v(v)}" for k, v in sorted(value.items())) + "]"
    return str(value)


def _go_t(value: Any) -> str:
    """A value's type as Go's ``%T`` names an unstructured one."""
    if isinstance(value, bool):
        return "bool"
    return {str: "string", int: "int64", float: "float64", list: "[]interface {}",
            dict: "map[string]interface {}"}.get(type(value), "<nil>")


def _nested(obj: Obj, path: str, want: type, go_type: str) -> Any:
    """``unstructured.NestedInt64``/``NestedString``: the value at ``path`` (None when absent),
    or upstream's accessor error (``.spec.replicas accessor error: many is of the type string,
    expected int64``) — a 500, as the apiextensions server answers a CR it cannot read a Scale from."""
    fields = path.strip(".").split(".")
    cur: Any = obj
    for i, part in enumerate(fields):
        if cur is None:
            return None
        if not isinstance(cur, dict):
            raise errors.internal_error(f'.{".".join(fields[:i + 1])} accessor error: {_go_v(cur)} is of the type '
                                        f"{_go_t(cur)}, expected map[string]interface{{}}")
        if part not in cur:
            return None
        cur = cur[part]
    if not isinstance(cur, want) or isinstance(cur, bool):
        raise errors.internal_error(f".{'.'.join(fields)} accessor error: {_go_v(cur)} is of the type {_go_t(cur)}, "
                                    f"expected {go_type}")
    return cur


def to_scale(spec: ResourceSpec, obj: Obj) -> Obj:
    """``scaleFromCustomResource`` (the built-in kinds' typed fields give the same answers)."""
    assert spec.scale is not None
    m = obj.get("metadata") or {}
    replicas = _nested(obj, spec.scale.spec_replicas_path, int, "int64") or 0
    status_replicas = _nested(obj, spec.scale.status_replicas_path, int, "int64") or 0
    selector: Any = None
    if spec.scale.label_selector_path:
        selector = get_path(obj, spec.scale.label_selector_path)
        if isinstance(selector, dict) and not getattr(spec.strategy, "custom", False):  # a typed LabelSelector
            selector = selector_to_string(selector)
        else:
            selector = _nested(obj, spec.scale.label_selector_path, str, "string")
    status: Obj = {"replicas": status_replicas}
    if selector:
        status["selector"] = selector
    return {
        "kind": "Scale", "apiVersion": "autoscaling/v1",
        "metadata": {k: m[k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp") if k in m},
        "spec": {"replicas": replicas},
        "status": status,
    }


def scale_replicas(scale: Any, name: str) -> int:
    """``ValidateScale``: the Scale's ``spec.replicas``, or upstream's 422."""
    replicas = get_path(scale, "spec.replicas") if isinstance(scale, dict) else None
    if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
        raise errors.invalid("Scale", name, [errors.field_error(
            "spec.replicas", f"Invalid value: {errors.go_value(replicas)}: must be greater "
            "than or equal to 0")], group="autoscaling")
    return replicas


def check_scale(scale: Any, name: str, namespace: str | None, schema: dict | None) -> None:
    """A PUT body or patched Scale as the handler decodes it (a 400 for a value its Go type
    cannot hold: ``spec.replicas: 2147483648`` into an int32) and ``checkName`` (its name and
    namespace are the URL's)."""
    if not isinstance(scale, dict):
        raise errors.BadRequest("the body of the request must be a Scale object")
    problems = type_errors(scale, schema)
    if problems:
        raise errors.BadRequest(
            'Scale in version "v1" cannot be handled as a Scale: ' + describe(problems),
            causes=[errors.field_error(p, m, reason="FieldValueTypeInvalid") for p, m in problems])
    m = scale.get("metadata")
    m = m if isinstance(m, dict) else {}
    if m.get("name") not in (None, "", name):
        raise errors.BadRequest(f'the name of the object ({m.get("name")}) does not match the name on the URL ({name})')
    if namespace is not None and m.get("namespace") not in (None, "", namespace):
        raise errors.BadRequest(
            "the namespace of the provided object does not match the namespace sent on the request")
