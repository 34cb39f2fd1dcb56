"""Host refusals of synced objects other than pods, said on the virtual object.

A ConfigMap, Secret, Service, PVC, Ingress, NetworkPolicy… the host will not take (its quota,
a LimitRange, its admission or validation, the syncer's own RBAC, a namespace being deleted)
would otherwise only be retried with backoff in the syncer's log. The tenant sees it as
``kubectl describe`` shows it: a Warning event ``HostRefused`` with the host's words, written
once per distinct refusal; and once the host takes the object, a Normal ``HostAccepted`` event
(events cannot be withdrawn, so the newer one is what says the refusal is over). Pods carry
their refusal in their status as well (:func:`vkube.syncer.admission.surface_refusal`).
"""

from __future__ import annotations

from vkube.api import errors
from vkube.api.meta import Obj
from vkube.syncer.admission import REASON_HOST

REASON_ACCEPTED = "HostAccepted"

#: what the host says when it will not take an object (as opposed to a conflict or an outage)
REFUSALS: tuple[type[errors.StatusError], ...] = (
    errors.BadRequest, errors.Forbidden, errors.Invalid, errors.RequestEntityTooLarge)


def is_refusal(e: BaseException, *, creating: bool) -> bool:
    """Is ``e`` the host refusing the object? A NotFound on create is the host namespace
    missing (on update it is only a stale cache)."""
    return isinstance(e, REFUSALS) or (creating and isinstance(e, errors.NotFound))


class HostRefusals:
    """Per kind syncer: the refusal last said on each virtual object (by uid)."""

    def __init__(self, recorder: object) -> None:
        self.recorder = recorder
        self._said: dict[str, str] = {}

    def refused(self, vobj: Obj, e: errors.StatusError) -> None:
        """A Warning event with the host's words, unless this very refusal was said last."""
        message = f"the host refused the {_kind(vobj)}: {e}"
        uid = str(vobj["metadata"].get("uid", ""))
        if self._said.get(uid) == message:
            return
        self._said[uid] = message
        self.recorder.event(vobj, "Warning", REASON_HOST, message)  # type: ignore[attr-defined]

    def accepted(self, vobj: Obj) -> None:
        """The host took the object: say so once if it had refused it."""
        if self._said.pop(str(vobj["metadata"].get("uid", "")), None) is not None:
            self.recorder.event(vobj, "Normal", REASON_ACCEPTED,  # type: ignore[attr-defined]
                                f"the host accepted the {_kind(vobj)} it refused before")

    def forget(self, vobj: Obj) -> None:
        self._said.pop(str(vobj["metadata"].get("uid", "")), None)


def _kind(vobj: Obj) -> str:
    return str(vobj.get("kind") or "object")
