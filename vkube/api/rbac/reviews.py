"""The authorization review APIs' pure parts: SubjectAccessReview, LocalSubjectAccessReview,
SelfSubjectAccessReview, SelfSubjectRulesReview and SelfSubjectReview (``kubectl auth can-i``,
``auth can-i --list``, ``auth whoami``).

Follows ``pkg/registry/authorization`` and ``pkg/apis/authorization/validation``: attributes come
from ``spec.resourceAttributes`` (an empty version means every version) or
``spec.nonResourceAttributes``, exactly one of them; a SubjectAccessReview names a user or a
group; a LocalSubjectAccessReview's resource namespace must be its own; the status carries
``allowed``, ``denied`` (RBAC never denies, it only fails to allow) and the authorizer's reason.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from vkube.api.errors import BadRequest, Invalid, field_error, invalid
from vkube.api.rbac.authorizer import Attributes, Decision, RBACAuthorizer, UserInfo

__all__ = ["review_attributes", "subject_from_spec", "validate_access_review_spec",
           "access_review_status", "self_subject_review_status", "check_local_namespace", "review"]

Obj = Mapping[str, Any]
GROUP = "authorization.k8s.io"


def review_attributes(spec: Obj) -> Attributes:
    """The request a review asks about (``ResourceAttributesFrom``/``NonResourceAttributesFrom``)."""
    ra = spec.get("resourceAttributes")
    if isinstance(ra, Mapping):
        return Attributes(str(ra.get("verb") or ""), namespace=str(ra.get("namespace") or ""),
                          api_group=str(ra.get("group") or ""), api_version=str(ra.get("version") or "*"),
                          resource=str(ra.get("resource") or ""), subresource=str(ra.get("subresource") or ""),
                          name=str(ra.get("name") or ""))
    nra = spec.get("nonResourceAttributes") or {}
    return Attributes(str(nra.get("verb") or ""), resource_request=False, path=str(nra.get("path") or ""))


def subject_from_spec(spec: Obj) -> UserInfo:
    """The user a SubjectAccessReview asks about (``spec.user/groups/uid/extra``)."""
    extra = spec.get("extra") or {}
    return UserInfo(str(spec.get("user") or ""), str(spec.get("uid") or ""),
                    tuple(str(g) for g in spec.get("groups") or ()),
                    {str(k): tuple(str(x) for x in v or ()) for k, v in extra.items()})


def validate_access_review_spec(kind: str, spec: Obj, *, needs_subject: bool) -> Invalid | None:
    """The Invalid error kube-apiserver returns for a malformed review spec, or None."""
    causes = []
    has_ra, has_nra = spec.get("resourceAttributes") is not None, spec.get("nonResourceAttributes") is not None
    if has_ra and has_nra:
        causes.append(field_error("spec.nonResourceAttributes",
                                  "Invalid value: \"object\": cannot be specified in combination with "
                                  "resourceAttributes"))
    if not has_ra and not has_nra:
        causes.append(field_error("spec.resourceAttributes", 'Invalid value: "null": exactly one of '
                                  "nonResourceAttributes or resourceAttributes must be specified"))
    if needs_subject and not spec.get("user") and not spec.get("groups"):
        causes.append(field_error("spec.user", 'Invalid value: "": at least one of user or group must be specified'))
    return invalid(kind, "", causes, group=GROUP) if causes else None


def check_local_namespace(review: Obj, namespace: str) -> BadRequest | None:
    """A LocalSubjectAccessReview must ask about its own namespace."""
    if not namespace:
        return BadRequest(f"namespace is required on this type: {namespace}")
    meta_ns = (review.get("metadata") or {}).get("namespace") or namespace
    ra = (review.get("spec") or {}).get("resourceAttributes") or {}
    if meta_ns != namespace or (ra and ra.get("namespace", namespace) != namespace):
        return BadRequest(f"spec.resourceAttributes.namespace must match namespace: {namespace}")
    return None


def access_review_status(decision: Decision) -> dict[str, Any]:
    status: dict[str, Any] = {"allowed": decision.allowed}
    if decision.reason:
        status["reason"] = decision.reason
    return status


def self_subject_review_status(user: UserInfo) -> dict[str, Any]:
    """``SelfSubjectReview.status`` (``kubectl auth whoami``): empty fields omitted."""
    return {"userInfo": user.to_dict()}


def review(authz: RBACAuthorizer, user: UserInfo, spec: Obj) -> dict[str, Any]:
    """Decide a review's question for ``user``; the ``status`` to return."""
    return access_review_status(authz.authorize(user, review_attributes(spec)))
