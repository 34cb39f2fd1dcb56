"""CustomResourceDefinitions as data: the CRD kind's own strategy, and the ``ResourceSpec`` +
``CustomResourceStrategy`` each served version of a CRD becomes — so custom resources run
through the same generic storage pipeline as built-in kinds.

A custom resource write: prune unknown fields → apply defaults → validate ObjectMeta, the
structural schema and its CEL rules. Reads apply defaults too (``from_storage``), and rewrite
``apiVersion`` to the requested version (conversion strategy ``None``); writes are stored in the
storage version (``to_storage``).
"""

from __future__ import annotations

import copy
import re
from functools import lru_cache
from typing import Any

from vkube.api import structural
from vkube.api.crd_validation import validate_crd, validate_crd_update
from vkube.api.errors import MethodNotAllowed
from vkube.api.kinds import Column, ResourceSpec, ScaleSpec, version_priority
from vkube.api.strategy import Strategy
from vkube.api.tables import age_column
from vkube.api.validation import validate_object_meta

Obj = dict[str, Any]

__all__ = ["CRDStrategy", "CustomResourceStrategy", "custom_specs", "version_priority",
           "CLEANUP_FINALIZER", "STRATEGIES", "GROUP"]

GROUP = "apiextensions.k8s.io"
CLEANUP_FINALIZER = "customresourcecleanup.apiextensions.k8s.io"


# ------------------------------------------------------------------ the CRD kind itself


class CRDStrategy(Strategy):
    """``customresourcedefinitions.apiextensions.k8s.io``: defaults and validation of the CRD;
    deleting one goes through the cleanup finalizer (all its objects go first)."""

    columns = (Column("Created At", lambda o: (o.get("metadata") or {}).get("creationTimestamp", ""),
                      description="Timestamp when this object was created"),)
    #: added by the server when a CRD is deleted, removed once its objects are gone
    delete_finalizers = (CLEANUP_FINALIZER,)

    def default(self, obj: Obj) -> None:
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return
        names = spec.get("names")
        if isinstance(names, dict) and isinstance(names.get("kind"), str):
            names.setdefault("singular", names["kind"].lower())
            names.setdefault("listKind", names["kind"] + "List")
        conversion = spec.setdefault("conversion", {"strategy": "None"})
        if isinstance(conversion, dict):
            conversion.setdefault("strategy", "None")
        for version in spec.get("versions") or ():
            if isinstance(version, dict):
                for col in version.get("additionalPrinterColumns") or ():
                    if isinstance(col, dict) and "priority" in col and not col["priority"]:
                        col.pop("priority")

    def prepare_for_create(self, obj: Obj) -> None:
        obj["status"] = {"conditions": [], "acceptedNames": {"kind": "", "plural": ""}, "storedVersions": []}

    def validate(self, obj: Obj) -> list[dict[str, str]]:
        return validate_crd(obj)

    def validate_update(self, new: Obj, old: Obj) -> list[dict[str, str]]:
        return validate_crd_update(new, old)

    def generation_changed(self, new: Obj, old: Obj) -> bool:
        return new.get("spec") != old.get("spec")


STRATEGIES: dict[tuple[str, str], type[Strategy]] = {(GROUP, "CustomResourceDefinition"): CRDStrategy}


# ------------------------------------------------------------------ custom resources


@lru_cache(maxsize=512)
def _jsonpath(expr: str) -> Any:
    from jsonpath_ng.ext import parse

    return parse(expr.strip().strip("{}").lstrip("."))


def _path_value(obj: Obj, expr: str) -> Any:
    found = _jsonpath(expr).find(obj)
    return found[0].value if found else None


def _printer_column(col: Obj) -> Column:
    expr, ctype = str(col.get("jsonPath", "")), str(col.get("type", "string"))

    def value(obj: Obj) -> Any:
        v = _path_value(obj, expr)
        if isinstance(v, (dict, list)):
            import orjson

            return orjson.dumps(v).decode()
        if ctype == "string" and v is not None and not isinstance(v, str):
            return str(v).lower() if isinstance(v, bool) else str(v)
        return v

    return Column(str(col.get("name", "")), value, type=ctype, format=str(col.get("format", "")),
                  description=str(col.get("description", "")), priority=int(col.get("priority") or 0))


class CustomResourceStrategy(Strategy):
    """Behaviour of one served version of a CRD (schema, rules, columns, fields, versions)."""

    custom = True  # no strategic merge patch, no Go-type decoding: schema validation gives 422s

    def __init__(self, crd: Obj, version: Obj, *, storage_version: str) -> None:
        spec = crd["spec"]
        self.crd_name = crd["metadata"]["name"]
        self.group = spec["group"]
        self.version = version["name"]
        self.api_version = f"{self.group}/{self.version}"
        self.storage_api_version = f"{self.group}/{storage_version}"
        self.kind = spec["names"]["kind"]
        self.namespaced = spec.get("scope") == "Namespaced"
        subs = version.get("subresources") or {}
        self.status_subresource = "status" in subs
        self.schema = copy.deepcopy((version.get("schema") or {}).get("openAPIV3Schema") or {}) or None
        from vkube.api import cel  # the CEL modules (~1.4 MiB) only once a CRD is served

        self.rules, _ = cel.compile_rules(self.schema, "")
        self.defaults = structural.has_defaults(self.schema)
        cols = version.get("additionalPrinterColumns")
        self.columns = tuple(_printer_column(c) for c in cols) if cols else (age_column(),)
        self.selectable = tuple(str(f.get("jsonPath", "")) for f in version.get("selectableFields") or ())
        self.field_selector_keys = tuple(p.lstrip(".") for p in self.selectable)
        self.deprecation_warning: str | None = None
        if version.get("deprecated"):
            self.deprecation_warning = version.get("deprecationWarning") or (
                f"{self.api_version} {self.kind} is deprecated")
        conversion = spec.get("conversion") or {}
        #: ``spec.conversion.webhook`` when the strategy is Webhook: the API server converts
        #: between versions through it (``ConversionReview``), asynchronously
        self.conversion_webhook: dict[str, Any] | None = (
            conversion.get("webhook") if conversion.get("strategy") == "Webhook" else None)
        self.terminating = False
        #: callables that end the open watches of this version (called when it stops being served)
        self.watch_closers: set[Any] = set()

    # -- conversion (strategy None) and read-time defaulting --------------------------------

    def from_storage(self, obj: Obj) -> Obj:
        """Strategy None: rewrite apiVersion. Webhook: an object stored in another version is
        left as stored, for the API server to convert (then ``after_conversion``)."""
        if self.conversion_webhook is not None and obj.get("apiVersion") != self.api_version:
            return obj
        obj["apiVersion"] = self.api_version
        return self.after_conversion(obj)

    def after_conversion(self, obj: Obj) -> Obj:
        if self.defaults:
            structural.apply_defaults(obj, self.schema)
        return obj

    def to_storage(self, obj: Obj) -> Obj:
        if obj.get("apiVersion") == self.storage_api_version or self.conversion_webhook is not None:
            return obj  # a webhook-converted object is already in the storage version
        return {**obj, "apiVersion": self.storage_api_version}

    # -- write pipeline ---------------------------------------------------------------------

    def _prune_default(self, obj: Obj) -> None:
        if self.schema is not None:
            structural.prune(obj, self.schema)
            structural.apply_defaults(obj, self.schema)

    def default(self, obj: Obj) -> None:
        self._prune_default(obj)

    def prepare_for_create(self, obj: Obj) -> None:
        if self.terminating:
            raise MethodNotAllowed(f'create not allowed while custom resource definition "{self.crd_name}" is terminating')
        if self.status_subresource:
            obj.pop("status", None)

    def prepare_for_status_update(self, new: Obj, old: Obj) -> None:
        super().prepare_for_status_update(new, old)
        self._prune_default(new)

    def validate(self, obj: Obj) -> list[dict[str, str]]:
        return self._validate(obj, None)

    def _validate(self, obj: Obj, old: Obj | None) -> list[dict[str, str]]:
        causes = validate_object_meta(obj, namespaced=self.namespaced)
        if self.schema is None:
            return causes
        body = {k: v for k, v in obj.items() if k != "metadata"}
        schema_causes = structural.validate(body, self.schema)
        if old is not None:
            schema_causes = [c for c in schema_causes if not _unchanged(c.get("field", ""), obj, old)]
        meta_schema = (self.schema.get("properties") or {}).get("metadata")
        if isinstance(meta_schema, dict):  # a schema may constrain name and generateName
            meta = obj.get("metadata") or {}
            names = {k: meta[k] for k in ("name", "generateName") if k in meta}
            schema_causes += structural.validate(names, {**meta_schema, "type": "object"}, "metadata")
        causes += schema_causes
        if self.rules and not schema_causes:
            if old is None:
                causes += self.rules.validate(_cel_view(obj))
            else:
                causes += self.rules.validate(_cel_view(obj), _cel_view(old), ratchet=True)
        return causes

    def validate_with_old(self, new: Obj, old: Obj) -> list[dict[str, str]]:
        """``validate`` on an update, with ratcheting: schema errors at values unchanged from
        the old object, and rules over unchanged values, do not block the update (so objects
        stored before a schema got stricter can still be written, e.g. their status)."""
        return self._validate(new, old)

    def validate_update(self, new: Obj, old: Obj) -> list[dict[str, str]]:
        if not self.rules:
            return []
        return self.rules.validate(_cel_view(new), _cel_view(old), transition_only=True)

    def generation_changed(self, new: Obj, old: Obj) -> bool:
        """With a status subresource only spec changes count; without one, everything but
        metadata does (status included), as for Kubernetes' custom resources."""
        skip = ("metadata", "status", "apiVersion") if self.status_subresource else ("metadata", "apiVersion")
        strip = lambda o: {k: v for k, v in o.items() if k not in skip}  # noqa: E731
        return strip(new) != strip(old)

    def field_attrs(self, obj: Obj) -> dict[str, str]:
        attrs = super().field_attrs(obj)
        for path, key in zip(self.selectable, self.field_selector_keys):
            v = _path_value(obj, path)
            attrs[key] = "" if v is None else (str(v).lower() if isinstance(v, bool) else str(v))
        return attrs


_PATH_TOKEN = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def _unchanged(path: str, new: Obj, old: Obj) -> bool:
    """Is the value at a cause's field path the same in both objects (absent in both counts)?
    Under a list the whole list must be unchanged: items are not correlated by position."""
    def lookup(obj: Any) -> Any:
        cur: Any = obj
        for name, index in _PATH_TOKEN.findall(path):
            if index:
                return ("list", cur)  # compare the list that holds the item
            if not isinstance(cur, dict):
                return ("absent",)
            if name not in cur:
                return ("absent",)
            cur = cur[name]
        return ("value", cur)

    if not path or path.startswith("metadata"):
        return False
    return lookup(new) == lookup(old)


def _cel_view(obj: Obj) -> Obj:
    """``self`` at the root sees apiVersion, kind, metadata.name/generateName and the rest."""
    meta = obj.get("metadata") or {}
    view = {k: v for k, v in obj.items() if k != "metadata"}
    view["metadata"] = {k: meta[k] for k in ("name", "generateName") if k in meta}
    return view


def custom_specs(crd: Obj) -> list[ResourceSpec]:
    """One ResourceSpec per served version, highest priority first (discovery order)."""
    from vkube.api.builtin import storage_version_hash

    spec = crd["spec"]
    names = spec["names"]
    versions = [v for v in spec.get("versions") or () if v.get("served")]
    storage = next(v["name"] for v in spec["versions"] if v.get("storage"))
    out = []
    for version in sorted(versions, key=lambda v: version_priority(v["name"])):
        strategy = CustomResourceStrategy(crd, version, storage_version=storage)
        scale = (version.get("subresources") or {}).get("scale")
        out.append(ResourceSpec(
            group=spec["group"], version=version["name"], kind=names["kind"], plural=names["plural"],
            singular=names.get("singular") or names["kind"].lower(),
            namespaced=spec.get("scope") == "Namespaced",
            short_names=tuple(names.get("shortNames") or ()), categories=tuple(names.get("categories") or ()),
            status_subresource=strategy.status_subresource,
            scale=ScaleSpec(scale["specReplicasPath"].lstrip("."), scale["statusReplicasPath"].lstrip("."),
                            (scale.get("labelSelectorPath") or "").lstrip(".") or None) if scale else None,
            strategy=strategy,
            storage_version_hash=storage_version_hash(spec["group"], storage, names["kind"]),
        ))
    return out
