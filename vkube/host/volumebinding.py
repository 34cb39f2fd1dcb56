"""The scheduler's VolumeBinding plugin for the embedded host: a pod whose claims cannot be
bound is not placed, and a claim that waits for its first consumer gets the chosen node.

As kube-scheduler's plugin: PreFilter refuses pods whose claims are missing, being deleted or
unbound with ``Immediate`` binding; Filter keeps nodes a bound volume's node affinity allows
and, for ``WaitForFirstConsumer`` claims, nodes where a static volume fits or a provisioner
can make one; PreBind annotates such claims with ``volume.kubernetes.io/selected-node`` (or
pre-binds the static volume) and waits until the PV controller has bound them all.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from vkube.api import errors
from vkube.api.meta import Obj
from vkube.client import Client
from vkube.client.resources import PVCS, PVS
from vkube.controllers.informer import Informer
from vkube.controllers.pvcprotection import claims_of
from vkube.host.predicates import (NodeInfo, match_label_selector, match_node_selector,
                                   resource_value)


ANN_SELECTED_NODE = "volume.kubernetes.io/selected-node"
NO_PROVISIONER = "kubernetes.io/no-provisioner"
R_UNBOUND_IMMEDIATE = "pod has unbound immediate PersistentVolumeClaims"
R_NODE_CONFLICT = "node(s) had volume node affinity conflict"
R_BIND_CONFLICT = "node(s) didn't find available persistent volumes to bind"
#: kube-scheduler's bindTimeoutSeconds
BIND_TIMEOUT = 600.0


def storage_bytes(value: Any) -> int:
    """A storage quantity in bytes (0 if absent or malformed: it then fits nothing)."""
    try:
        return resource_value("storage", value) if value is not None else 0
    except ValueError:
        return 0


def volume_fits(pv: Obj, pvc: Obj, *, class_name: str) -> bool:
    """Could the PV controller bind ``pvc`` to the available volume ``pv``?"""
    spec, want = pv.get("spec") or {}, pvc.get("spec") or {}
    ref = spec.get("claimRef")
    meta = pvc["metadata"]
    if ref and (ref.get("namespace"), ref.get("name")) != (meta["namespace"], meta["name"]):
        return False
    if ref and ref.get("uid") and ref["uid"] != meta.get("uid"):
        return False
    if not ref and (pv.get("status") or {}).get("phase") not in (None, "Available"):
        return False
    if pv["metadata"].get("deletionTimestamp") or (spec.get("storageClassName") or "") != \
            class_name:
        return False
    if (spec.get("volumeMode") or "Filesystem") != (want.get("volumeMode") or "Filesystem"):
        return False
    if not set(want.get("accessModes") or []) <= set(spec.get("accessModes") or []):
        return False
    need = ((want.get("resources") or {}).get("requests") or {}).get("storage")
    if storage_bytes(need) > storage_bytes((spec.get("capacity") or {}).get("storage")):
        return False
    if want.get("selector") and not match_label_selector(
            want["selector"], pv["metadata"].get("labels") or {}):
        return False
    return True


def volume_mismatch(pv: Obj, pvc: Obj) -> str | None:
    """Why a claim naming the unclaimed volume ``pv`` in ``spec.volumeName`` cannot be bound
    to it (None: it can), as upstream's ``checkVolumeSatisfyClaim``: a claim cannot take just
    any free volume by naming it."""
    spec, want = pv.get("spec") or {}, pvc.get("spec") or {}
    need = ((want.get("resources") or {}).get("requests") or {}).get("storage")
    if storage_bytes(need) > storage_bytes((spec.get("capacity") or {}).get("storage")):
        return "requested PV is too small"
    if (spec.get("storageClassName") or "") != (want.get("storageClassName") or ""):
        return "storageClassName does not match"
    if (spec.get("volumeMode") or "Filesystem") != (want.get("volumeMode") or "Filesystem"):
        return "incompatible volumeMode"
    if not set(want.get("accessModes") or []) <= set(spec.get("accessModes") or []):
        return "incompatible accessMode"
    if want.get("selector") and not match_label_selector(
            want["selector"], pv["metadata"].get("labels") or {}):
        return "the volume's labels do not match the claim's selector"
    return None


def node_allowed(pv: Obj, node: Obj) -> bool:
    """The PV's ``nodeAffinity.required`` admits ``node`` (no affinity: every node)."""
    required = (((pv.get("spec") or {}).get("nodeAffinity") or {}).get("required"))
    return required is None or match_node_selector(required, node)


@dataclass
class PodClaims:
    """A pod's claims as PreFilter found them, for Filter and PreBind."""

    bound: list[Obj]  # the claims' volumes
    delayed: list[Obj]  # unbound WaitForFirstConsumer claims


class VolumeBinder:
    """Reads PVCs, PVs and StorageClasses from informers the embedded host runs."""

    def __init__(self, client: Client, pvcs: Informer, pvs: Informer, classes: Informer, *,
                 bind_timeout: float = BIND_TIMEOUT, poll: float = 0.2) -> None:
        self.client = client
        self.pvcs, self.pvs, self.classes = pvcs, pvs, classes
        self.bind_timeout, self.poll = bind_timeout, poll

    # -- PreFilter -------------------------------------------------------------------------
    def prefilter(self, pod: Obj) -> tuple[str | None, PodClaims]:
        """A reason no node can take the pod (kube-scheduler's PreFilter message), or None
        and the pod's bound volumes and delayed claims."""
        ns = pod["metadata"]["namespace"]
        claims = PodClaims([], [])
        immediate = False
        for name in claims_of(pod):
            pvc = self.pvcs.get(name, ns)
            if pvc is None:
                return f'persistentvolumeclaim "{name}" not found', claims
            if pvc["metadata"].get("deletionTimestamp"):
                return f'persistentvolumeclaim "{name}" is being deleted', claims
            volume = (pvc.get("spec") or {}).get("volumeName")
            if volume:
                pv = self.pvs.get(volume)
                if pv is None:
                    return f'pvc {ns}/{name} is bound to non-existent pv "{volume}"', claims
                claims.bound.append(pv)
                continue
            sc = self.classes.get((pvc.get("spec") or {}).get("storageClassName") or "")
            if sc is not None and sc.get("volumeBindingMode") == "WaitForFirstConsumer":
                claims.delayed.append(pvc)
            else:
                immediate = True
        if immediate:
            return R_UNBOUND_IMMEDIATE, claims
        return None, claims

    # -- Filter ----------------------------------------------------------------------------
    def filter(self, claims: PodClaims, node: NodeInfo) -> str | None:
        for pv in claims.bound:
            if not node_allowed(pv, node.node):
                return R_NODE_CONFLICT
        taken: set[str] = set()
        for pvc in claims.delayed:
            if self._static_volume(pvc, node.node, taken) is not None:
                continue
            sc = self.classes.get(pvc["spec"].get("storageClassName") or "") or {}
            if sc.get("provisioner", NO_PROVISIONER) == NO_PROVISIONER or \
                    not _topology_allows(sc, node.node):
                return R_BIND_CONFLICT
        return None

    def _static_volume(self, pvc: Obj, node: Obj, taken: set[str]) -> Obj | None:
        class_name = pvc["spec"].get("storageClassName") or ""
        best = None
        for pv in self.pvs.list():
            name = pv["metadata"]["name"]
            if name in taken or not volume_fits(pv, pvc, class_name=class_name) or \
                    not node_allowed(pv, node):
                continue
            size = storage_bytes(((pv.get("spec") or {}).get("capacity") or {}).get("storage"))
            if best is None or size < best[0]:
                best = (size, pv)
        if best is None:
            return None
        taken.add(best[1]["metadata"]["name"])
        return best[1]

    # -- PreBind ---------------------------------------------------------------------------
    async def prebind(self, pod: Obj, node: Obj, claims: PodClaims) -> None:
        """Bind or annotate the delayed claims for ``node`` and wait until every claim of the
        pod is bound. Raises TimeoutError (the pod goes back to the queue) or an API error."""
        taken: set[str] = set()
        for pvc in claims.delayed:
            meta = pvc["metadata"]
            pv = self._static_volume(pvc, node, taken)
            if pv is not None and not (pv.get("spec") or {}).get("claimRef"):
                body = {"spec": {"claimRef": {
                    "kind": "PersistentVolumeClaim", "apiVersion": "v1",
                    "namespace": meta["namespace"], "name": meta["name"], "uid": meta["uid"]}}}
                await self.client.patch(PVS, pv["metadata"]["name"], body)
            elif pv is None:
                ann = meta.get("annotations") or {}
                if ann.get(ANN_SELECTED_NODE) != node["metadata"]["name"]:
                    await self.client.patch(PVCS, meta["name"], {"metadata": {"annotations": {
                        ANN_SELECTED_NODE: node["metadata"]["name"]}}},
                        namespace=meta["namespace"])
        if claims.delayed:
            await self._wait_bound(pod)

    async def _wait_bound(self, pod: Obj) -> None:
        ns = pod["metadata"]["namespace"]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.bind_timeout
        while True:
            pending = []
            for name in claims_of(pod):
                pvc = self.pvcs.get(name, ns)
                if pvc is None:
                    raise errors.NotFound(f'persistentvolumeclaim "{name}" not found')
                if (pvc.get("status") or {}).get("phase") != "Bound":
                    pending.append(name)
            if not pending:
                return
            if loop.time() > deadline:
                raise TimeoutError(f"binding volumes: claims {', '.join(pending)} of pod "
                                   f"{ns}/{pod['metadata']['name']} not bound in time")
            await asyncio.sleep(self.poll)


def _topology_allows(sc: Obj, node: Obj) -> bool:
    """A class's ``allowedTopologies`` (label terms) admit the node."""
    terms = sc.get("allowedTopologies")
    if not terms:
        return True
    labels = (node.get("metadata") or {}).get("labels") or {}
    return any(all(labels.get(e.get("key")) in (e.get("values") or [])
                   for e in t.get("matchLabelExpressions") or []) for t in terms)
