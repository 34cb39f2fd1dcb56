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

import asyncio
import logging
from collections.abc import Callable, Iterable
from fractions import Fraction

from vkube.api import errors
from vkube.api.meta import Obj, object_key
from vkube.api.quantity import QuantityError, parse_quantity
from vkube.client.client import Client
from vkube.client.resources import LIMITRANGES, RESOURCEQUOTAS
from vkube.controllers.informer import Informer
from vkube.syncer.admission import REASON_HOST

log = logging.getLogger(__name__)

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
        #: the keys of the objects the host refuses now: tried again at once when the host
        #: changes what it admits (:class:`HostAdmissionWatch`), not only after their backoff
        self.keys: set[str] = set()
        #: called on each refusal (the syncer starts its HostAdmissionWatch)
        self.on_refused: Callable[[], None] | None = None

    def note(self, key: str) -> None:
        """``key``'s object is refused by the host now."""
        self.keys.add(key)
        if self.on_refused is not None:
            self.on_refused()

    def refused(self, vobj: Obj, e: errors.StatusError) -> None:
        """A Warning event with the host's words, unless this very refusal was said last."""
        self.note(object_key(vobj))
        message = f"the host refused the {_kind(vobj)}: {e}"
        uid = str(vobj["metadata"].get("uid", ""))
        if self._said.get(uid) == message:
            return
        self._said[uid] = message
        self.recorder.event(vobj, "Warning", REASON_HOST, message)  # type: ignore[attr-defined]

    def accepted(self, vobj: Obj) -> None:
        """The host took the object: say so once if it had refused it."""
        self.keys.discard(object_key(vobj))
        if self._said.pop(str(vobj["metadata"].get("uid", "")), None) is not None:
            self.recorder.event(vobj, "Normal", REASON_ACCEPTED,  # type: ignore[attr-defined]
                                f"the host accepted the {_kind(vobj)} it refused before")

    def forget(self, vobj: Obj) -> None:
        self.keys.discard(object_key(vobj))
        self._said.pop(str(vobj["metadata"].get("uid", "")), None)


class HostAdmissionWatch:
    """Watches the host namespace's ResourceQuotas and LimitRanges and, when one changes in a
    way that may admit what was refused (a quota raised, removed or freed up; any LimitRange
    change), calls ``retry`` so that refused objects are tried again at once. Without it a
    refusal cleared on the host was only noticed after the object's retry backoff (up to
    30 s, ~50 s in all), where upstream's controllers react to the change itself. Other
    errors keep their backoff. A failing watch (no right to list quotas) only logs: the
    backoff still retries, and the syncer's readiness never waits on this watch.

    The two watches start with the first refusal (most clusters never see one, and each watch
    costs memory per cluster) and run until ``stop``.

    Each change is acted on twice: at once, and ``settle`` seconds after the last one. The
    host's admission judges by its own cached copy of the quotas, which may show the change
    a moment after this watch does; a retry that meets the old copy is refused again, and no
    further change would come to bring it back before its backoff."""

    #: seconds after the last loosening change when refused objects are tried once more
    settle = 2.0

    def __init__(self, host: Client, namespace: str, retry: Callable[[], None]) -> None:
        self._retry_now = retry
        self._again: asyncio.TimerHandle | None = None
        self.informers = [Informer(host, RESOURCEQUOTAS, namespace=namespace),
                          Informer(host, LIMITRANGES, namespace=namespace)]
        self.informers[0].add_handler(self._on_quota)
        self.informers[1].add_handler(self._on_limit_range)
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        """Start the watches (once; from the event loop). Once they have listed, refused
        objects are tried again: the host may have changed between the refusal and the list."""
        if not self._tasks:
            loop = asyncio.get_running_loop()
            self._tasks = [loop.create_task(inf.run(), name=f"informer host {inf.res.plural}")
                           for inf in self.informers]
            self._tasks.append(loop.create_task(self._listed(), name="host admission listed"))

    async def _listed(self) -> None:
        await asyncio.gather(*(inf.wait_synced() for inf in self.informers))
        self.retry()

    def retry(self) -> None:
        """Try refused objects again now, and once more when the host has settled."""
        self._retry_now()
        if self._again is not None:
            self._again.cancel()
        self._again = asyncio.get_running_loop().call_later(self.settle, self._retry_now)

    async def stop(self) -> None:
        if self._again is not None:
            self._again.cancel()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _on_quota(self, typ: str, quota: Obj, old: Obj | None) -> None:
        if typ == "DELETED" or (old is not None and loosened(old, quota)):
            self.retry()

    def _on_limit_range(self, typ: str, lr: Obj, old: Obj | None) -> None:
        if self.informers[1].synced and (old is None or old.get("spec") != lr.get("spec")):
            self.retry()


def loosened(old: Obj, new: Obj) -> bool:
    """May ``new`` admit what ``old`` refused? A hard limit raised or dropped, or usage
    lowered (something else went away); more usage or lower limits never admit more.

    The host's admission checks ``status.hard``, which the quota controller copies from
    ``spec.hard`` in a write of its own after the user's: a retry on the spec change alone
    can reach admission first and be refused by the old limit, so a raised ``status.hard``
    counts as loosening too (the spec change is still one: on a host that does not run the
    quota controller late, it is the only event)."""
    for part in ("spec", "status"):
        old_hard, new_hard = _amounts(old, part, "hard"), _amounts(new, part, "hard")
        if any(r not in new_hard or new_hard[r] > q for r, q in old_hard.items()):
            return True
    old_used, new_used = _amounts(old, "status", "used"), _amounts(new, "status", "used")
    if any(new_used.get(r, 0) < q for r, q in old_used.items()):
        return True
    # status.hard filled in (a quota's first recount): admission refuses while it is unknown
    return not (old.get("status") or {}).get("hard") and bool((new.get("status") or {}).get("hard"))


def _amounts(obj: Obj, part: str, field: str) -> dict[str, Fraction]:
    out: dict[str, Fraction] = {}
    for name, text in ((obj.get(part) or {}).get(field) or {}).items():
        try:
            out[name] = parse_quantity(text).value
        except QuantityError:
            continue
    return out


def retry_refused(syncers: Iterable[object]) -> int:
    """Every refused key of every kind syncer, queued again now with its backoff reset."""
    n = 0
    for syncer in syncers:
        refusals: HostRefusals | None = getattr(syncer, "refusals", None)
        if refusals is None:
            continue
        for key in list(refusals.keys):
            syncer.queue.forget(key)  # type: ignore[attr-defined]
            syncer.queue.add(key)  # type: ignore[attr-defined]
            n += 1
    if n:
        log.info("the host's quota or limits changed: %d refused object%s tried again", n, "" if n == 1 else "s")
    return n


def _kind(vobj: Obj) -> str:
    return str(vobj.get("kind") or "object")
