"""The Node authorizer (``plugin/pkg/auth/authorizer/node``): a kubelet (``system:node:NAME`` in
``system:nodes``) reads only what the pods bound to its node need.

:class:`NodeGraph` follows the store's pods, claims and volumes (the upstream graph populator's
informers) and keeps, per node, the objects its pods reference: their service accounts,
Secrets and ConfigMaps (volumes, projected sources, env, envFrom, image pull secrets), claims
(and the volumes bound to them) and resource claims. :meth:`NodeGraph.authorize` is upstream's
decision:

* Secrets, ConfigMaps, PVCs, PVs, ResourceClaims, ServiceAccount tokens: allowed only for an
  object on a path from the node (``get``, and ``list``/``watch`` of one name for Secrets and
  ConfigMaps; ``create`` of ``serviceaccounts/token``), otherwise no opinion, with upstream's
  reason ``no relationship found between node 'N' and this object``;
* the node's own Lease in ``kube-node-lease`` and its own CSINode;
* everything else by the ``system:node`` role's rules (upstream's ``NodeRules``), minus the
  graph-checked kinds.

No opinion falls through to RBAC, where ``system:node`` is bound to nobody (as upstream since
1.8), so it ends in a 403.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Iterable
from typing import Any

from vkube.api.rbac import Attributes, Decision
from vkube.api.rbac.bootstrap import cluster_roles
from vkube.api.rbac.rules import Rule, compile_rule
from vkube.api.user import UserInfo
from vkube.apiserver.objects import decode
from vkube.store.base import Compacted, StoreClosed, StoreError

log = logging.getLogger("vkube.apiserver.nodeauthz")

__all__ = ["NodeGraph", "node_name_of", "pod_references"]

NODES_GROUP = "system:nodes"
NODE_PREFIX = "system:node:"
Ref = tuple[str, str, str]  # (kind, namespace, name)
#: resource → graph kind, for the kinds the graph decides alone
_GRAPH = {"secrets": "secret", "configmaps": "configmap", "persistentvolumeclaims": "pvc",
          "persistentvolumes": "pv", "resourceclaims": "resourceclaim"}


def node_name_of(user: UserInfo) -> str | None:
    """The node a kubelet identity stands for (``NodeIdentifier``), else None."""
    if NODES_GROUP in user.groups and user.name.startswith(NODE_PREFIX) and len(user.name) > len(NODE_PREFIX):
        return user.name[len(NODE_PREFIX):]
    return None


def pod_references(pod: dict[str, Any]) -> set[Ref]:
    """What a pod's kubelet must read: upstream's ``AddPod`` edges."""
    meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
    ns = meta.get("namespace") or ""
    refs: set[Ref] = {("serviceaccount", ns, spec.get("serviceAccountName") or "default")}
    for s in spec.get("imagePullSecrets") or ():
        if isinstance(s, dict) and s.get("name"):
            refs.add(("secret", ns, s["name"]))
    containers = [*(spec.get("initContainers") or ()), *(spec.get("containers") or ()),
                  *(spec.get("ephemeralContainers") or ())]
    for c in containers:
        if not isinstance(c, dict):
            continue
        for e in c.get("envFrom") or ():
            if isinstance(e, dict):
                _add(refs, "configmap", ns, e.get("configMapRef"))
                _add(refs, "secret", ns, e.get("secretRef"))
        for e in c.get("env") or ():
            src = (e or {}).get("valueFrom") or {} if isinstance(e, dict) else {}
            _add(refs, "configmap", ns, src.get("configMapKeyRef"))
            _add(refs, "secret", ns, src.get("secretKeyRef"))
    for v in spec.get("volumes") or ():
        if not isinstance(v, dict):
            continue
        if isinstance(v.get("secret"), dict) and v["secret"].get("secretName"):
            refs.add(("secret", ns, v["secret"]["secretName"]))
        _add(refs, "configmap", ns, v.get("configMap"))
        for src in (v.get("projected") or {}).get("sources") or ():
            if isinstance(src, dict):
                _add(refs, "configmap", ns, src.get("configMap"))
                _add(refs, "secret", ns, src.get("secret"))
        claim = (v.get("persistentVolumeClaim") or {}).get("claimName")
        if claim:
            refs.add(("pvc", ns, claim))
        if v.get("ephemeral") is not None and v.get("name"):
            refs.add(("pvc", ns, f"{meta.get('name')}-{v['name']}"))
        for key in ("csi", "cephfs", "rbd", "iscsi", "flexVolume", "azureFile", "scaleIO", "storageos"):
            vol = v.get(key)
            if isinstance(vol, dict):
                for ref_key in ("secretRef", "nodePublishSecretRef"):
                    _add(refs, "secret", ns, vol.get(ref_key))
                if key == "azureFile" and vol.get("secretName"):
                    refs.add(("secret", ns, vol["secretName"]))
    for rc in (pod.get("status") or {}).get("resourceClaimStatuses") or ():
        if isinstance(rc, dict) and rc.get("resourceClaimName"):
            refs.add(("resourceclaim", ns, rc["resourceClaimName"]))
    for rc in spec.get("resourceClaims") or ():
        if isinstance(rc, dict) and rc.get("resourceClaimName"):
            refs.add(("resourceclaim", ns, rc["resourceClaimName"]))
    return refs


def _add(refs: set[Ref], kind: str, ns: str, ref: Any) -> None:
    if isinstance(ref, dict) and ref.get("name"):
        refs.add((kind, ns, ref["name"]))


def _node_rules() -> tuple[Rule, ...]:
    """``system:node``'s rules without the kinds the graph decides."""
    role = next(r for r in cluster_roles() if r["metadata"]["name"] == "system:node")
    out = []
    for rule in role.get("rules") or ():
        resources = [r for r in rule.get("resources") or () if r.split("/")[0] not in _GRAPH]
        if rule.get("resources") and not resources:
            continue
        out.append(compile_rule({**rule, "resources": resources} if rule.get("resources") else rule))
    return tuple(out)


#: how ``spec.nodeName`` appears in a stored pod (compact JSON: a key is the only place
#: the quoted name and a colon meet unescaped)
_NODE_NAME = b'"nodeName":'


class NodeGraph:
    """Pods (and claims) per node, following the store; the Node authorizer's decisions."""

    def __init__(self, ctx: Any) -> None:
        self.ctx = ctx  # vkube.apiserver.context.Context
        self._pods: dict[str, tuple[str, frozenset[Ref]]] = {}
        self._edges: dict[str, Counter[Ref]] = {}
        self._pv_of_claim: dict[tuple[str, str], str] = {}
        self._rules = _node_rules()
        self._tasks: list[asyncio.Task[None]] = []

    # -- following the store ------------------------------------------------------------------

    def _prefix(self, kind: str) -> str:
        storage = self.ctx.storage_for("", kind)
        return storage.spec.key_prefix(None)

    async def start(self) -> None:
        for kind, apply in (("Pod", self._on_pod), ("PersistentVolumeClaim", self._on_claim)):
            prefix = self._prefix(kind)
            revision = await self._relist(prefix, apply)
            task = asyncio.get_running_loop().create_task(self._follow(prefix, apply, revision))
            self.ctx.watch_tasks.add(task)
            task.add_done_callback(self.ctx.watch_tasks.discard)
            self._tasks.append(task)

    async def _relist(self, prefix: str, apply: Any) -> int:
        res = await self.ctx.store.range(prefix)
        if apply == self._on_pod:
            for key in list(self._pods):
                self._on_pod(key, None)
        else:
            self._pv_of_claim.clear()
        for kv in res.kvs:
            apply(kv.key, decode(kv))
        return res.revision

    async def _follow(self, prefix: str, apply: Any, revision: int) -> None:
        kind = "Pod" if apply == self._on_pod else "PersistentVolumeClaim"
        while True:
            try:
                async for event in self.ctx.watch_fanout().watch(prefix, after_revision=revision):
                    revision = event.revision
                    key = event.kv.key
                    if event.type == "DELETED":
                        apply(key, None)
                        continue
                    storage = self.ctx.storage_for("", kind)  # the current one (encryption may change)
                    if apply == self._on_pod and key not in self._pods and storage.plain_at_rest() \
                            and _NODE_NAME not in event.kv.value:
                        continue  # neither bound now nor before: no edges either way
                    # decoded once with the pod watchers (it was decoded once per follower)
                    apply(key, storage.watch_object(event.kv))
                return
            except Compacted:
                revision = await self._relist(prefix, apply)
            except StoreClosed:
                return
            except StoreError:
                log.exception("node graph watch of %s failed; re-reading", prefix)
                await asyncio.sleep(0.5)
                revision = await self._relist(prefix, apply)

    def _on_pod(self, key: str, pod: dict[str, Any] | None) -> None:
        old = self._pods.pop(key, None)
        if old is not None:
            edges = self._edges.get(old[0])
            if edges is not None:
                edges.subtract(old[1])
                for ref in old[1]:
                    if edges[ref] <= 0:
                        del edges[ref]
        node = ((pod or {}).get("spec") or {}).get("nodeName") if pod is not None else None
        if not node:
            return
        refs = frozenset(pod_references(pod))  # type: ignore[arg-type]
        self._pods[key] = (node, refs)
        self._edges.setdefault(node, Counter()).update(refs)

    def _on_claim(self, key: str, pvc: dict[str, Any] | None) -> None:
        parts = key.rstrip("/").split("/")
        ns, name = parts[-2], parts[-1]
        if pvc is None:
            self._pv_of_claim.pop((ns, name), None)
        else:
            self._pv_of_claim[(ns, name)] = (pvc.get("spec") or {}).get("volumeName") or ""

    # -- decisions ----------------------------------------------------------------------------

    def related(self, node: str, kind: str, namespace: str, name: str) -> bool:
        edges = self._edges.get(node) or {}
        if kind == "pv":
            return any(k == "pvc" and self._pv_of_claim.get((ns, n)) == name for (k, ns, n) in edges)
        return (kind, namespace, name) in edges

    def authorize(self, user: UserInfo, attrs: Attributes) -> Decision | None:
        """Allowed; not allowed with upstream's reason (RBAC may still allow); or None for no
        opinion. Only kubelet identities get an opinion."""
        node = node_name_of(user)
        if node is None:
            return None
        if not attrs.resource_request:
            return Decision(True) if any(r.allows_path(attrs.verb, attrs.path) for r in self._rules) else None
        group, resource, sub = attrs.api_group, attrs.resource, attrs.subresource
        if group == "" and resource in _GRAPH and not sub:
            return self._graph(node, attrs, _GRAPH[resource])
        if group == "resource.k8s.io" and resource == "resourceclaims" and not sub:
            return self._graph(node, attrs, "resourceclaim")
        if group == "" and resource == "serviceaccounts" and sub == "token":
            if attrs.verb == "create" and self.related(node, "serviceaccount", attrs.namespace, attrs.name):
                return Decision(True)
            return None
        if group == "coordination.k8s.io" and resource == "leases":
            if attrs.namespace == "kube-node-lease" and attrs.name == node and attrs.verb in (
                    "get", "create", "update", "patch", "delete"):
                return Decision(True)
            if attrs.namespace == "kube-node-lease" and attrs.verb == "create" and not attrs.name:
                return Decision(True)  # create carries its name in the body (NodeRestriction checks it)
            return None
        if group == "storage.k8s.io" and resource == "csinodes":
            if attrs.verb in ("get", "create", "update", "patch", "delete") and (attrs.name in ("", node)):
                return Decision(True)
            return None
        if any(r.allows_resource(attrs.verb, group, resource, sub, attrs.name) for r in self._rules):
            return Decision(True)
        return None

    def _graph(self, node: str, attrs: Attributes, kind: str) -> Decision | None:
        verbs: Iterable[str] = ("get", "list", "watch") if kind in ("secret", "configmap") else ("get",)
        if attrs.verb not in verbs or not attrs.name:
            return None
        if self.related(node, kind, attrs.namespace, attrs.name):
            return Decision(True)
        return Decision(False, f"no relationship found between node '{node}' and this object")
