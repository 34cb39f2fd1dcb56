"""The review APIs, answered and never stored: SelfSubjectAccessReview, SubjectAccessReview,
LocalSubjectAccessReview, SelfSubjectRulesReview (``authorization.k8s.io/v1``) and
SelfSubjectReview (``authentication.k8s.io/v1``) — what ``kubectl auth can-i``, ``can-i --list``
and ``auth whoami`` call.

As ``pkg/registry/authorization/*`` and ``pkg/registry/authentication/selfsubjectreview``: the
request body is returned with ``status`` filled, code 201; self reviews ask about the caller
(after impersonation, so ``kubectl auth can-i --as=alice`` asks about alice); the others about
``spec.user``/``groups``. Asking needs ``create`` on the review resource, which RBAC checked
before this runs (``system:basic-user`` grants the self reviews to every authenticated user).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from vkube.api import errors
from vkube.api.kinds import ResourceSpec
from vkube.api.rbac.reviews import (access_review_status, check_local_namespace, review_attributes,
                                    subject_from_spec, validate_access_review_spec)
from vkube.apiserver import http
from vkube.apiserver.authorization import Authorization
from vkube.apiserver.request import RequestContext

__all__ = ["REVIEW_KINDS", "is_review", "serve_review"]

AUTHZ = "authorization.k8s.io"
AUTHN = "authentication.k8s.io"
REVIEW_KINDS = frozenset({(AUTHZ, "SelfSubjectAccessReview"), (AUTHZ, "SubjectAccessReview"),
                          (AUTHZ, "LocalSubjectAccessReview"), (AUTHZ, "SelfSubjectRulesReview"),
                          (AUTHN, "SelfSubjectReview")})


def is_review(spec: ResourceSpec) -> bool:
    return (spec.group, spec.kind) in REVIEW_KINDS


async def serve_review(request: web.Request, spec: ResourceSpec, rc: RequestContext,
                       authorization: Authorization) -> web.Response:
    """Answer a POST of one review object."""
    raw = await http.read_body(request)
    body = http.decode_body(raw, request.headers.get("Content-Type", http.JSON))
    if not isinstance(body, dict):
        raise errors.BadRequest(f"the body of a {spec.kind} must be a JSON object")
    kind, api_version = body.get("kind"), body.get("apiVersion")
    if (kind and kind != spec.kind) or (api_version and api_version != spec.api_version):
        raise errors.BadRequest(f"the API version in the data ({api_version}) does not match the expected "
                                f"API version ({spec.api_version})" if api_version != spec.api_version else
                                f"the kind in the data ({kind}) does not match the expected kind ({spec.kind})")
    spec_body = body.get("spec") if isinstance(body.get("spec"), dict) else {}
    meta = body.get("metadata") if isinstance(body.get("metadata"), dict) else {}
    status = _status(spec, spec_body, rc, authorization, body)
    out: dict[str, Any] = {"kind": spec.kind, "apiVersion": spec.api_version,
                           "metadata": {**meta, "creationTimestamp": None}}
    if spec.kind != "SelfSubjectReview":
        out["spec"] = spec_body
    out["status"] = status
    return http.json_response(out, 201)


def _status(spec: ResourceSpec, body: dict[str, Any], rc: RequestContext, authorization: Authorization,
            whole: dict[str, Any]) -> dict[str, Any]:
    kind = spec.kind
    if kind == "SelfSubjectReview":
        return {"userInfo": rc.user.to_dict()}
    if kind == "SelfSubjectRulesReview":
        namespace = str(body.get("namespace") or "")
        if not namespace:
            raise errors.BadRequest("no namespace on request")
        return authorization.rules_review(rc.user, namespace)
    needs_subject = kind != "SelfSubjectAccessReview"
    problem = validate_access_review_spec(kind, body, needs_subject=needs_subject)
    if problem is not None:
        raise problem
    if kind == "LocalSubjectAccessReview":
        bad = check_local_namespace(whole, rc.info.namespace)
        if bad is not None:
            raise bad
    user = rc.user if kind == "SelfSubjectAccessReview" else subject_from_spec(body)
    return access_review_status(authorization.authorize(user, review_attributes(body)))
