"""An object deleted while its controller reconciles it is the ordinary end of its life.

A reconcile works from the informer cache and then writes: the status of the object, its
children, a finalizer. When a user deletes the object in between, those writes answer
NotFound (the object, or a child the garbage collector already removed) or Conflict (a UID
precondition, a resourceVersion from before the delete). Kubernetes' controllers return early
for a vanished object; ``quiet_when_vanished`` does the same for every controller here: on
such an error it asks the API (the cache may lag) whether the object is still there, and if
it is not, the reconcile ends quietly. Any other failure still reaches the worker loop.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from vkube.api.errors import Conflict, NotFound
from vkube.api.meta import split_key

__all__ = ["quiet_when_vanished", "object_gone"]

log = logging.getLogger(__name__)

R = TypeVar("R")
Reconcile = Callable[[Any, str], Awaitable[R]]


async def object_gone(client: Any, res: Any, key: str) -> bool:
    """True when no object of ``res`` is named by the work-queue ``key`` any more."""
    ns, name = split_key(key)
    try:
        await client.get(res, name, namespace=ns if getattr(res, "namespaced", True) else None)
    except NotFound:
        return True
    return False


def quiet_when_vanished(informer: str = "owners") -> Callable[[Reconcile[R]], Reconcile[R | None]]:
    """Decorate ``reconcile(self, key)``; ``informer`` names the attribute holding the informer
    of the reconciled kind (its ``res`` says which resource to ask about)."""

    def decorate(fn: Reconcile[R]) -> Reconcile[R | None]:
        @functools.wraps(fn)
        async def reconcile(self: Any, key: str) -> R | None:
            try:
                return await fn(self, key)
            except (NotFound, Conflict) as exc:
                if not await object_gone(self.client, getattr(self, informer).res, key):
                    raise
                log.debug("%s: %s was deleted while it was reconciled (%s)",
                          getattr(self, "name", type(self).__name__), key, exc.message)
                return None
        return reconcile
    return decorate
