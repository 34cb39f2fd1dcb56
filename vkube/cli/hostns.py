"""The host side of a virtual cluster's state: its host namespace, labelled
``vkube.io/vcluster: NAME`` with annotations for created/status/values, so any machine that
can reach the host can list and describe it. Also the host objects the syncer owns."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from vkube.api import errors
from vkube.cli.output import CLIError
from vkube.client import Client
from vkube.client.resources import (CONFIGMAPS, ENDPOINTS, INGRESSES, NAMESPACES,
                                    NETWORKPOLICIES, PODS, PVCS, PVS, SECRETS, SERVICEACCOUNTS,
                                    SERVICES, STORAGECLASSES)

# The kinds the syncer may create on the host (vkube.syncer.syncer.cleanup_host deletes them).
_NAMESPACED = (PODS, SERVICES, ENDPOINTS, CONFIGMAPS, SECRETS, PVCS, INGRESSES, NETWORKPOLICIES,
               SERVICEACCOUNTS)
_CLUSTER = (STORAGECLASSES, PVS)

LABEL_VCLUSTER = "vkube.io/vcluster"
LABEL_MANAGED_BY = "vkube.io/managed-by"
ANN_CREATED = "vkube.io/created"
ANN_STATUS = "vkube.io/status"
ANN_VALUES = "vkube.io/values"
ANN_OWNS_NS = "vkube.io/namespace-created"
ANN_URL = "vkube.io/api-server"
#: the Pod Security level vkube's isolation labelled the namespace with (the proof that the
#: ``pod-security.kubernetes.io/enforce``/``warn`` labels are vkube's, so they go when isolation
#: does); the syncer writes the same (vkube.syncer.isolation)
ANN_PSS = "vkube.io/isolation-pod-security"
PSS_MODES = ("enforce", "warn")
_ANNOTATIONS = (ANN_CREATED, ANN_STATUS, ANN_VALUES, ANN_OWNS_NS, ANN_URL)


def pod_security_patch(meta: dict[str, Any], values: dict[str, Any] | None) -> dict[str, Any]:
    """The labels/annotations patch that makes the namespace's Pod Security labels follow
    ``isolation`` in ``values``: set (and marked as vkube's) when it is on; when it is off, the
    labels vkube set (the mark proves it, and they still hold its level) removed. A user's own
    labels (no mark, or changed since) are left alone. ``values=None``: only remove."""
    iso = (values or {}).get("isolation") or {}
    labels = meta.get("labels") or {}
    ann = meta.get("annotations") or {}
    if iso.get("enabled"):
        level = iso.get("podSecurityStandard") or "baseline"
        return {"labels": {f"pod-security.kubernetes.io/{m}": level for m in PSS_MODES},
                "annotations": {ANN_PSS: level}}
    ours = ann.get(ANN_PSS)
    if not ours:
        return {}
    return {"labels": {f"pod-security.kubernetes.io/{m}": None for m in PSS_MODES
                       if labels.get(f"pod-security.kubernetes.io/{m}") == ours},
            "annotations": {ANN_PSS: None}}


async def get_namespace(host: Client, namespace: str) -> dict[str, Any] | None:
    try:
        return await host.get(NAMESPACES, namespace)
    except errors.NotFound:
        return None


async def claim_namespace(host: Client, *, name: str, namespace: str, created: str,
                          status: str, values: dict[str, Any], known_new: bool = False,
                          pod_security: bool = False) -> bool:
    """Create the host namespace (or adopt an existing unclaimed one); returns whether vkube
    created it (only then does ``delete`` remove it). ``known_new``: the caller saw it missing
    just before, so it is ours even if our own syncer created it a moment ago.
    ``pod_security``: its Pod Security labels follow ``values``' isolation
    (``pod_security_patch``) — here, with the user's credentials, since a syncer whose
    isolation is off may not label its namespace, yet must not leave the old level behind."""
    ann = {ANN_CREATED: created, ANN_STATUS: status, ANN_VALUES: _compact(values)}
    ns = await get_namespace(host, namespace)
    if ns is None:
        pss = pod_security_patch({}, values) if pod_security else {}
        body = {"apiVersion": "v1", "kind": "Namespace",
                "metadata": {"name": namespace,
                             "labels": {**pss.get("labels", {}), LABEL_VCLUSTER: name},
                             "annotations": {**pss.get("annotations", {}), **ann,
                                             ANN_OWNS_NS: "true"}}}
        try:
            await host.create(NAMESPACES, body)
            return True
        except errors.AlreadyExists:
            ns = await host.get(NAMESPACES, namespace)
    meta = ns.get("metadata") or {}
    owner = (meta.get("labels") or {}).get(LABEL_VCLUSTER)
    if owner and owner != name:
        raise CLIError(f"host namespace {namespace!r} already belongs to virtual cluster "
                       f"{owner!r} — choose another one with -n")
    if meta.get("deletionTimestamp"):
        raise CLIError(f"host namespace {namespace!r} is being deleted — wait a moment and "
                       "try again, or choose another one with -n")
    owns = known_new or (meta.get("annotations") or {}).get(ANN_OWNS_NS) == "true"
    pss = pod_security_patch(meta, values) if pod_security else {}
    await host.patch(NAMESPACES, namespace, {"metadata": {
        "labels": {**pss.get("labels", {}), LABEL_VCLUSTER: name},
        "annotations": {**pss.get("annotations", {}), **ann,
                        ANN_OWNS_NS: "true" if owns else "false"}}})
    return owns


async def annotate(host: Client, namespace: str, **values: Any) -> None:
    """Update status/values/url annotations; a missing namespace is not an error."""
    keys = {"status": ANN_STATUS, "values": ANN_VALUES, "url": ANN_URL}
    ann = {keys[k]: (_compact(v) if k == "values" else v) for k, v in values.items()}
    try:
        await host.patch(NAMESPACES, namespace, {"metadata": {"annotations": ann}})
    except errors.NotFound:
        pass


async def release_namespace(host: Client, namespace: str, *, delete: bool,
                            wait: float = 15.0) -> None:
    """Delete the namespace (and wait until it is gone), or only drop vkube's marks on it."""
    if not delete:
        try:
            ns = await get_namespace(host, namespace)
            pss = pod_security_patch((ns or {}).get("metadata") or {}, None)
            patch = {"metadata": {"labels": {**pss.get("labels", {}), LABEL_VCLUSTER: None},
                                  "annotations": {**pss.get("annotations", {}),
                                                  **{a: None for a in _ANNOTATIONS}}}}
            await host.patch(NAMESPACES, namespace, patch)
        except errors.NotFound:
            pass
        return
    try:
        await host.delete(NAMESPACES, namespace, propagation_policy="Background")
    except errors.NotFound:
        return
    deadline = time.monotonic() + wait
    delay = 0.02
    while time.monotonic() < deadline:
        if await get_namespace(host, namespace) is None:
            return
        await asyncio.sleep(delay)
        delay = min(delay * 1.5, 0.25)


async def virtual_clusters(host: Client) -> list[dict[str, Any]]:
    """Every virtual cluster the host knows of, from its labelled namespaces."""
    out = []
    items = (await host.list(NAMESPACES, label_selector=LABEL_VCLUSTER)).get("items") or []
    for ns in items:
        meta = ns.get("metadata") or {}
        ann = meta.get("annotations") or {}
        try:
            values = json.loads(ann.get(ANN_VALUES) or "{}")
        except ValueError:
            values = {}
        out.append({"name": meta["labels"][LABEL_VCLUSTER], "namespace": meta["name"],
                    "status": ann.get(ANN_STATUS) or "Unknown",
                    "created": ann.get(ANN_CREATED) or meta.get("creationTimestamp") or "",
                    "values": values, "url": ann.get(ANN_URL) or "",
                    "tenancy": (meta.get("labels") or {}).get("vkube.io/tenancy") or "vcluster"})
    return out


async def synced_counts(host: Client, namespace: str, name: str) -> dict[str, int]:
    """Host objects labelled as this virtual cluster's, by kind (only non-zero kinds)."""
    selector = f"{LABEL_MANAGED_BY}={name}"

    async def count(res: Any, ns: str | None) -> tuple[str, int]:
        try:
            lst = await host.list(res, namespace=ns, label_selector=selector)
        except (errors.NotFound, errors.Forbidden):
            return res.kind, 0
        return res.kind, len(lst.get("items") or [])

    pairs = await asyncio.gather(*(count(r, namespace) for r in _NAMESPACED),
                                 *(count(r, None) for r in _CLUSTER))
    return {k: n for k, n in pairs if n}


def _compact(v: Any) -> str:
    return json.dumps(v, sort_keys=True, separators=(",", ":"))
