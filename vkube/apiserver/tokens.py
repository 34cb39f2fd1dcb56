"""``serviceaccounts/NAME/token`` (TokenRequest): signed, expiring service-account tokens in
Kubernetes' JWT shape (ES256/RS256 by the cluster's own key, :class:`vkube.pki.TokenIssuer`),
optionally bound to a Pod, Secret or Node so the token dies with that object. Follows
``pkg/registry/core/serviceaccount/storage/token.go``: the bound object must exist and match
the given UID; a pod-bound token also names the pod's node."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from vkube.api import errors
from vkube.api.meta import rfc3339
from vkube.apiserver import http
from vkube.apiserver.context import Context
from vkube.apiserver.request import RequestContext
from vkube.pki.tokens import MAX_EXPIRATION_SECONDS, MIN_EXPIRATION_SECONDS

DEFAULT_EXPIRY = 3600
_BINDABLE = {"Pod": "pods", "Secret": "secrets", "Node": "nodes"}


def _invalid(name: str, field: str, message: str) -> errors.StatusError:
    return errors.invalid("TokenRequest", name, [errors.field_error(field, message)], group="authentication.k8s.io")


async def token_request(ctx: Context, request: web.Request, rc: RequestContext) -> web.Response:
    info = rc.info
    if request.method != "POST":
        raise errors.method_not_allowed()
    body = http.decode_body(await http.read_body(request), request.headers.get("Content-Type", http.JSON))
    if not isinstance(body, dict):
        raise errors.BadRequest("the body must be a TokenRequest object")
    spec = body.get("spec") or {}
    if not isinstance(spec, dict):
        raise errors.BadRequest("spec must be an object")
    expiry = spec.get("expirationSeconds")
    expiry = DEFAULT_EXPIRY if expiry is None else expiry
    if not isinstance(expiry, int) or isinstance(expiry, bool) or expiry < MIN_EXPIRATION_SECONDS:
        raise _invalid(info.name, "spec.expirationSeconds",
                       f"Invalid value: {errors.go_value(expiry)}: may not specify a duration less than 10 minutes")
    if expiry > MAX_EXPIRATION_SECONDS:
        raise _invalid(info.name, "spec.expirationSeconds",
                       f"Invalid value: {expiry}: may not specify a duration larger than 2^32 seconds")
    issuer = ctx.token_issuer
    if issuer is None:
        raise errors.ServiceUnavailable("token issuing is not enabled on this server")
    audiences = spec.get("audiences") or []
    if not isinstance(audiences, list) or not all(isinstance(a, str) and a for a in audiences):
        raise errors.BadRequest("spec.audiences must be a list of non-empty strings")
    audiences = audiences or list(ctx.api_audiences)
    sa_storage = ctx.storage_for("", "ServiceAccount")
    assert sa_storage is not None
    sa = await sa_storage.get(rc, info.namespace, info.name)
    bound_objects: dict[str, Any] = {}
    bound = spec.get("boundObjectRef")
    if bound is not None:
        bound_objects = await _bound(ctx, rc, bound, info.namespace)
    token, exp = issuer.issue(sa, audiences=audiences, expiration_seconds=expiry, now=ctx.clock(), **bound_objects)
    out_spec: dict[str, Any] = {"audiences": audiences, "expirationSeconds": expiry, "boundObjectRef": bound}
    return http.json_response({
        "kind": "TokenRequest", "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"name": info.name, "namespace": info.namespace, "creationTimestamp": None},
        "spec": out_spec, "status": {"token": token, "expirationTimestamp": rfc3339(exp)},
    }, 201)


async def _bound(ctx: Context, rc: RequestContext, ref: Any, namespace: str) -> dict[str, Any]:
    """The object a token is bound to (and for a pod, its node), checked as upstream does."""
    if not isinstance(ref, dict):
        raise errors.BadRequest("spec.boundObjectRef must be an object")
    kind, name, uid = ref.get("kind"), ref.get("name"), ref.get("uid")
    if kind not in _BINDABLE:
        raise errors.BadRequest(f'cannot bind token for serviceaccount "{rc.info.name}" to object of '
                                f'kind "{kind}": supported kinds are Pod, Secret, Node')
    if not isinstance(name, str) or not name:
        raise _invalid(rc.info.name, "spec.boundObjectRef.name", "Required value")
    storage = ctx.storage_for("", kind)
    assert storage is not None
    obj = await storage.get(rc, None if kind == "Node" else namespace, name)
    actual = (obj.get("metadata") or {}).get("uid")
    if uid and uid != actual:
        raise errors.Conflict(f"the UID in the bound object reference ({uid}) does not match the UID in "
                              f"record. The object might have been deleted and then recreated")
    out: dict[str, Any] = {kind.lower(): obj}
    if kind == "Pod" and (obj.get("spec") or {}).get("nodeName"):
        nodes = ctx.storage_for("", "Node")
        assert nodes is not None
        node = await nodes.get_or_none(rc, None, obj["spec"]["nodeName"])
        if node is not None:
            out["node"] = node
    return out
