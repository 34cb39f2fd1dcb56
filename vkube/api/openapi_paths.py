"""OpenAPI ``paths`` for one resource: every served verb and subresource, with the operation
ids, ``x-kubernetes-action`` and ``x-kubernetes-group-version-kind`` Kubernetes publishes.

kubectl reads the PATCH operation of a kind: when it lists a ``fieldValidation`` parameter,
kubectl leaves validation to the server (``?fieldValidation=Strict``).
"""

from __future__ import annotations

from typing import Any

from vkube.api.kinds import ResourceSpec
from vkube.api.openapi_convert import V2_PREFIX, V3_PREFIX

_META = "io.k8s.apimachinery.pkg.apis.meta.v1."
PATCH_TYPES = (
    "application/apply-patch+yaml",
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
)
#: custom resources take no strategic merge patch; kubectl reads this list to choose its patch
CUSTOM_PATCH_TYPES = tuple(t for t in PATCH_TYPES if "strategic" not in t)
_PRODUCES = ("application/json", "application/yaml", "application/vnd.kubernetes.protobuf")

_QUERY = {
    "pretty": "If 'true', then the output is pretty printed.",
    "dryRun": "When present, indicates that modifications should not be persisted. Valid values are: - All: all dry run stages will be processed",
    "fieldManager": "fieldManager is a name associated with the actor or entity that is making these changes.",
    "fieldValidation": "fieldValidation instructs the server on how to handle objects in the request (POST/PUT/PATCH) containing unknown or duplicate fields. Valid values are: - Ignore - Warn - Strict",
    "force": "Force is going to \"force\" Apply requests. It means user will re-acquire conflicting fields owned by other people.",
    "labelSelector": "A selector to restrict the list of returned objects by their labels.",
    "fieldSelector": "A selector to restrict the list of returned objects by their fields.",
    "limit": "limit is a maximum number of responses to return for a list call.",
    "continue": "The continue option should be set when retrieving more results from the server.",
    "resourceVersion": "resourceVersion sets a constraint on what resource versions a request may be served from.",
    "resourceVersionMatch": "resourceVersionMatch determines how resourceVersion is applied to list calls.",
    "timeoutSeconds": "Timeout for the list/watch call.",
    "watch": "Watch for changes to the described resources and return them as a stream of add, update, and remove notifications.",
    "allowWatchBookmarks": "allowWatchBookmarks requests watch events with type \"BOOKMARK\".",
    "sendInitialEvents": "`sendInitialEvents=true` may be set together with `watch=true`.",
    "gracePeriodSeconds": "The duration in seconds before the object should be deleted.",
    "propagationPolicy": "Whether and how garbage collection will be performed.",
}
_TYPES = {"limit": "integer", "timeoutSeconds": "integer", "gracePeriodSeconds": "integer",
          "watch": "boolean", "allowWatchBookmarks": "boolean", "force": "boolean",
          "sendInitialEvents": "boolean"}
_LIST_Q = ("allowWatchBookmarks", "continue", "fieldSelector", "labelSelector", "limit",
           "resourceVersion", "resourceVersionMatch", "sendInitialEvents", "timeoutSeconds", "watch")
_WRITE_Q = ("dryRun", "fieldManager", "fieldValidation")


def _camel_group(group: str) -> str:
    if not group:
        return "Core"
    first = group.split(".k8s.io")[0] if group.endswith(".k8s.io") else group
    return "".join(p[:1].upper() + p[1:] for p in first.replace("-", ".").split("."))


def _param(name: str, where: str, v3: bool, required: bool = False, desc: str = "") -> dict:
    p: dict[str, Any] = {"name": name, "in": where, "description": desc or _QUERY.get(name, name)}
    if required:
        p["required"] = True
    typ = _TYPES.get(name, "string")
    if v3:
        p["schema"] = {"type": typ, "uniqueItems": True}
    else:
        p["type"] = typ
        p["uniqueItems"] = True
    return p


def _ref(name: str | None, v3: bool) -> dict:
    if not name:
        return {"type": "object"}
    return {"$ref": (V3_PREFIX if v3 else V2_PREFIX) + name}


def _response(schema: dict, v3: bool, code: str = "200") -> dict:
    if v3:
        body = {"description": "OK", "content": {t: {"schema": schema} for t in _PRODUCES}}
    else:
        body = {"description": "OK", "schema": schema}
    return {code: body, "401": {"description": "Unauthorized"}}


def _body(schema: dict, v3: bool, types: tuple[str, ...] = ("*/*",)) -> dict:
    if v3:
        return {"requestBody": {"required": True, "content": {t: {"schema": schema} for t in types}}}
    return {"parameters": [{"name": "body", "in": "body", "required": True, "schema": schema}]}


def _op(action: str, op_id: str, gvk: dict, desc: str, *, v3: bool, query: tuple[str, ...],
        response: dict, body: dict | None = None, consumes: tuple[str, ...] = ()) -> dict:
    op: dict[str, Any] = {
        "description": desc,
        "operationId": op_id,
        "parameters": [_param(q, "query", v3) for q in query],
        "responses": response,
        "tags": [gvk["group"].replace(".", "") + "_" + gvk["version"] if gvk["group"] else "core_" + gvk["version"]],
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": gvk,
    }
    if body:
        if v3:
            op.update(body)
        else:
            op["parameters"] = body["parameters"] + op["parameters"]
    if not v3:
        op["consumes"] = list(consumes or ("*/*",))
        op["produces"] = list(_PRODUCES)
        op["schemes"] = ["https"]
    return op


def resource_paths(spec: ResourceSpec, refs: dict[str, str | None], *, v3: bool) -> dict[str, Any]:
    """Paths of one resource (collection, item, all-namespaces list, subresources)."""
    prefix = f"/apis/{spec.group}/{spec.version}" if spec.group else f"/api/{spec.version}"
    ns = "/namespaces/{namespace}" if spec.namespaced else ""
    base = f"{prefix}{ns}/{spec.plural}"
    gv = _camel_group(spec.group) + spec.version[:1].upper() + spec.version[1:]
    scope = "Namespaced" if spec.namespaced else ""
    gvk = {"group": spec.group, "kind": spec.kind, "version": spec.version}
    obj, lst = _ref(refs.get("kind"), v3), _ref(refs.get("list"), v3)
    status_ref = _ref(_META + "Status", v3)
    verbs = set(spec.verbs)
    patch_types = CUSTOM_PATCH_TYPES if getattr(spec.strategy, "custom", False) else PATCH_TYPES
    path_params = [_param("namespace", "path", v3, True, "object name and auth scope, such as for teams and projects")] if spec.namespaced else []
    name_param = _param("name", "path", v3, True, f"name of the {spec.kind}")
    paths: dict[str, Any] = {}

    coll: dict[str, Any] = {"parameters": path_params + [_param("pretty", "query", v3)]}
    if "list" in verbs:
        coll["get"] = _op("list", f"list{gv}{scope}{spec.kind}", gvk, f"list or watch objects of kind {spec.kind}", v3=v3, query=_LIST_Q, response=_response(lst, v3))
    if "create" in verbs:
        coll["post"] = _op("post", f"create{gv}{scope}{spec.kind}", gvk, f"create a {spec.kind}", v3=v3, query=_WRITE_Q, response=_response(obj, v3) | _response(obj, v3, "201"), body=_body(obj, v3))
    if "deletecollection" in verbs:
        coll["delete"] = _op("deletecollection", f"deletecollection{gv}{scope}{spec.kind}", gvk, f"delete collection of {spec.kind}", v3=v3, query=_LIST_Q + ("dryRun", "gracePeriodSeconds", "propagationPolicy"), response=_response(status_ref, v3))
    if len(coll) > 1:
        paths[base] = coll

    item: dict[str, Any] = {"parameters": [name_param] + path_params + [_param("pretty", "query", v3)]}
    _item_ops(item, spec.kind, verbs, gv, scope, gvk, obj, v3, status_ref, patch_types=patch_types)
    if len(item) > 1:
        paths[base + "/{name}"] = item

    if spec.namespaced and "list" in verbs:
        paths[f"{prefix}/{spec.plural}"] = {
            "parameters": [_param("pretty", "query", v3)],
            "get": _op("list", f"list{gv}{spec.kind}ForAllNamespaces", gvk, f"list or watch objects of kind {spec.kind}", v3=v3, query=_LIST_Q, response=_response(lst, v3)),
        }
    for sub in ("status", "scale"):
        if sub not in spec.subresources:
            continue
        sub_obj = obj if sub == "status" else _ref("io.k8s.api.autoscaling.v1.Scale", v3)
        sub_gvk = gvk if sub == "status" else {"group": "autoscaling", "kind": "Scale", "version": "v1"}
        entry: dict[str, Any] = {"parameters": [name_param] + path_params + [_param("pretty", "query", v3)]}
        _item_ops(entry, spec.kind + sub.capitalize(), verbs & {"get", "update", "patch"}, gv, scope, sub_gvk, sub_obj, v3, status_ref, what=f"{sub} of the specified {spec.kind}", patch_types=patch_types)
        paths[f"{base}/{{name}}/{sub}"] = entry
    return paths


def _item_ops(item: dict, kind: str, verbs: set[str], gv: str, scope: str, gvk: dict, obj: dict,
              v3: bool, status_ref: dict, what: str = "",
              patch_types: tuple[str, ...] = PATCH_TYPES) -> None:
    what = what or f"the specified {kind}"
    if "get" in verbs:
        item["get"] = _op("get", f"read{gv}{scope}{kind}", gvk, f"read {what}", v3=v3, query=(), response=_response(obj, v3))
    if "update" in verbs:
        item["put"] = _op("put", f"replace{gv}{scope}{kind}", gvk, f"replace {what}", v3=v3, query=_WRITE_Q, response=_response(obj, v3) | _response(obj, v3, "201"), body=_body(obj, v3))
    if "patch" in verbs:
        patch = _ref(_META + "Patch", v3)
        item["patch"] = _op("patch", f"patch{gv}{scope}{kind}", gvk, f"partially update {what}", v3=v3, query=_WRITE_Q + ("force",), response=_response(obj, v3) | _response(obj, v3, "201"), body=_body(patch, v3, patch_types), consumes=patch_types)
    if "delete" in verbs and not what.startswith(("status", "scale")):
        item["delete"] = _op("delete", f"delete{gv}{scope}{kind}", gvk, f"delete {what}", v3=v3, query=("dryRun", "gracePeriodSeconds", "propagationPolicy"), response=_response(obj, v3) | _response(status_ref, v3, "202"))
