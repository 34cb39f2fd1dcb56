"""Built-in schemas: the JSON Schemas shipped by ``kubernetes-validate`` converted to OpenAPI.

The package stores Kubernetes' definitions as JSON Schema (refs under ``#/$defs``, nullable
types as ``["string", "null"]``, IntOrString/Quantity as ``oneOf``). Clients such as kubectl
want OpenAPI, and our patch/apply/validation code wants a resolved tree, so both are derived
here once per process. The results are immutable by convention and shared by every control
plane in the process (CRD schemas live on each ``OpenAPI`` object, never here).
"""

from __future__ import annotations

import functools
import importlib.util
import os
import re
import sys
import zlib
from collections.abc import Iterator, Mapping
from typing import Any

import orjson

Schema = dict[str, Any]

V3_PREFIX = "#/components/schemas/"
V2_PREFIX = "#/definitions/"
_SRC_PREFIX = "#/$defs/"
_INT_OR_STRING = "io.k8s.apimachinery.pkg.util.intstr.IntOrString"
_QUANTITY = "io.k8s.apimachinery.pkg.api.resource.Quantity"
#: Marks ``resource.Quantity`` nodes in resolved trees (never in served documents), so code
#: that must treat quantities specially finds them from the schema, not from field names.
QUANTITY_MARK = "x-vkube-quantity"
#: on a resolved built-in definition: its Go type's name (``DeploymentSpec``), which
#: encoding/json names in a decoding error (``Go struct field DeploymentSpec.spec.replicas``)
GO_TYPE_MARK = "x-vkube-go-type"
OBJECT_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"


def _schema_dir() -> str:
    """The newest ``vX.Y.Z-local`` (non-strict) schema set inside kubernetes-validate."""
    spec = importlib.util.find_spec("kubernetes_validate")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("kubernetes-validate is not installed")
    base = os.path.join(list(spec.submodule_search_locations)[0], "kubernetes-json-schema")
    found = []
    for name in os.listdir(base):
        m = re.fullmatch(r"v(\d+)\.(\d+)\.(\d+)-local", name)
        if m:
            found.append((tuple(int(x) for x in m.groups()), name))
    if not found:
        raise RuntimeError(f"no schema sets found in {base}")
    return os.path.join(base, max(found)[1])


class _Source:
    """The package's ~860 definitions, each kept as its own zlib-compressed JSON (~0.6 MiB
    instead of ~3.4 MiB of dicts for the life of every control plane) and decoded when first
    converted: an idle cluster converts ~25. The GVK index is built in the same read."""

    def __init__(self, path: str) -> None:
        with open(path, "rb") as f:
            defs: dict[str, Schema] = orjson.loads(f.read())["$defs"]
        self._packed = {sys.intern(name): zlib.compress(orjson.dumps(node), 1)
                        for name, node in defs.items()}
        index: dict[tuple[str, str, str], str] = {}
        for name, node in defs.items():
            gvks = node.get("x-kubernetes-group-version-kind") or ()
            for gvk in gvks:
                key = (sys.intern(gvk.get("group", "")), sys.intern(gvk["version"]), gvk["kind"])
                if len(gvks) == 1 or key not in index:
                    index[key] = sys.intern(name)
        self.gvk_index = index

    def __contains__(self, name: object) -> bool:
        return name in self._packed

    def __iter__(self) -> Iterator[str]:
        return iter(self._packed)

    def __len__(self) -> int:
        return len(self._packed)

    def node(self, name: str) -> Schema:
        """A fresh decoded copy of one definition (KeyError when unknown)."""
        return orjson.loads(zlib.decompress(self._packed[name]))


@functools.cache
def _source() -> _Source:
    return _Source(os.path.join(_schema_dir(), "_definitions.json"))


def _strip_null(t: Any) -> Any:
    if isinstance(t, list):
        rest = [x for x in t if x != "null"]
        return rest[0] if len(rest) == 1 else rest
    return t


def convert(node: Any, prefix: str, *, v3: bool, parent_key: str = "") -> Any:
    """One JSON Schema node → OpenAPI (v3 when ``v3``, else Swagger 2.0 flavour)."""
    if isinstance(node, list):
        return [convert(x, prefix, v3=v3) for x in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith(_SRC_PREFIX):
        target = prefix + ref[len(_SRC_PREFIX):]
        siblings = {k: convert(v, prefix, v3=v3) for k, v in node.items() if k != "$ref"}
        if not siblings:
            return {"$ref": target}
        if v3:  # OpenAPI 3.0 ignores siblings of $ref: Kubernetes wraps the ref in allOf.
            return {"allOf": [{"$ref": target}], **siblings}
        return {"$ref": target, **siblings}
    out: Schema = {}
    for key, value in node.items():
        if key == "type":
            out["type"] = _strip_null(value)
        elif key == "enum" and parent_key in ("apiVersion", "kind"):
            continue  # added by the JSON Schema generator, not part of Kubernetes' OpenAPI
        elif key == "properties" and isinstance(value, dict):
            out["properties"] = {
                k: convert(v, prefix, v3=v3, parent_key=k) for k, v in value.items()
            }
        else:
            out[key] = convert(value, prefix, v3=v3)
    return out


def _special(name: str, node: Schema, v3: bool) -> Schema | None:
    """IntOrString and Quantity are ``oneOf`` in JSON Schema, strings in OpenAPI (v3 marks
    IntOrString with ``x-kubernetes-int-or-string``, which kubectl explain shows)."""
    desc = {"description": node["description"]} if "description" in node else {}
    if name == _INT_OR_STRING:
        if v3:
            return {**desc, "x-kubernetes-int-or-string": True, "anyOf": [{"type": "integer"}, {"type": "string"}]}
        return {**desc, "type": "string", "format": "int-or-string"}
    if name == _QUANTITY:
        return {**desc, "type": "string"}
    return None


class _Converted(Mapping[str, Schema]):
    """The built-in definitions, each converted on first access: converting all ~860 costs
    tens of milliseconds, while start-up (bootstrap writes) needs only a handful."""

    def __init__(self, v3: bool, *, keep: bool = True) -> None:
        self._v3 = v3
        self._prefix = V3_PREFIX if v3 else V2_PREFIX
        #: without ``keep`` each access converts again (the built-in resolver reads each
        #: definition once and keeps only its description-free result)
        self._keep = keep
        self._done: dict[str, Schema] = {}

    def __getitem__(self, name: str) -> Schema:
        out = self._done.get(name)
        if out is None:
            node = _source().node(name)
            out = _special(name, node, self._v3) or convert(node, self._prefix, v3=self._v3)
            if self._keep:
                self._done[name] = out
        return out

    def __contains__(self, name: object) -> bool:
        return name in _source()

    def __iter__(self) -> Iterator[str]:
        return iter(_source())

    def __len__(self) -> int:
        return len(_source())


@functools.cache
def _definitions(v3: bool) -> Mapping[str, Schema]:
    return _Converted(v3)


def v3_definitions() -> Mapping[str, Schema]:
    """OpenAPI v3 ``components.schemas`` of every built-in definition (shared, read-only,
    converted lazily)."""
    return _definitions(True)


def v2_definitions() -> Mapping[str, Schema]:
    """Swagger 2.0 ``definitions`` of every built-in definition (shared, read-only,
    converted lazily)."""
    return _definitions(False)


def gvk_index() -> dict[tuple[str, str, str], str]:
    """(group, version, kind) → definition name. A kind's own definition wins over shared
    ones such as ``meta.v1.DeleteOptions`` that list many GVKs."""
    return _source().gvk_index


def refs_of(node: Any, prefix: str, acc: set[str]) -> None:
    """Collect definition names referenced (transitively by the caller) from ``node``."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith(prefix):
            acc.add(ref[len(prefix):])
        for v in node.values():
            refs_of(v, prefix, acc)
    elif isinstance(node, list):
        for v in node:
            refs_of(v, prefix, acc)


def closure(names: set[str], defs: Mapping[str, Schema], prefix: str) -> set[str]:
    """All definitions reachable from ``names``."""
    seen: set[str] = set()
    todo = [n for n in names if n in defs]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        found: set[str] = set()
        refs_of(defs[name], prefix, found)
        todo.extend(n for n in found if n not in seen and n in defs)
    return seen


class Resolver:
    """Turns OpenAPI v3 schemas into a ``$ref``-free tree (shared sub-nodes, possibly cyclic)
    for the pure code paths: SMP, SSA and field validation. Objects without properties nor
    additionalProperties (RawExtension, JSON) get ``x-kubernetes-preserve-unknown-fields``,
    as their Go types accept anything. Definitions named in ``custom`` (CRD schemas) are
    structural schemas and get no such marking."""

    def __init__(self, defs: Mapping[str, Schema], custom: frozenset[str] = frozenset()) -> None:
        self._defs = defs
        self._custom = custom
        self._memo: dict[str, Schema] = {}

    def definition(self, name: str) -> Schema | None:
        if name in self._memo:
            return self._memo[name]
        node = self._defs.get(name)
        if node is None:
            return None
        if name == _QUANTITY:
            self._memo[name] = {"type": "string", QUANTITY_MARK: True}
            return self._memo[name]
        out: Schema = {}
        self._memo[name] = out  # placeholder first: recursive types (JSONSchemaProps) resolve
        out.update(self.resolve(node, opaque=name not in self._custom))
        if name not in self._custom:
            out[GO_TYPE_MARK] = name.rsplit(".", 1)[-1]
        return out

    def resolve(self, node: Any, *, opaque: bool = True) -> Any:
        if isinstance(node, list):
            return [self.resolve(x, opaque=opaque) for x in node]
        if not isinstance(node, dict):
            return node
        ref = node.get("$ref")
        if ref is None and isinstance(node.get("allOf"), list) and len(node["allOf"]) == 1:
            ref = node["allOf"][0].get("$ref") if isinstance(node["allOf"][0], dict) else None
        if isinstance(ref, str) and ref.startswith(V3_PREFIX):
            return self.definition(ref[len(V3_PREFIX):]) or {}
        out: Schema = {}
        for key, value in node.items():
            if key in ("description", "example"):
                continue
            if key == "properties":
                out[key] = {k: self.resolve(v, opaque=opaque) for k, v in value.items()}
            else:
                out[key] = self.resolve(value, opaque=opaque)
        if (
            opaque
            and out.get("type") in ("object", None)
            and "properties" not in out
            and "additionalProperties" not in out
            and not any(k in out for k in ("items", "oneOf", "anyOf", "allOf", "format"))
            and out.get("type") != "string"
        ):
            out["x-kubernetes-preserve-unknown-fields"] = True
        return out


@functools.cache
def builtin_resolver() -> Resolver:
    return Resolver(_Converted(True, keep=False))
