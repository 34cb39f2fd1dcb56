"""The claim a tenant's PersistentVolume is kept for on the host.

A PV the tenant made without a ``claimRef`` would be Available on the host to every claim of
its class: another tenant's (with ``sync.storageclasses`` off both name the host's classes) or a
host namespace's. Upstream's PV controller never binds a volume whose ``claimRef`` names another
claim (``FindMatchingVolume`` skips it unless ``IsVolumeBoundToClaim``) and keeps a volume
pre-bound to a claim not made yet Available. So the host copy always names a claim of this
cluster's host namespace:

- the host claim that names it in ``volumeName`` (the tenant bound them by name), else
- the oldest pending host claim of this cluster it fits (class, volume mode, access modes,
  size, the claim's selector), one no other volume of this cluster is kept for, else
- :func:`unclaimed_name`, a name no synced claim has: kept for nobody until one of ours fits.

Once the host's controller bound it (``claimRef.uid`` set) the reference is never changed.
"""

from __future__ import annotations

from collections.abc import Iterable

from vkube.api.errors import StatusError
from vkube.api.meta import Obj
from vkube.api.quantity import QuantityError, parse_quantity
from vkube.api.selectors import label_selector_from_dict


def unclaimed_name(vc: str) -> str:
    """A claim name no synced claim of ``vc`` has (they are ``NAME-x-NS-x-VC`` or a digest)."""
    return f"vkube-unclaimed-x-{vc}"


def claim_ref(namespace: str, name: str) -> Obj:
    return {"kind": "PersistentVolumeClaim", "apiVersion": "v1", "namespace": namespace,
            "name": name}


def _bytes(value: object) -> int | None:
    try:
        return parse_quantity(value).int_value() if value is not None else None
    except (QuantityError, ValueError, TypeError):
        return None


def fits(pv_spec: Obj, pv_labels: dict[str, str], claim: Obj) -> bool:
    """Could upstream's binder give this (host) volume to this (host) claim?"""
    want = claim.get("spec") or {}
    if (pv_spec.get("storageClassName") or "") != (want.get("storageClassName") or ""):
        return False
    if (pv_spec.get("volumeMode") or "Filesystem") != (want.get("volumeMode") or "Filesystem"):
        return False
    if not set(want.get("accessModes") or []) <= set(pv_spec.get("accessModes") or []):
        return False
    need = _bytes(((want.get("resources") or {}).get("requests") or {}).get("storage"))
    have = _bytes((pv_spec.get("capacity") or {}).get("storage"))
    if need is None or have is None or have < need:
        return False
    if want.get("selector") is not None:
        try:
            if not label_selector_from_dict(want["selector"]).matches(pv_labels):
                return False
        except StatusError:  # a malformed selector matches nothing
            return False
    return True


def pick_claim(pv_name: str, pv_spec: Obj, pv_labels: dict[str, str], claims: Iterable[Obj],
               taken: set[str]) -> str | None:
    """The host claim (name) host volume ``pv_name`` is kept for, or None (see module doc)."""
    live = [c for c in claims if not c["metadata"].get("deletionTimestamp")]
    order = sorted(live, key=lambda c: (c["metadata"].get("creationTimestamp") or "",
                                        c["metadata"]["name"]))
    for c in order:
        if (c.get("spec") or {}).get("volumeName") == pv_name:
            return str(c["metadata"]["name"])
    for c in order:
        if (c.get("spec") or {}).get("volumeName") or c["metadata"]["name"] in taken or \
                (c.get("status") or {}).get("phase") == "Bound":
            continue
        if fits(pv_spec, pv_labels, c):
            return str(c["metadata"]["name"])
    return None
