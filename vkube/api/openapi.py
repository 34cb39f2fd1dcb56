"""OpenAPI documents of one control plane (``/openapi/v3``, ``/openapi/v2``) and the resolved
schemas that strategic merge patch, server-side apply and field validation are driven by.

One ``OpenAPI`` per ``Registry``: CRDs differ per virtual cluster. Built-in definitions are
parsed once per process and shared read-only (see ``openapi_convert``). Documents are cached
per registry generation, so a CRD added or removed shows up on the next request.
"""

from __future__ import annotations

import copy
import hashlib
from collections import ChainMap
from typing import Any

import orjson

from vkube.api import openapi_convert as conv
from vkube.api.kinds import Registry, ResourceSpec
from vkube.api.openapi_paths import resource_paths

Schema = dict[str, Any]

_ALWAYS = (  # meta types that every group-version document references
    "io.k8s.apimachinery.pkg.apis.meta.v1.Status",
    "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions",
    "io.k8s.apimachinery.pkg.apis.meta.v1.WatchEvent",
    "io.k8s.apimachinery.pkg.apis.meta.v1.Patch",
    "io.k8s.apimachinery.pkg.apis.meta.v1.APIResourceList",
)
_K8S_VERSION = "v1.37.1"


def gv_path(group: str, version: str) -> str:
    """``api/v1`` for the core group, ``apis/<group>/<version>`` otherwise."""
    return f"apis/{group}/{version}" if group else f"api/{version}"


def custom_definition_name(group: str, version: str, kind: str) -> str:
    """Kubernetes names CRD schemas by the reversed group: ``com.example.stable.v1.CronTab``."""
    return ".".join(reversed(group.split("."))) + f".{version}.{kind}"


class OpenAPI:
    """The OpenAPI view of one registry (built-ins plus the CRD schemas given to it)."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self._custom_v3: dict[str, Schema] = {}  # definition name → OpenAPI v3 schema
        self._custom_gvk: dict[tuple[str, str, str], str] = {}
        self._custom_resolved: dict[tuple[str, str, str], Schema] = {}
        self._cache: dict[Any, Any] = {}
        self._cache_key: tuple[int, int] = (-1, -1)
        self._custom_generation = 0

    # -- schemas --------------------------------------------------------------------------

    def add_schema(self, group: str, version: str, kind: str, openapi_v3_schema: Schema) -> None:
        """Register a CRD version's ``openAPIV3Schema`` (self-contained, no refs) for
        ``group/version, Kind``. ``metadata`` is typed as ObjectMeta and ``apiVersion``/``kind``
        as strings, as the apiextensions server does; ``List`` kinds are added too. Calling it
        again replaces the schema; ``remove_schema`` forgets it."""
        name = custom_definition_name(group, version, kind)
        schema = copy.deepcopy(openapi_v3_schema) if openapi_v3_schema else {}
        schema.setdefault("type", "object")
        props = schema.setdefault("properties", {})
        props["apiVersion"] = {"type": "string", "description": "APIVersion defines the versioned schema of this representation of an object."}
        props["kind"] = {"type": "string", "description": "Kind is a string value representing the REST resource this object represents."}
        props["metadata"] = {"allOf": [{"$ref": conv.V3_PREFIX + conv.OBJECT_META}], "description": "Standard object's metadata."}
        schema["x-kubernetes-group-version-kind"] = [{"group": group, "version": version, "kind": kind}]
        list_schema = {
            "type": "object",
            "description": f"{kind}List is a list of {kind}",
            "required": ["items"],
            "properties": {
                "apiVersion": {"type": "string"},
                "kind": {"type": "string"},
                "items": {"type": "array", "items": {"$ref": conv.V3_PREFIX + name}},
                "metadata": {"allOf": [{"$ref": conv.V3_PREFIX + "io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta"}]},
            },
            "x-kubernetes-group-version-kind": [{"group": group, "version": version, "kind": kind + "List"}],
        }
        self._custom_v3[name] = schema
        self._custom_v3[name + "List"] = list_schema
        self._custom_gvk[(group, version, kind)] = name
        self._custom_gvk[(group, version, kind + "List")] = name + "List"
        self._custom_resolved.pop((group, version, kind), None)
        self._custom_generation += 1

    def remove_schema(self, group: str, version: str, kind: str) -> None:
        name = self._custom_gvk.pop((group, version, kind), None)
        self._custom_gvk.pop((group, version, kind + "List"), None)
        if name:
            self._custom_v3.pop(name, None)
            self._custom_v3.pop(name + "List", None)
        self._custom_resolved.pop((group, version, kind), None)
        self._custom_generation += 1

    def schema_for(self, group: str, version: str, kind: str) -> Schema | None:
        """The resolved (``$ref``-free, shared sub-trees, possibly cyclic) schema of a kind,
        or None when unknown (a CRD without a schema). Read-only: do not mutate."""
        key = (group, version, kind)
        if key in self._custom_gvk:
            if key not in self._custom_resolved:
                resolver = conv.Resolver(ChainMap(self._custom_v3, conv.v3_definitions()), frozenset(self._custom_v3))
                self._custom_resolved[key] = resolver.definition(self._custom_gvk[key]) or {}
            return self._custom_resolved[key]
        name = conv.gvk_index().get(key)
        return conv.builtin_resolver().definition(name) if name else None

    def definition_name(self, group: str, version: str, kind: str) -> str | None:
        key = (group, version, kind)
        return self._custom_gvk.get(key) or conv.gvk_index().get(key)

    # -- documents ------------------------------------------------------------------------

    def _cached(self, key: Any, build: Any) -> Any:
        now = (self.registry.generation, self._custom_generation)
        if now != self._cache_key:
            self._cache.clear()
            self._cache_key = now
        if key not in self._cache:
            self._cache[key] = build()
        return self._cache[key]

    def _served(self) -> dict[str, list[ResourceSpec]]:
        out: dict[str, list[ResourceSpec]] = {}
        for spec in self.registry.all():
            out.setdefault(gv_path(spec.group, spec.version), []).append(spec)
        return out

    def _defs_for(self, specs: list[ResourceSpec], *, v3: bool) -> dict[str, Schema]:
        base = conv.v3_definitions() if v3 else conv.v2_definitions()
        prefix = conv.V3_PREFIX if v3 else conv.V2_PREFIX
        custom = self._custom_v3 if v3 else {k: _v3_to_v2(v) for k, v in self._custom_v3.items()}
        defs = ChainMap(custom, base)  # only what the closure reaches gets converted
        roots = set(_ALWAYS)
        for spec in specs:
            for kind in (spec.kind, spec.list_kind):
                name = self.definition_name(spec.group, spec.version, kind)
                if name:
                    roots.add(name)
            if spec.scale is not None:
                roots.add("io.k8s.api.autoscaling.v1.Scale")
        return {n: defs[n] for n in sorted(conv.closure(roots, defs, prefix))}

    def v3_document(self, gv_path: str) -> dict | None:
        """The OpenAPI 3.0 document of one group-version (``api/v1``, ``apis/apps/v1``), or
        None when the registry serves nothing there."""
        gv_path = gv_path.strip("/")

        def build() -> dict | None:
            specs = self._served().get(gv_path)
            if not specs:
                return None
            paths: dict[str, Any] = {}
            for spec in specs:
                paths.update(resource_paths(spec, self._ref_name(spec), v3=True))
            return {
                "openapi": "3.0.0",
                "info": {"title": "Kubernetes", "version": _K8S_VERSION},
                "paths": paths,
                "components": {
                    "schemas": self._defs_for(specs, v3=True),
                    "securitySchemes": {"BearerToken": {"type": "apiKey", "in": "header", "name": "authorization", "description": "Bearer Token authentication"}},
                },
                "security": [{"BearerToken": []}],
            }

        return self._cached(("v3", gv_path), build)

    def _ref_name(self, spec: ResourceSpec) -> dict[str, str | None]:
        return {
            "kind": self.definition_name(spec.group, spec.version, spec.kind),
            "list": self.definition_name(spec.group, spec.version, spec.list_kind),
        }

    def v3_bytes(self, gv_path: str) -> bytes | None:
        """The serialized document (cached), for serving and hashing."""
        doc = self.v3_document(gv_path)
        if doc is None:
            return None
        return self._cached(("v3bytes", gv_path.strip("/")), lambda: orjson.dumps(doc))

    def etag(self, gv_path: str) -> str:
        """Upper-case hex SHA-512 of the v3 document, as Kubernetes' ``?hash=`` and ETag."""
        raw = self.v3_bytes(gv_path)
        return hashlib.sha512(raw).hexdigest().upper() if raw is not None else ""

    def v3_index(self) -> dict:
        """``/openapi/v3``: one entry per served group-version, URLs carrying the hash so
        clients may cache documents forever."""

        def build() -> dict:
            paths = {}
            for path in sorted(self._served()):
                paths[path] = {"serverRelativeURL": f"/openapi/v3/{path}?hash={self.etag(path)}"}
            return {"paths": paths}

        return self._cached("index", build)

    def v2_document(self) -> dict:
        """Swagger 2.0 document of everything served (``/openapi/v2``; kubectl 1.37 reads v3
        for ``explain`` and ``apply`` and uses v2 only as a fallback)."""

        def build() -> dict:
            specs = list(self.registry.all())
            paths: dict[str, Any] = {}
            for spec in specs:
                paths.update(resource_paths(spec, self._ref_name(spec), v3=False))
            return {
                "swagger": "2.0",
                "info": {"title": "Kubernetes", "version": _K8S_VERSION},
                "paths": paths,
                "definitions": self._defs_for(specs, v3=False),
                "securityDefinitions": {"BearerToken": {"type": "apiKey", "in": "header", "name": "authorization"}},
                "security": [{"BearerToken": []}],
            }

        return self._cached("v2", build)

    def v2_protobuf(self) -> bytes:
        """``/openapi/v2`` as gnostic protobuf (what kubectl falls back to; see openapi_proto)."""
        from vkube.api.openapi_proto import encode_document

        return self._cached("v2proto", lambda: encode_document(self.v2_document()))


def _v3_to_v2(node: Any) -> Any:
    """CRD schemas: v3 refs and ``allOf`` wrappers → Swagger 2.0; ``nullable`` dropped."""
    if isinstance(node, list):
        return [_v3_to_v2(x) for x in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for k, v in node.items():
        if k == "$ref" and isinstance(v, str) and v.startswith(conv.V3_PREFIX):
            out[k] = conv.V2_PREFIX + v[len(conv.V3_PREFIX):]
        elif k == "allOf" and isinstance(v, list) and len(v) == 1 and "$ref" in v[0]:
            out.update(_v3_to_v2(v[0]))
        elif k != "nullable":
            out[k] = _v3_to_v2(v)
    return out
