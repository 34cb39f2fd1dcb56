"""``authentication.k8s.io/v1`` reviews: TokenReview (is this token valid, and whose is it?) and
SelfSubjectReview (``kubectl auth whoami``). Both are create-only and stored nowhere, as in
``pkg/registry/authentication``: the answer is the request object with ``status`` filled in.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from vkube.api import errors
from vkube.apiserver import http
from vkube.apiserver.request import RequestContext

if TYPE_CHECKING:
    from vkube.apiserver.server import APIServer

__all__ = ["REVIEWS", "serve"]

REVIEWS = {"tokenreviews": "TokenReview", "selfsubjectreviews": "SelfSubjectReview"}
_VERSIONS = ("v1", "v1beta1")


async def serve(server: "APIServer", request: web.Request, rc: RequestContext) -> web.Response:
    info = rc.info
    kind = REVIEWS[info.resource]
    if info.version not in _VERSIONS or info.namespace or info.name or info.subresource:
        raise errors.NotFound("the server could not find the requested resource")
    if request.method != "POST":
        raise errors.MethodNotAllowed(f"{request.method} is not supported on resources of kind "
                                      f"{info.resource}.authentication.k8s.io")
    body = http.decode_body(await http.read_body(request), request.headers.get("Content-Type", http.JSON))
    if not isinstance(body, dict):
        raise errors.BadRequest(f"the body must be a {kind} object")
    api_version = f"authentication.k8s.io/{info.version}"
    meta = body.get("metadata") if isinstance(body.get("metadata"), dict) else {}
    out: dict[str, Any] = {"kind": kind, "apiVersion": api_version,
                           "metadata": {**meta, "creationTimestamp": None}}
    if kind == "SelfSubjectReview":
        out["status"] = {"userInfo": rc.user.to_dict()}
        return http.json_response(out, 201)
    spec = body.get("spec") if isinstance(body.get("spec"), dict) else {}
    token = spec.get("token")
    if not isinstance(token, str) or not token:
        raise errors.invalid("TokenReview", "", [errors.field_error("spec.token", "Required value: token must not be empty")],
                             group="authentication.k8s.io")
    audiences = spec.get("audiences")
    if audiences is not None and (not isinstance(audiences, list) or not all(isinstance(a, str) for a in audiences)):
        raise errors.BadRequest("spec.audiences must be a list of strings")
    authn = server.authenticator
    status: dict[str, Any] = {}
    if authn is None:
        status = {"error": "token authentication is not enabled on this server"}
    else:
        user, accepted, error = await authn.review(token, audiences or None)
        if user is not None:
            status = {"authenticated": True, "user": user.to_dict(), "audiences": list(accepted)}
        else:
            status = {"error": error}
    out["spec"] = {k: v for k, v in spec.items() if k in ("token", "audiences")}
    out["status"] = status
    return http.json_response(out, 201)
