"""The per-request context: who is asking (``UserInfo``), what they ask (``RequestInfo``), and
the request-wide options every layer below the HTTP handler needs (dryRun, fieldManager, the
audit ID). Built once where the server dispatches a request and handed to every storage verb
and to admission, as k8s.io/apiserver threads its ``context.Context`` — so authentication,
authorization and audit (issue 12) fill in or read one object instead of re-parsing requests.

Not to be confused with ``vkube.apiserver.context.Context``: that one is per control plane."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from vkube.api.meta import new_uid
from vkube.api.user import ALL_AUTHENTICATED, SYSTEM_MASTERS, UserInfo

__all__ = ["UserInfo", "SYSTEM_MASTERS", "ALL_AUTHENTICATED", "APISERVER_USER", "CLUSTER_ADMIN_USER",
           "RequestContext", "cluster_admin", "internal_context", "new_audit_id", "AUDIT_ID_HEADER",
           "AUDIT_ID_RESPONSE_HEADER"]
from vkube.apiserver.requestinfo import RequestInfo

#: The request header a client may send to name its request in the audit log, and the
#: response header it is echoed in (k8s.io/apiserver's ``HeaderAuditID``; Go canonicalises
#: the response header to ``Audit-Id``).
AUDIT_ID_HEADER = "Audit-ID"
AUDIT_ID_RESPONSE_HEADER = "Audit-Id"

APISERVER_USER = "system:apiserver"
CLUSTER_ADMIN_USER = "kubernetes-admin"


def cluster_admin() -> UserInfo:
    """The user a kubeconfig's holder is until authentication lands: what kube-apiserver makes
    of kubeadm's admin client certificate (CN ``kubernetes-admin``, O ``system:masters``)."""
    return UserInfo(CLUSTER_ADMIN_USER, groups=(SYSTEM_MASTERS, ALL_AUTHENTICATED))


@dataclass(frozen=True, slots=True)
class RequestContext:
    """One request as every layer sees it. Frozen: a callee that acts for the request on
    another resource (eviction deleting a pod) derives a copy with ``replace``."""

    user: UserInfo
    info: RequestInfo
    audit_id: str
    dry_run: bool = False
    field_manager: str | None = None
    #: admission's warnings (``Warning`` headers) and audit annotations, recorded as the
    #: request runs (k8s.io/apiserver's warning recorder and audit context); shared by copies
    warnings: list[str] = field(default_factory=list, compare=False)
    audit_annotations: dict[str, str] = field(default_factory=dict, compare=False)

    @property
    def verb(self) -> str:
        return self.info.verb

    def replace(self, **changes: Any) -> "RequestContext":
        return dataclasses.replace(self, **changes)


def new_audit_id(sent: str | None) -> str:
    """The client's ``Audit-ID`` as sent (upstream stores it untruncated), else a UUID."""
    return sent if sent else new_uid()


def internal_context(verb: str, *, resource: str = "", namespace: str = "", name: str = "",
                     subresource: str = "", group: str = "", version: str = "",
                     field_manager: str | None = None, user: UserInfo | None = None) -> RequestContext:
    """A context for the API server's own writes (bootstrap objects): the loopback user
    ``system:apiserver`` kube-apiserver uses for itself."""
    info = RequestInfo(is_resource=True, path="", verb=verb, api_prefix="apis" if group else "api",
                       group=group, version=version, namespace=namespace, resource=resource,
                       subresource=subresource, name=name)
    return RequestContext(user=user or UserInfo(APISERVER_USER, groups=(SYSTEM_MASTERS, ALL_AUTHENTICATED)),
                          info=info, audit_id=new_uid(), field_manager=field_manager)
