"""Annotations of a virtual cluster's objects that only its syncer writes.

``vkube.io/host-pv`` marks a virtual PersistentVolume as the mirror of a volume the host
provisioned for one of the tenant's claims. Set by a tenant on a PV of its own it would claim
that mirror's standing (the syncer judges it again and refuses it, but the write itself is the
fault): a tenant's create or update that adds, changes or removes such an annotation is refused
here (403, naming the annotation); the syncer passes under its own identity."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from vkube.api.forbidden import forbidden
from vkube.apiserver.context import AdmissionRequest, Context

__all__ = ["SyncerAnnotations"]


class SyncerAnnotations:
    def __init__(self, annotations: Mapping[tuple[str, str], Iterable[str]], *,
                 writer: str) -> None:
        """``annotations``: per (group, plural) the annotation keys only ``writer`` sets."""
        self.annotations = {res: frozenset(keys) for res, keys in annotations.items()}
        self.writer = writer

    async def validate(self, ctx: Context, req: AdmissionRequest) -> None:
        keys = self.annotations.get((req.spec.group, req.spec.plural))
        if not keys or req.user.name == self.writer or req.subresource or \
                req.operation not in ("CREATE", "UPDATE"):
            return
        new = ((req.obj or {}).get("metadata") or {}).get("annotations") or {}
        old = ((req.old or {}).get("metadata") or {}).get("annotations") or {}
        changed = sorted(k for k in keys if new.get(k) != old.get(k))
        if changed:
            fields = ", ".join(f"metadata.annotations[{k}]" for k in changed)
            raise forbidden(req.spec.plural, req.name, (
                f"{fields}: set only by the virtual cluster's syncer (it marks a volume the host "
                "provisioned for a claim): a write may not set, change or remove it"),
                group=req.spec.group)
