"""CEL types of a CRD's structural schema, as Kubernetes declares them to its CEL type checker
(``SchemaDeclType`` in k8s.io/apiserver/pkg/cel/common): objects with their properties as
fields, maps for ``additionalProperties``, ``dyn`` for int-or-string, timestamps and durations
for formatted strings — each with the bound on its size that the cost estimator uses
(``maxLength``/``maxItems``/``maxProperties``, else as many as fit in one request).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

Schema = dict[str, Any]

__all__ = ["CelType", "MAX_REQUEST", "decl_type", "value_type", "type_name", "primitive"]

#: Kubernetes' celconfig.MaxRequestSizeBytes (the size bound of everything without a max*).
MAX_REQUEST = 3 * 1024 * 1024
_MIN_STRING, _MIN_BOOL, _MIN_NUMBER = 2, 4, 1
_MAX_DURATION_JSON, _MAX_DATETIME_JSON, _DATE_JSON = 32, 32, 12


@dataclass(frozen=True, slots=True, eq=False)
class CelType:
    """A CEL type: ``kind`` is the CEL type name (``int``, ``string``, ``list``, ``map``,
    ``object``, ``optional``, ``dyn``, …); ``max_elements`` bounds characters of strings and
    elements of lists and maps; ``min_size`` is the smallest JSON it serializes to."""

    kind: str
    elem: "CelType | None" = None  # list element, map value, optional's value
    key: "CelType | None" = None  # map key
    fields: dict[str, "CelType"] = field(default_factory=dict)  # object properties
    max_elements: int = 0
    min_size: int = 1

    def with_max(self, n: int) -> "CelType":
        return CelType(self.kind, self.elem, self.key, self.fields, n, self.min_size)


_PRIMS = {k: CelType(k, max_elements=m) for k, m in (
    ("int", 1), ("uint", 1), ("double", 1), ("bool", 1), ("null_type", 1), ("dyn", MAX_REQUEST),
    ("string", MAX_REQUEST), ("bytes", MAX_REQUEST), ("duration", 1), ("timestamp", 1), ("type", 1),
    ("quantity", 1), ("url", 1), ("ip", 1), ("cidr", 1), ("semver", 1), ("format", 1))}


def primitive(kind: str) -> CelType:
    return _PRIMS[kind]


def type_name(t: CelType) -> str:
    """The name CEL's checker prints in its errors."""
    if t.kind == "list":
        return f"list({type_name(t.elem or primitive('dyn'))})"
    if t.kind == "map":
        return f"map({type_name(t.key or primitive('dyn'))}, {type_name(t.elem or primitive('dyn'))})"
    if t.kind == "optional":
        return f"optional_type({type_name(t.elem or primitive('dyn'))})"
    if t.kind == "quantity":
        return "kubernetes.Quantity"
    if t.kind in ("ip", "cidr"):
        return f"net.{t.kind.upper()}"
    if t.kind in ("url", "semver", "format"):
        return {"url": "kubernetes.URL", "semver": "kubernetes.Semver", "format": "kubernetes.NamedFormat"}[t.kind]
    return t.kind


def _with_type_and_object_meta(schema: Schema) -> Schema:
    """At a resource's root (and of embedded resources) apiVersion, kind, metadata.name and
    metadata.generateName are always visible to rules."""
    props = dict(schema.get("properties") or {})
    props.setdefault("apiVersion", {"type": "string"})
    props.setdefault("kind", {"type": "string"})
    meta = dict(props.get("metadata") or {"type": "object"})
    meta_props = dict(meta.get("properties") or {})
    meta_props.setdefault("name", {"type": "string"})
    meta_props.setdefault("generateName", {"type": "string"})
    props["metadata"] = {**meta, "type": "object", "properties": meta_props}
    return {**schema, "type": "object", "properties": props}


def _max_string(schema: Schema) -> int:
    if schema.get("maxLength") is not None:
        return max(int(schema["maxLength"]), 0) * 4  # maxLength counts code points; up to 4 bytes each
    enum = schema.get("enum")
    if enum:
        return max((len(v) for v in enum if isinstance(v, str)), default=0)
    return MAX_REQUEST - 2


def decl_type(schema: Schema | None, root: bool = False) -> CelType | None:
    """The CEL type of values of ``schema`` (None: no type, as for an array without items)."""
    if not isinstance(schema, dict):
        return None
    if schema.get("x-kubernetes-int-or-string"):
        n = max(int(schema["maxLength"]), 0) * 4 if schema.get("maxLength") is not None else MAX_REQUEST - 2
        return CelType("dyn", max_elements=n, min_size=1)
    if (root or schema.get("x-kubernetes-embedded-resource")) and schema.get("type", "object") == "object":
        schema = _with_type_and_object_meta(schema)
    t = schema.get("type")
    if t == "array":
        items = decl_type(schema.get("items"))
        if items is None:
            return None
        n = schema.get("maxItems")
        n = max(int(n), 0) if n is not None else (MAX_REQUEST - 2) // (items.min_size + 1)
        return CelType("list", elem=items, max_elements=n, min_size=2)
    if t == "object":
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            value = decl_type(extra)
            if value is None:
                return None
            n = schema.get("maxProperties")
            n = max(int(n), 0) if n is not None else (MAX_REQUEST - 2) // (value.min_size + 6)
            # keys have no size bound of their own (Kubernetes' StringType has MaxElements 0)
            return CelType("map", elem=value, key=primitive("string").with_max(0), max_elements=n, min_size=2)
        fields: dict[str, CelType] = {}
        required = set(schema.get("required") or ())
        min_size = 2
        for name, prop in (schema.get("properties") or {}).items():
            ft = decl_type(prop)
            if ft is None:
                continue
            fields[name] = ft
            if name in required and isinstance(prop, dict) and "default" not in prop:
                min_size += len(name) + ft.min_size + 4
        return CelType("object", fields=fields, max_elements=0, min_size=min_size)
    if t == "string":
        fmt = schema.get("format")
        if fmt == "byte":
            n = max(int(schema["maxLength"]), 0) if schema.get("maxLength") is not None else MAX_REQUEST - 2
            return CelType("bytes", max_elements=n, min_size=_MIN_STRING)
        if fmt == "duration":
            return CelType("duration", max_elements=_MAX_DURATION_JSON, min_size=3)
        if fmt in ("date", "date-time"):
            return CelType("timestamp", max_elements=_DATE_JSON if fmt == "date" else _MAX_DATETIME_JSON,
                           min_size=_DATE_JSON if fmt == "date" else 21)
        return CelType("string", max_elements=_max_string(schema), min_size=_MIN_STRING)
    # scalars from the schema have no size of their own (MaxElements 0), unlike literals (1)
    if t == "boolean":
        return CelType("bool", max_elements=0, min_size=_MIN_BOOL)
    if t == "number":
        return CelType("double", max_elements=0, min_size=_MIN_NUMBER)
    if t == "integer":
        return CelType("int", max_elements=0, min_size=_MIN_NUMBER)
    return None


def value_type(value: Any, declared: CelType) -> CelType:
    """``declared`` with sizes bound by an actual value instead of the schema's maxima — what
    the runtime cost of a rule over that value is estimated with."""
    if declared.kind in ("string", "bytes", "dyn") and isinstance(value, (str, bytes)):
        return declared.with_max(len(value))
    if declared.kind == "list" and isinstance(value, list) and declared.elem is not None:
        elem = _widest([value_type(v, declared.elem) for v in value], declared.elem)
        return CelType("list", elem, None, {}, len(value), declared.min_size)
    if declared.kind == "map" and isinstance(value, dict) and declared.elem is not None:
        elem = _widest([value_type(v, declared.elem) for v in value.values()], declared.elem)
        key = primitive("string").with_max(max((len(k) for k in value), default=0))
        return CelType("map", elem, key, {}, len(value), declared.min_size)
    if declared.kind == "object" and isinstance(value, dict):
        fields = {k: value_type(value[k], t) if k in value else t.with_max(0) for k, t in declared.fields.items()}
        return CelType("object", None, None, fields, declared.max_elements, declared.min_size)
    return declared


def _widest(types: list[CelType], declared: CelType) -> CelType:
    """One type whose every size bounds those of all ``types`` (the elements of one list or map)."""
    if not types:
        return declared.with_max(0)
    out = types[0]
    for t in types[1:]:
        out = _merge(out, t)
    return out


def _merge(a: CelType, b: CelType) -> CelType:
    elem = _merge(a.elem, b.elem) if a.elem is not None and b.elem is not None else a.elem or b.elem
    fields = {k: _merge(a.fields[k], b.fields[k]) if k in b.fields else a.fields[k] for k in a.fields}
    return CelType(a.kind, elem, a.key, fields, max(a.max_elements, b.max_elements), a.min_size)
