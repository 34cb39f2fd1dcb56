"""Store errors become API errors here, one function per verb, as k8s.io/apiserver's
``storage/errors.InterpretCreateError`` / ``InterpretUpdateError`` / ``InterpretDeleteError`` /
``InterpretGetError`` / ``InterpretListError`` / ``InterpretWatchError``: the same store error
means different things to different verbs (a key that exists is AlreadyExists on create but a
Conflict on update), so the verb decides, and storage.py never maps errors ad hoc.

An error that is not a store error passes through unchanged (upstream's ``default: return
err``): it is either already a Status or a bug that the server reports as a 500."""

from __future__ import annotations

from vkube.api import errors
from vkube.api.kinds import ResourceSpec
from vkube.store import StoreClosed
from vkube.store.base import Compacted, FutureRevision, KeyExists, KeyNotFound, RevisionMismatch, StoreError

#: seconds a client is told to wait after a ServerTimeout (upstream hard-codes 2 as well)
_RETRY_SECONDS = 2


def _qualified(spec: ResourceSpec) -> str:
    return f"{spec.plural}.{spec.group}" if spec.group else spec.plural


def _unreachable(exc: BaseException) -> bool:
    """The store could not be reached (closed, not started): upstream's ``IsUnreachable``."""
    return isinstance(exc, StoreClosed)


def server_timeout(spec: ResourceSpec, operation: str) -> errors.StatusError:
    """``NewServerTimeout``: 500 with reason ServerTimeout and a retry hint."""
    return errors.InternalError(
        f"The {operation} operation against {_qualified(spec)} could not be completed at this time, "
        "please try again.",
        reason="ServerTimeout",
        details={"name": operation, "group": spec.group, "kind": spec.plural,
                 "retryAfterSeconds": _RETRY_SECONDS},
        retry_after=_RETRY_SECONDS,
    )


def expired(exc: Compacted) -> errors.StatusError:
    """A read or watch below the compacted revision: 410 Expired, kube-apiserver's wording."""
    return errors.Gone(f"too old resource version: {exc.requested} ({exc.compacted})")


def too_large_resource_version(exc: FutureRevision) -> errors.StatusError:
    """``NewTooLargeResourceVersionError``: 504 Timeout with the ResourceVersionTooLarge cause."""
    err = errors.timeout(f"Too large resource version: {exc}", 1)  # "Timeout: …", as upstream
    err.details["causes"] = [{"reason": "ResourceVersionTooLarge",
                              "message": "Too large resource version"}]
    return err


def _common(exc: StoreError, spec: ResourceSpec, operation: str) -> errors.StatusError:
    """What every verb shares: unreachable → ServerTimeout, compacted → Expired, too new →
    Timeout, anything else from the store (I/O, corruption) → InternalError."""
    if _unreachable(exc):
        return server_timeout(spec, operation)
    if isinstance(exc, Compacted):
        return expired(exc)
    if isinstance(exc, FutureRevision):
        return too_large_resource_version(exc)
    return errors.internal_error(f"storage error: {exc}")


def interpret_get_error(exc: StoreError, spec: ResourceSpec, name: str) -> errors.StatusError:
    if isinstance(exc, KeyNotFound):
        return errors.not_found(spec.plural, name, group=spec.group)
    return _common(exc, spec, "get")


def interpret_list_error(exc: StoreError, spec: ResourceSpec) -> errors.StatusError:
    if isinstance(exc, KeyNotFound):
        return errors.not_found(spec.plural, "", group=spec.group)
    return _common(exc, spec, "list")


def interpret_create_error(exc: StoreError, spec: ResourceSpec, name: str) -> errors.StatusError:
    if isinstance(exc, KeyExists):
        return errors.already_exists(spec.plural, name, group=spec.group)
    return _common(exc, spec, "create")


def interpret_update_error(exc: StoreError, spec: ResourceSpec, name: str) -> errors.StatusError:
    if isinstance(exc, (RevisionMismatch, KeyExists)):
        return errors.conflict(spec.plural, name, group=spec.group)
    if isinstance(exc, KeyNotFound):
        return errors.not_found(spec.plural, name, group=spec.group)
    return _common(exc, spec, "update")


def interpret_delete_error(exc: StoreError, spec: ResourceSpec, name: str) -> errors.StatusError:
    if isinstance(exc, KeyNotFound):
        return errors.not_found(spec.plural, name, group=spec.group)
    if isinstance(exc, (RevisionMismatch, KeyExists)):
        return errors.conflict(spec.plural, name, group=spec.group)
    return _common(exc, spec, "delete")


def interpret_watch_error(exc: StoreError, spec: ResourceSpec) -> errors.StatusError:
    return _common(exc, spec, "watch")


__all__ = ["expired", "interpret_create_error", "interpret_delete_error", "interpret_get_error",
           "interpret_list_error", "interpret_update_error", "interpret_watch_error", "server_timeout",
           "too_large_resource_version"]
