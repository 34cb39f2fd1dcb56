"""NodeRestriction (``plugin/pkg/admission/noderestriction``): what the Node authorizer lets a
kubelet do, limited to its own node. A ``system:node:NAME`` may

* create only mirror pods (``kubernetes.io/config.mirror``) bound to itself, and change the
  status of, delete or evict only pods bound to itself;
* create, change and delete only its own Node (and set no ``node-restriction.kubernetes.io/``
  labels), only its own Lease in ``kube-node-lease`` and its own CSINode.

Refusals carry upstream's words (``node "n1" can only update pod status for pods with
spec.nodeName set to itself``). Everyone else passes untouched.
"""

from __future__ import annotations

from typing import Any

from vkube.api import errors
from vkube.apiserver.context import AdmissionRequest, Context
from vkube.apiserver.nodeauthz import node_name_of

MIRROR = "kubernetes.io/config.mirror"
RESTRICTED_LABEL_DOMAIN = "node-restriction.kubernetes.io/"


def _bound_to(pod: Any) -> str:
    return ((pod or {}).get("spec") or {}).get("nodeName") or ""


class NodeRestriction:
    async def validate(self, ctx: Context, req: AdmissionRequest) -> None:
        node = node_name_of(req.user)
        if node is None:
            return
        group, kind = req.spec.group, req.spec.kind
        if group == "" and kind == "Pod":
            self._pod(node, req)
        elif group == "" and kind == "Node":
            self._node(node, req)
        elif group == "coordination.k8s.io" and kind == "Lease" and req.namespace == "kube-node-lease":
            if req.name != node:
                raise self._refuse(req, f'node "{node}" is not allowed to modify lease "{req.name}"')
        elif group == "storage.k8s.io" and kind == "CSINode" and req.name != node:
            raise self._refuse(req, f'node "{node}" is not allowed to modify object "{req.name}"')
        elif group == "resource.k8s.io" and kind == "ResourceSlice":
            # a node publishes (and removes) only the devices on itself
            slices = [o for o in (req.obj, req.old) if o is not None]
            if any(((o.get("spec") or {}).get("nodeName") or "") != node for o in slices):
                raise self._refuse(req, f'node "{node}" can only modify ResourceSlices with spec.nodeName '
                                        "set to itself")

    def _pod(self, node: str, req: AdmissionRequest) -> None:
        op, sub = req.operation, req.subresource
        if op == "CREATE" and not sub:
            annotations = ((req.obj or {}).get("metadata") or {}).get("annotations") or {}
            if MIRROR not in annotations:
                raise self._refuse(req, f'pod does not have "{MIRROR}" annotation, node "{node}" can only '
                                        "create mirror pods")
            if _bound_to(req.obj) != node:
                raise self._refuse(req, f'node "{node}" can only create pods with spec.nodeName set to itself')
        elif op == "UPDATE" and sub == "status":
            if _bound_to(req.old) != node:
                raise self._refuse(req, f'node "{node}" can only update pod status for pods with '
                                        "spec.nodeName set to itself")
        elif op == "UPDATE" and not sub:
            raise self._refuse(req, f'node "{node}" can only update pod status')
        elif op == "DELETE" and not sub:
            if _bound_to(req.old or req.obj) != node:
                raise self._refuse(req, f'node "{node}" can only delete pods with spec.nodeName set to itself')
        elif op == "CREATE" and sub == "eviction":
            if _bound_to(req.old) and _bound_to(req.old) != node:
                raise self._refuse(req, f'node "{node}" can only evict pods with spec.nodeName set to itself')

    def _node(self, node: str, req: AdmissionRequest) -> None:
        if req.name and req.name != node:
            raise self._refuse(req, f'node "{node}" is not allowed to modify node "{req.name}"')
        if req.operation in ("CREATE", "UPDATE") and req.obj is not None:
            new = ((req.obj.get("metadata") or {}).get("labels") or {})
            old = (((req.old or {}).get("metadata") or {}).get("labels") or {})
            changed = {k for k in set(new) | set(old) if new.get(k) != old.get(k)}
            bad = sorted(k for k in changed if k.split("/")[0].endswith(RESTRICTED_LABEL_DOMAIN.rstrip("/")))
            if bad:
                raise self._refuse(req, f'is not allowed to modify labels: {", ".join(bad)}')

    @staticmethod
    def _refuse(req: AdmissionRequest, reason: str) -> errors.StatusError:
        return errors.forbidden(req.spec.plural, req.name, reason, group=req.spec.group)
