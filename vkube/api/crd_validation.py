"""Validation of ``apiextensions.k8s.io/v1`` CustomResourceDefinitions, worded as the
apiextensions-apiserver words it: names, group, scope, versions, subresources, printer columns,
selectable fields, structural-schema rules and CEL rules (compiled and cost-checked here, so a
CRD whose rules cannot run is never stored)."""

from __future__ import annotations

import re
from typing import Any

from vkube.api.crd_schema import schema_shape, typed, validate_structural
from vkube.api.errors import field_error
from vkube.api.validation import (Causes, dns1123_subdomain, duplicate, invalid_value, not_supported,
                                  required, validate_object_meta)

__all__ = ["validate_crd", "validate_crd_update", "DNS1035"]

DNS1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?\Z")
_DNS1035_MSG = ("a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an "
                "alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', "
                "regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')")
_KIND_MSG = "may have mixed case, but should otherwise match: [a-z]([-a-z0-9]*[a-z0-9])?"
_COLUMN_TYPES = ("boolean", "date", "integer", "number", "string")


def _label(path: str, value: Any, causes: Causes, *, kind: bool = False) -> None:
    if not isinstance(value, str) or not value:
        causes.append(required(path))
        return
    probe = value.lower() if kind else value
    if len(probe) > 63 or not DNS1035.match(probe):
        causes.append(invalid_value(path, value, _KIND_MSG if kind else _DNS1035_MSG))


def _conversion(conversion: Any) -> Causes:
    """``validateCustomResourceConversion`` (internal field names, as upstream's errors show them)."""
    from vkube.api.kinds_admission import validate_client_config

    conversion = conversion if isinstance(conversion, dict) else {}
    strategy = conversion.get("strategy", "None")
    webhook = conversion.get("webhook") if isinstance(conversion.get("webhook"), dict) else None
    causes: Causes = []
    if strategy not in ("None", "Webhook"):
        return [not_supported("spec.conversion.strategy", strategy, ("None", "Webhook"))]
    if strategy == "Webhook":
        if webhook is None or webhook.get("clientConfig") is None:
            causes.append(required("spec.conversion.webhookClientConfig", "required when strategy is set to Webhook"))
        else:
            causes += [dict(c, field=c["field"].replace("spec.conversion.webhook.clientConfig",
                                                        "spec.conversion.webhookClientConfig"))
                       for c in validate_client_config(webhook["clientConfig"], "spec.conversion.webhook.clientConfig")]
        versions = (webhook or {}).get("conversionReviewVersions") or []
        if not versions:
            causes.append(required("spec.conversion.conversionReviewVersions",
                                   "must include at least one of v1, v1beta1"))
        elif not any(v in ("v1", "v1beta1") for v in versions):
            causes.append(invalid_value("spec.conversion.conversionReviewVersions", versions,
                                        "must include at least one of v1, v1beta1"))
    elif webhook is not None:
        if webhook.get("clientConfig") is not None:
            causes.append(field_error("spec.conversion.webhookClientConfig",
                                      "Forbidden: should not be set when strategy is not set to Webhook",
                                      reason="FieldValueForbidden"))
        if webhook.get("conversionReviewVersions"):
            causes.append(field_error("spec.conversion.conversionReviewVersions",
                                      "Forbidden: should not be set when strategy is not set to Webhook",
                                      reason="FieldValueForbidden"))
    return causes


def _spec_shape(spec: dict[str, Any]) -> Causes:
    """The types of everything validation reads below (the generic decode is lax about some)."""
    causes: Causes = []
    for key, types in (("group", (str,)), ("scope", (str,)), ("names", (dict,)), ("versions", (list,)),
                       ("conversion", (dict,)), ("preserveUnknownFields", (bool,))):
        if key in spec:
            typed(f"spec.{key}", spec[key], types, causes)
    names = spec.get("names") if isinstance(spec.get("names"), dict) else {}
    for key in ("plural", "singular", "kind", "listKind"):
        if key in names:
            typed(f"spec.names.{key}", names[key], (str,), causes)
    for key in ("shortNames", "categories"):
        if key in names and typed(f"spec.names.{key}", names[key], (list,), causes):
            for i, item in enumerate(names[key]):
                typed(f"spec.names.{key}[{i}]", item, (str,), causes)
    for i, version in enumerate(spec.get("versions") if isinstance(spec.get("versions"), list) else ()):
        vpath = f"spec.versions[{i}]"
        if not typed(vpath, version, (dict,), causes):
            continue
        for key, types in (("name", (str,)), ("served", (bool,)), ("storage", (bool,)), ("deprecated", (bool,)),
                           ("deprecationWarning", (str,)), ("schema", (dict,)), ("subresources", (dict,)),
                           ("additionalPrinterColumns", (list,)), ("selectableFields", (list,))):
            if key in version:
                typed(f"{vpath}.{key}", version[key], types, causes)
        schema = version.get("schema")
        if isinstance(schema, dict) and "openAPIV3Schema" in schema:
            schema_shape(schema["openAPIV3Schema"], f"{vpath}.schema.openAPIV3Schema", causes)
        subs = version.get("subresources") if isinstance(version.get("subresources"), dict) else {}
        for key in ("status", "scale"):
            if key in subs:
                typed(f"{vpath}.subresources.{key}", subs[key], (dict,), causes)
        scale = subs.get("scale") if isinstance(subs.get("scale"), dict) else {}
        for key in ("specReplicasPath", "statusReplicasPath", "labelSelectorPath"):
            if key in scale:
                typed(f"{vpath}.subresources.scale.{key}", scale[key], (str,), causes)
        for key, fields in (("additionalPrinterColumns", (("name", (str,)), ("type", (str,)), ("format", (str,)),
                                                          ("description", (str,)), ("priority", (int,)),
                                                          ("jsonPath", (str,)))),
                            ("selectableFields", (("jsonPath", (str,)),))):
            for j, item in enumerate(version.get(key) if isinstance(version.get(key), list) else ()):
                ipath = f"{vpath}.{key}[{j}]"
                if typed(ipath, item, (dict,), causes):
                    for fkey, types in fields:
                        if fkey in item:
                            typed(f"{ipath}.{fkey}", item[fkey], types, causes)
    return causes


def validate_crd(crd: dict[str, Any]) -> Causes:
    causes = validate_object_meta(crd, namespaced=False)
    spec = crd.get("spec")
    if not isinstance(spec, dict):
        return causes + [required("spec")]
    shape = _spec_shape(spec)
    if shape:
        return causes + shape
    group = spec.get("group")
    names = spec.get("names") if isinstance(spec.get("names"), dict) else {}
    name = (crd.get("metadata") or {}).get("name")
    if not group:
        causes.append(required("spec.group"))
    else:
        for msg in dns1123_subdomain(str(group)):
            causes.append(invalid_value("spec.group", group, msg))
        if "." not in str(group):
            causes.append(invalid_value("spec.group", group, "should be a domain with at least one dot"))
    if name and names.get("plural") and group and name != f"{names['plural']}.{group}":
        causes.append(invalid_value("metadata.name", name, 'must be spec.names.plural+"."+spec.group'))
    scope = spec.get("scope")
    if not scope:
        causes.append(required("spec.scope"))
    elif scope not in ("Cluster", "Namespaced"):
        causes.append(not_supported("spec.scope", scope, ("Cluster", "Namespaced")))
    _names(names, "spec.names", causes)
    causes += _conversion(spec.get("conversion"))
    if spec.get("preserveUnknownFields") is True:
        causes.append(invalid_value("spec.preserveUnknownFields", True,
                                    "cannot set to true, set x-kubernetes-preserve-unknown-fields to true "
                                    "in spec.versions[*].schema instead"))
    causes += _versions(spec.get("versions"))
    return causes


def _names(names: dict[str, Any], path: str, causes: Causes) -> None:
    _label(f"{path}.plural", names.get("plural"), causes)
    if names.get("singular"):
        _label(f"{path}.singular", names.get("singular"), causes)
    _label(f"{path}.kind", names.get("kind"), causes, kind=True)
    if names.get("listKind"):
        _label(f"{path}.listKind", names.get("listKind"), causes, kind=True)
        if names.get("listKind") == names.get("kind"):
            causes.append(invalid_value(f"{path}.listKind", names["listKind"], "kind and listKind may not be the same"))
    for key in ("shortNames", "categories"):
        seen: set[str] = set()
        for i, short in enumerate(names.get(key) or ()):
            _label(f"{path}.{key}[{i}]", short, causes)
            if short in seen:
                causes.append(duplicate(f"{path}.{key}[{i}]", short))
            seen.add(short)


def _versions(versions: Any) -> Causes:
    causes: Causes = []
    if not isinstance(versions, list) or not versions:
        return [required("spec.versions", "must have exactly one version marked as storage version")]
    storage = [v.get("name") for v in versions if isinstance(v, dict) and v.get("storage")]
    if len(storage) != 1:
        causes.append(invalid_value("spec.versions", [v.get("name") for v in versions if isinstance(v, dict)],
                                    "must have exactly one version marked as storage version"))
    if not any(isinstance(v, dict) and v.get("served") for v in versions):
        causes.append(invalid_value("spec.versions", [v.get("name") for v in versions if isinstance(v, dict)],
                                    "must have at least one served version"))
    seen: set[str] = set()
    for i, version in enumerate(versions):
        path = f"spec.versions[{i}]"
        if not isinstance(version, dict):
            causes.append(required(path))
            continue
        vname = version.get("name")
        _label(f"{path}.name", vname, causes)
        if vname in seen:
            causes.append(duplicate(f"{path}.name", vname))
        seen.add(vname)
        schema = (version.get("schema") or {}).get("openAPIV3Schema")
        spath = f"{path}.schema.openAPIV3Schema"
        if not isinstance(schema, dict):
            causes.append(required(spath, "schemas are required"))
            schema = None
        else:
            structural_causes = validate_structural(schema, spath)
            causes += structural_causes
            if not structural_causes:
                from vkube.api import cel  # the CEL modules (~1.4 MiB) only once a CRD is written

                causes += cel.compile_rules(schema, spath)[1]
        causes += _subresources(version.get("subresources"), f"{path}.subresources")
        causes += _columns(version.get("additionalPrinterColumns"), f"{path}.additionalPrinterColumns")
        causes += _selectable(version.get("selectableFields"), schema, f"{path}.selectableFields")
    return causes


def _subresources(subs: Any, path: str) -> Causes:
    causes: Causes = []
    if not isinstance(subs, dict):
        return causes
    scale = subs.get("scale")
    if isinstance(scale, dict):
        sp = scale.get("specReplicasPath")
        if not sp:
            causes.append(required(f"{path}.scale.specReplicasPath"))
        elif not str(sp).startswith(".spec."):
            causes.append(invalid_value(f"{path}.scale.specReplicasPath", sp, "should be a json path under .spec"))
        st = scale.get("statusReplicasPath")
        if not st:
            causes.append(required(f"{path}.scale.statusReplicasPath"))
        elif not str(st).startswith(".status."):
            causes.append(invalid_value(f"{path}.scale.statusReplicasPath", st, "should be a json path under .status"))
        sel = scale.get("labelSelectorPath")
        if sel and not str(sel).startswith((".spec.", ".status.")):
            causes.append(invalid_value(f"{path}.scale.labelSelectorPath", sel,
                                        "should be a json path under either .spec or .status"))
    return causes


def _columns(columns: Any, path: str) -> Causes:
    from jsonpath_ng.exceptions import JsonPathLexerError, JsonPathParserError
    from jsonpath_ng.ext import parse

    causes: Causes = []
    for i, col in enumerate(columns or ()):
        cpath = f"{path}[{i}]"
        if not isinstance(col, dict):
            causes.append(required(cpath))
            continue
        if not col.get("name"):
            causes.append(required(f"{cpath}.name"))
        if col.get("type") not in _COLUMN_TYPES:
            causes.append(not_supported(f"{cpath}.type", col.get("type"), _COLUMN_TYPES))
        if col.get("format") not in (None, "", "int32", "int64", "float", "double", "byte", "date",
                                     "date-time", "password"):
            causes.append(not_supported(f"{cpath}.format", col.get("format"),
                                        ("int32", "int64", "float", "double", "byte", "date", "date-time", "password")))
        if int(col.get("priority") or 0) < 0:
            causes.append(invalid_value(f"{cpath}.priority", col.get("priority"), "must be greater than or equal to 0"))
        jp = col.get("jsonPath")
        if not jp:
            causes.append(required(f"{cpath}.jsonPath"))
            continue
        try:
            if not str(jp).startswith("."):
                raise ValueError
            parse(str(jp).lstrip("."))
        except (ValueError, JsonPathLexerError, JsonPathParserError, Exception):
            causes.append(invalid_value(f"{cpath}.jsonPath", jp, "must be a simple json path starting with ."))
    return causes


def _selectable(fields: Any, schema: dict | None, path: str) -> Causes:
    causes: Causes = []
    fields = fields or []
    if len(fields) > 8:
        causes.append(field_error(path, f"Too many: {len(fields)}: must have at most 8 items",
                                  reason="FieldValueTooMany"))
    seen: set[str] = set()
    for i, f in enumerate(fields):
        jp = (f or {}).get("jsonPath") if isinstance(f, dict) else None
        fpath = f"{path}[{i}].jsonPath"
        if not jp:
            causes.append(required(fpath))
            continue
        node = schema
        for part in str(jp).lstrip(".").split("."):
            node = ((node or {}).get("properties") or {}).get(part) if isinstance(node, dict) else None
        if not str(jp).startswith(".") or node is None:
            causes.append(invalid_value(fpath, jp, "is an invalid path: does not refer to a valid field"))
        elif node.get("type") not in ("string", "integer", "boolean"):
            causes.append(invalid_value(fpath, jp, "must point to a field of type string, boolean or integer. "
                                                   "Enum string fields and strings with formats are allowed."))
        if jp in seen:
            causes.append(duplicate(fpath, jp))
        seen.add(jp)
    return causes


def _dict(v: Any) -> dict[str, Any]:
    return v if isinstance(v, dict) else {}


def _list(v: Any) -> list[Any]:
    return v if isinstance(v, list) else []


def validate_crd_update(new: dict[str, Any], old: dict[str, Any]) -> Causes:
    causes: Causes = []
    ns, os_ = _dict(new.get("spec")), _dict(old.get("spec"))
    for key in ("group", "scope"):
        if ns.get(key) != os_.get(key):
            causes.append(invalid_value(f"spec.{key}", ns.get(key), "field is immutable"))
    if _dict(ns.get("names")).get("plural") != _dict(os_.get("names")).get("plural"):
        causes.append(invalid_value("spec.names.plural", _dict(ns.get("names")).get("plural"), "field is immutable"))
    versions = {v.get("name") for v in _list(ns.get("versions")) if isinstance(v, dict)}
    for i, stored in enumerate(_list(_dict(new.get("status")).get("storedVersions"))):
        if stored not in versions:
            causes.append(invalid_value(f"status.storedVersions[{i}]", stored, "must appear in spec.versions"))
    return causes
