"""Authorization in the request path: impersonation, then RBAC, before anything is read or
written — kube-apiserver's ``WithImpersonation`` and ``WithAuthorization`` filters.

One :class:`Authorization` per control plane keeps an :class:`~vkube.api.rbac.RBACAuthorizer`
current: it reads every Role, ClusterRole, RoleBinding and ClusterRoleBinding once, then follows
the store's watch on their common key prefix (so writes by any API server on a shared store
count) and rebuilds the indexed snapshot lazily, on the first decision after a change. Members
of ``system:masters`` are allowed everything (the privileged-groups authorizer kube-apiserver
puts in front of RBAC). Denials are kube-apiserver's 403 bodies, e.g. ``pods is forbidden: User
"alice" cannot list resource "pods" in API group "" in the namespace "b"``.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Iterable, Mapping
from typing import Any

from vkube.api.rbac import Attributes, Decision, RBACAuthorizer, check_binding_write, check_role_write
from vkube.api.rbac.impersonation import impersonate
from vkube.api.user import SYSTEM_MASTERS, UserInfo
from vkube.apiserver.context import AdmissionRequest, Context
from vkube.apiserver.nodeauthz import NodeGraph
from vkube.apiserver.objects import decode
from vkube.apiserver.request import RequestContext
from vkube.apiserver.requestinfo import RequestInfo
from vkube.store.base import Compacted, StoreClosed, StoreError

__all__ = ["Authorization", "RBACEscalation", "attributes_of", "RBAC_PREFIX"]

log = logging.getLogger("vkube.apiserver.authorization")

RBAC_GROUP = "rbac.authorization.k8s.io"
#: every RBAC object's store key starts so (``ResourceSpec.key_prefix``)
RBAC_PREFIX = f"/{RBAC_GROUP}/"
_KINDS = ("roles", "clusterroles", "rolebindings", "clusterrolebindings")
#: the streaming pod subresources Kubernetes authorizes with ``create`` even over a websocket
#: GET (``AuthorizePodWebsocketUpgradeCreatePermission``): ``get`` alone never lets one in
_CONNECT_SUBRESOURCES = ("exec", "attach", "portforward")


def _slim(obj: dict[str, Any]) -> dict[str, Any]:
    """What RBAC decides by: kind, name, namespace, resourceVersion, rules, roleRef, subjects.
    The rest (managedFields, labels, annotations) would be kept per cluster for nothing, and
    rule strings are interned: every cluster of a shared process holds the same bootstrap
    policy (vkube.cluster.shared)."""
    meta = obj.get("metadata") or {}
    out: dict[str, Any] = {"kind": obj.get("kind"), "metadata": {
        k: meta[k] for k in ("name", "namespace", "resourceVersion") if k in meta}}
    for field in ("roleRef", "subjects"):
        if field in obj:
            out[field] = obj[field]
    rules = obj.get("rules")
    if isinstance(rules, list):
        out["rules"] = [{k: [sys.intern(v) if isinstance(v, str) else v for v in vs]
                         if isinstance(vs, list) else vs for k, vs in r.items()}
                        if isinstance(r, dict) else r for r in rules]
    elif rules is not None:
        out["rules"] = rules
    return out


def attributes_of(info: RequestInfo, verb: str | None = None) -> Attributes:
    """``GetAuthorizerAttributes``: what RBAC is asked for a request."""
    if not info.is_resource:
        return Attributes(verb or info.verb, resource_request=False, path=info.path)
    return Attributes(verb or info.verb, namespace=info.namespace, api_group=info.group,
                      api_version=info.version, resource=info.resource,
                      subresource=info.subresource, name=info.name)


class Authorization:
    """Per control plane: impersonation and RBAC decisions from an always-current snapshot."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._objects: dict[str, dict[str, Any]] = {}
        self._snapshot: RBACAuthorizer | None = None
        self._dirty = True
        self._task: asyncio.Task[None] | None = None
        self.rebuilds = 0  # how many snapshots were built (tests, benchmarks)
        #: the Node authorizer, ahead of RBAC (kube-apiserver's --authorization-mode=Node,RBAC)
        self.nodes: NodeGraph | None = None

    # -- keeping the snapshot current ---------------------------------------------------------

    async def start(self) -> None:
        """Read every RBAC object and follow their changes until the control plane stops."""
        revision = await self._relist()
        self._task = asyncio.get_running_loop().create_task(self._follow(revision))
        self.ctx.watch_tasks.add(self._task)
        self._task.add_done_callback(self.ctx.watch_tasks.discard)

    async def _relist(self) -> int:
        res = await self.ctx.store.range(RBAC_PREFIX)
        self._objects = {kv.key: _slim(decode(kv)) for kv in res.kvs}
        self._dirty = True
        return res.revision

    async def _follow(self, revision: int) -> None:
        while True:
            try:
                async for event in self.ctx.watch_fanout().watch(RBAC_PREFIX, after_revision=revision):
                    revision = event.revision
                    if event.type == "DELETED":
                        self._objects.pop(event.kv.key, None)
                    else:
                        self._objects[event.kv.key] = _slim(decode(event.kv))
                    self._dirty = True
                return  # the store closed
            except Compacted:
                revision = await self._relist()
            except StoreClosed:
                return
            except StoreError:
                log.exception("RBAC watch failed; re-reading every RBAC object")
                await asyncio.sleep(0.5)
                revision = await self._relist()

    @property
    def authorizer(self) -> RBACAuthorizer:
        """The snapshot for the objects seen so far (rebuilt here when they changed)."""
        if self._dirty or self._snapshot is None:
            by_kind: dict[str, list[dict[str, Any]]] = {k: [] for k in _KINDS}
            for key, obj in self._objects.items():
                plural = key[len(RBAC_PREFIX):].split("/", 1)[0]
                if plural in by_kind:
                    by_kind[plural].append(obj)
            self._dirty = False
            self._snapshot = RBACAuthorizer(
                roles=by_kind["roles"], cluster_roles=by_kind["clusterroles"],
                role_bindings=by_kind["rolebindings"],
                cluster_role_bindings=by_kind["clusterrolebindings"],
                compiled=self._snapshot.compiled if self._snapshot is not None else None)
            self.rebuilds += 1
        return self._snapshot

    # -- decisions ----------------------------------------------------------------------------

    def authorize(self, user: UserInfo, attrs: Attributes) -> Decision:
        if SYSTEM_MASTERS in user.groups:
            return Decision(True)
        node = self.nodes.authorize(user, attrs) if self.nodes is not None else None
        if node is not None and node.allowed:
            return node
        decision = self.authorizer.authorize(user, attrs)
        if not decision.allowed and node is not None and node.reason:
            return Decision(False, node.reason if not decision.reason else f"{node.reason}\n{decision.reason}")
        return decision

    def check(self, rc: RequestContext, headers: Iterable[tuple[str, str]]) -> RequestContext:
        """Impersonate (when asked and allowed), then authorize the request; the context to
        serve it with, or a raised Forbidden/BadRequest. Nothing has been read or written yet."""
        rc = self.impersonate(rc, headers)
        self.authorize_request(rc)
        return rc

    def impersonate(self, rc: RequestContext, headers: Iterable[tuple[str, str]]) -> RequestContext:
        """The context acting as the impersonated user, when asked and allowed (upstream's
        WithImpersonation, which runs before priority and fairness)."""
        if any(k.lower().startswith("impersonate-") for k, _ in headers):
            acting = impersonate(self.authorizer, rc.user, headers)
            if acting is not None:
                rc = rc.replace(user=acting)
        return rc

    def authorize_request(self, rc: RequestContext) -> None:
        """Raise Forbidden unless ``rc.user`` may do what ``rc`` asks (WithAuthorization)."""
        attrs = attributes_of(rc.info)
        self._require(rc.user, attrs)
        if attrs.resource == "pods" and attrs.subresource in _CONNECT_SUBRESOURCES and attrs.verb != "create":
            self._require(rc.user, attributes_of(rc.info, "create"))

    def _require(self, user: UserInfo, attrs: Attributes) -> None:
        decision = self.authorize(user, attrs)
        if not decision.allowed:
            raise self.authorizer.forbidden(user, attrs, decision)

    def rules_review(self, user: UserInfo, namespace: str) -> dict[str, Any]:
        """``SelfSubjectRulesReview.status`` from RBAC (the privileged-groups authorizer lists no
        rules upstream: an admin's ``*.*`` row comes from the ``cluster-admin`` binding)."""
        return self.authorizer.subject_rules_review_status(user, namespace)


class RBACEscalation:
    """Admission that refuses RBAC writes granting more than the writer holds (Kubernetes'
    ``policybased`` RBAC storages): ``escalate`` on roles, ``bind`` on bindings, or covering
    rules. Runs first, so nothing is mutated or stored for a refused write."""

    def __init__(self, authorization: Authorization) -> None:
        self.authorization = authorization

    async def admit(self, ctx: Context, req: AdmissionRequest) -> None:
        spec = req.spec
        if spec.group != RBAC_GROUP or req.operation not in ("CREATE", "UPDATE") or req.obj is None:
            return
        if SYSTEM_MASTERS in req.user.groups or req.subresource:
            return
        authz = self.authorization.authorizer
        obj: Mapping[str, Any] = req.obj
        if spec.kind in ("Role", "ClusterRole"):
            error = check_role_write(authz, req.user, obj, cluster=spec.kind == "ClusterRole", old=req.old)
        elif spec.kind in ("RoleBinding", "ClusterRoleBinding"):
            error = check_binding_write(authz, req.user, obj, cluster=spec.kind == "ClusterRoleBinding",
                                        old=req.old)
        else:
            return
        if error is not None:
            raise error
