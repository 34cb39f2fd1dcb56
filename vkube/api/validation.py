"""Validation primitives shared by every kind: field errors worded as Kubernetes words them
(``field.Invalid`` → ``path: Invalid value: "x": detail``), name and label syntax, ObjectMeta.

Each validator returns a list of ``StatusCause`` dicts (``errors.field_error``); empty = valid.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from typing import Any

from vkube.api.errors import field_error

Causes = list[dict[str, str]]
NameValidator = Callable[[str, bool], list[str]]  # (name, prefix) -> messages

__all__ = [
    "Causes", "required", "invalid_value", "not_supported", "duplicate", "too_long", "forbidden",
    "dns1123_label", "dns1123_subdomain", "path_segment_name", "qualified_name", "label_value",
    "validate_labels", "validate_annotations", "validate_object_meta", "validate_object_meta_update",
    "validate_immutable", "validate_label_selector", "validate_nonnegative",
]

# --- field errors, with Kubernetes' wording ------------------------------------------------


def _fmt(value: Any) -> str:
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (int, float)):
        return str(value)
    return json.dumps(value, separators=(",", ":"), sort_keys=True, default=str)


def required(path: str, detail: str = "") -> dict[str, str]:
    return field_error(path, "Required value" + (f": {detail}" if detail else ""),
                       reason="FieldValueRequired")


def invalid_value(path: str, value: Any, detail: str = "") -> dict[str, str]:
    return field_error(path, f"Invalid value: {_fmt(value)}" + (f": {detail}" if detail else ""),
                       reason="FieldValueInvalid")


def not_supported(path: str, value: Any, supported: Iterable[str]) -> dict[str, str]:
    values = ", ".join(json.dumps(s) for s in supported)
    return field_error(path, f"Unsupported value: {_fmt(value)}: supported values: {values}",
                       reason="FieldValueNotSupported")


def duplicate(path: str, value: Any) -> dict[str, str]:
    return field_error(path, f"Duplicate value: {_fmt(value)}", reason="FieldValueDuplicate")


def too_long(path: str, max_len: int, unit: str = "bytes") -> dict[str, str]:
    return field_error(path, f"Too long: may not be more than {max_len} {unit}",
                       reason="FieldValueTooLong")


def forbidden(path: str, detail: str) -> dict[str, str]:
    return field_error(path, f"Forbidden: {detail}", reason="FieldValueForbidden")


# --- names -------------------------------------------------------------------------------

_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_LABEL = re.compile(rf"^{_LABEL}\Z")
_DNS1123_SUBDOMAIN = re.compile(rf"^{_LABEL}(\.{_LABEL})*\Z")
_QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]\Z")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?\Z")

_LABEL_MSG = ("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or "
              "'-', and must start and end with an alphanumeric character (e.g. 'my-name',  or "
              "'123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')")
_SUBDOMAIN_MSG = ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
                  "characters, '-' or '.', and must start and end with an alphanumeric character "
                  "(e.g. 'example.com', regex used for validation is "
                  "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")
_QUALIFIED_MSG = ("name part must consist of alphanumeric characters, '-', '_' or '.', and must "
                  "start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  "
                  "or '123-abc', regex used for validation is "
                  "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')")
_LABEL_VALUE_MSG = ("a valid label must be an empty string or consist of alphanumeric characters, "
                    "'-', '_' or '.', and must start and end with an alphanumeric character (e.g. "
                    "'MyValue',  or 'my_value',  or '12345', regex used for validation is "
                    "'(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')")


def _mask_prefix(name: str, prefix: bool) -> str:
    """generateName prefixes may end in '-': validate as if a suffix followed."""
    return name + "a" if prefix and name else name


def dns1123_label(name: str, prefix: bool = False) -> list[str]:
    """Namespace, Service and container names: at most 63 chars, ``[a-z0-9]([-a-z0-9]*[a-z0-9])?``."""
    value = _mask_prefix(name, prefix)
    errs = []
    if len(value) > 63:
        errs.append("must be no more than 63 characters")
    if not _DNS1123_LABEL.match(value):
        errs.append(_LABEL_MSG)
    return errs


def dns1123_subdomain(name: str, prefix: bool = False) -> list[str]:
    """Most object names: at most 253 chars, dot-separated DNS-1123 labels."""
    value = _mask_prefix(name, prefix)
    errs = []
    if len(value) > 253:
        errs.append("must be no more than 253 characters")
    if not _DNS1123_SUBDOMAIN.match(value):
        errs.append(_SUBDOMAIN_MSG)
    return errs


def path_segment_name(name: str, prefix: bool = False) -> list[str]:
    """RBAC objects (and a few others) only need to be usable as a URL path segment."""
    if not prefix and name in (".", ".."):
        return [f"may not be '{name}'"]
    for bad in ("/", "%"):
        if bad in name:
            return [f"may not contain '{bad}'"]
    return []


def qualified_name(value: str) -> list[str]:
    """Label / annotation keys and finalizers: ``[prefix/]name``, prefix a DNS subdomain."""
    errs: list[str] = []
    if value.count("/") > 1:
        return ["a qualified name must consist of alphanumeric characters, '-', '_' or '.', and "
                "must start and end with an alphanumeric character (e.g. 'MyName',  or "
                "'my.name',  or '123-abc', regex used for validation is "
                "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain "
                "prefix and '/' (e.g. 'example.com/MyName')"]
    prefix, sep, name = value.rpartition("/")
    if sep:
        if not prefix:
            errs.append("prefix part must be non-empty")
        else:
            errs.extend("prefix part " + m for m in dns1123_subdomain(prefix))
    if not name:
        errs.append("name part must be non-empty")
    elif len(name) > 63:
        errs.append("name part must be no more than 63 characters")
    elif not _QUALIFIED_NAME.match(name):
        errs.append(_QUALIFIED_MSG)
    return errs


def label_value(value: str) -> list[str]:
    errs = []
    if len(value) > 63:
        errs.append("must be no more than 63 characters")
    if not _LABEL_VALUE.match(value):
        errs.append(_LABEL_VALUE_MSG)
    return errs


# --- ObjectMeta ----------------------------------------------------------------------------

_MAX_ANNOTATIONS = 256 * 1024


def validate_labels(labels: Any, path: str) -> Causes:
    if labels is None:
        return []
    if not isinstance(labels, dict):
        return [invalid_value(path, labels, "must be a map of string keys to string values")]
    causes: Causes = []
    for key, value in labels.items():
        for msg in qualified_name(str(key)):
            causes.append(invalid_value(path, key, msg))
        if not isinstance(value, str):
            causes.append(invalid_value(f"{path}.{key}", value, "must be a string"))
            continue
        for msg in label_value(value):
            causes.append(invalid_value(path, value, msg))
    return causes


def validate_annotations(annotations: Any, path: str) -> Causes:
    if annotations is None:
        return []
    if not isinstance(annotations, dict):
        return [invalid_value(path, annotations, "must be a map of string keys to string values")]
    causes: Causes = []
    total = 0
    for key, value in annotations.items():
        for msg in qualified_name(str(key).lower()):
            causes.append(invalid_value(path, key, msg))
        total += len(str(key)) + len(str(value) if value is not None else "")
    if total > _MAX_ANNOTATIONS:
        causes.append(too_long(path, _MAX_ANNOTATIONS))
    return causes


def validate_object_meta(obj: dict[str, Any], *, namespaced: bool,
                         name_validator: NameValidator = dns1123_subdomain) -> Causes:
    """``ValidateObjectMeta``: names, namespace scope, labels, annotations, owners, finalizers."""
    meta = obj.get("metadata")
    if not isinstance(meta, dict):
        return [required("metadata")]
    causes: Causes = []
    name, generate = meta.get("name"), meta.get("generateName")
    if generate:
        for msg in name_validator(str(generate), True):
            causes.append(invalid_value("metadata.generateName", generate, msg))
    if not name:
        if not generate:
            causes.append(required("metadata.name", "name or generateName is required"))
    else:
        for msg in name_validator(str(name), False):
            causes.append(invalid_value("metadata.name", name, msg))
    ns = meta.get("namespace")
    if namespaced:
        if not ns:
            causes.append(required("metadata.namespace"))
        else:
            for msg in dns1123_label(str(ns)):
                causes.append(invalid_value("metadata.namespace", ns, msg))
    elif ns:
        causes.append(forbidden("metadata.namespace", "not allowed on this type"))
    causes += validate_labels(meta.get("labels"), "metadata.labels")
    causes += validate_annotations(meta.get("annotations"), "metadata.annotations")
    for i, ref in enumerate(meta.get("ownerReferences") or ()):
        path = f"metadata.ownerReferences[{i}]"
        for key in ("apiVersion", "kind", "name", "uid"):
            if not (ref or {}).get(key):
                causes.append(invalid_value(f"{path}.{key}", (ref or {}).get(key, ""),
                                            f"{key} must not be empty"))
    seen: set[str] = set()
    for i, fin in enumerate(meta.get("finalizers") or ()):
        for msg in qualified_name(str(fin)):
            causes.append(invalid_value(f"metadata.finalizers[{i}]", fin, msg))
        if fin in seen:
            causes.append(duplicate(f"metadata.finalizers[{i}]", fin))
        seen.add(fin)
    return causes


def validate_object_meta_update(new: dict[str, Any], old: dict[str, Any]) -> Causes:
    """Name, namespace, uid and creationTimestamp never change on update."""
    nm, om = new.get("metadata") or {}, old.get("metadata") or {}
    causes: Causes = []
    for key in ("name", "namespace", "uid", "creationTimestamp"):
        if key in om and nm.get(key) != om.get(key):
            causes.append(invalid_value(f"metadata.{key}", nm.get(key),
                                        "field is immutable"))
    return causes


# --- shared helpers for kinds ---------------------------------------------------------------


def validate_immutable(new: Any, old: Any, path: str) -> Causes:
    if new != old:
        return [invalid_value(path, new, "field is immutable")]
    return []


def validate_nonnegative(value: Any, path: str) -> Causes:
    if value is None:
        return []
    if not isinstance(value, int) or isinstance(value, bool):
        return [invalid_value(path, value, "must be an integer")]
    if value < 0:
        return [invalid_value(path, value, "must be greater than or equal to 0")]
    return []


_SELECTOR_OPS = ("In", "NotIn", "Exists", "DoesNotExist")


def validate_label_selector(sel: Any, path: str) -> Causes:
    """``metav1validation.ValidateLabelSelector``."""
    if sel is None:
        return []
    if not isinstance(sel, dict):
        return [invalid_value(path, sel, "must be a label selector object")]
    causes = validate_labels(sel.get("matchLabels"), f"{path}.matchLabels")
    for i, expr in enumerate(sel.get("matchExpressions") or ()):
        p = f"{path}.matchExpressions[{i}]"
        op, values = expr.get("operator"), expr.get("values") or []
        if op in ("In", "NotIn"):
            if not values:
                causes.append(required(f"{p}.values", "must be specified when `operator` is 'In' or 'NotIn'"))
        elif op in ("Exists", "DoesNotExist"):
            if values:
                causes.append(forbidden(f"{p}.values", "may not be specified when `operator` is 'Exists' or 'DoesNotExist'"))
        else:
            causes.append(invalid_value(f"{p}.operator", op, "not a valid selector operator"))
        for msg in qualified_name(str(expr.get("key", ""))):
            causes.append(invalid_value(f"{p}.key", expr.get("key", ""), msg))
    return causes
