"""Kinds a virtual cluster shows as copies of the host's: with ``sync.resourceclaims`` the
DeviceClasses and ResourceSlices inside are the host's, because the host's scheduler
allocates devices only from its own. A tenant's create, update or delete of one is refused
here (403, naming the host as the source) instead of being accepted and then silently put
back; the syncer, which writes the copies, passes under its own identity."""

from __future__ import annotations

from collections.abc import Iterable

from vkube.api.forbidden import forbidden
from vkube.apiserver.context import AdmissionRequest, Context

__all__ = ["HostOwned"]


class HostOwned:
    def __init__(self, resources: Iterable[tuple[str, str]], *, writer: str, why: str) -> None:
        """``resources``: (group, plural) pairs; ``writer``: the one user who may change them;
        ``why``: where the objects come from (the Forbidden message's cause)."""
        self.resources = frozenset(resources)
        self.writer = writer
        self.why = why

    async def validate(self, ctx: Context, req: AdmissionRequest) -> None:
        if (req.spec.group, req.spec.plural) not in self.resources or req.user.name == self.writer \
                or req.operation not in ("CREATE", "UPDATE", "DELETE"):
            return
        raise forbidden(req.spec.plural, req.name, self.why, group=req.spec.group)
