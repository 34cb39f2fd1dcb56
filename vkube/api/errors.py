"""One error tree mirroring Kubernetes' ``Status``: raised anywhere, rendered once by the server,
mapped back once by the client (see ``from_status``)."""

from __future__ import annotations

from typing import Any


class StatusError(Exception):
    """An API error that becomes a ``meta/v1 Status`` with ``code`` and ``reason``."""

    code: int = 500
    reason: str = "InternalError"

    def __init__(
        self,
        message: str,
        *,
        details: dict[str, Any] | None = None,
        causes: list[dict[str, str]] | None = None,
        reason: str | None = None,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.details = dict(details or {})
        if causes:
            self.details["causes"] = causes
        if reason:
            self.reason = reason
        self.retry_after = retry_after

    @property
    def causes(self) -> list[dict[str, str]]:
        return list(self.details.get("causes", ()))

    def to_status(self) -> dict[str, Any]:
        status: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details:
            status["details"] = self.details
        return status


class BadRequest(StatusError):
    code, reason = 400, "BadRequest"


class Unauthorized(StatusError):
    code, reason = 401, "Unauthorized"


class Forbidden(StatusError):
    code, reason = 403, "Forbidden"


class NotFound(StatusError):
    code, reason = 404, "NotFound"


class MethodNotAllowed(StatusError):
    code, reason = 405, "MethodNotAllowed"


class NotAcceptable(StatusError):
    code, reason = 406, "NotAcceptable"


class AlreadyExists(StatusError):
    code, reason = 409, "AlreadyExists"


class Conflict(StatusError):
    code, reason = 409, "Conflict"


class Gone(StatusError):
    """410: a compacted resourceVersion (reason ``Expired``) or an expired continue token."""

    code, reason = 410, "Expired"


class RequestEntityTooLarge(StatusError):
    code, reason = 413, "RequestEntityTooLarge"


class UnsupportedMediaType(StatusError):
    code, reason = 415, "UnsupportedMediaType"


class Invalid(StatusError):
    code, reason = 422, "Invalid"


class TooManyRequests(StatusError):
    code, reason = 429, "TooManyRequests"


class InternalError(StatusError):
    code, reason = 500, "InternalError"


class ServiceUnavailable(StatusError):
    code, reason = 503, "ServiceUnavailable"


class Timeout(StatusError):
    code, reason = 504, "Timeout"


def field_error(field: str, message: str, *, reason: str = "FieldValueInvalid") -> dict[str, str]:
    """A ``StatusCause`` naming the offending field path (``spec.containers[0].name``)."""
    return {"reason": reason, "message": f"{field}: {message}" if field else message, "field": field}


def invalid(kind: str, name: str, causes: list[dict[str, str]], *, group: str = "") -> Invalid:
    """Kubernetes' Invalid error: ``Kind "name" is invalid: [field: msg, ...]``."""
    msgs = [c["message"] for c in causes]
    text = msgs[0] if len(msgs) == 1 else "[" + ", ".join(msgs) + "]"
    return Invalid(
        f'{kind} "{name}" is invalid: {text}',
        details={"name": name, "kind": kind, "group": group},
        causes=causes,
    )


def not_found(resource: str, name: str, *, group: str = "") -> NotFound:
    qual = f"{resource}.{group}" if group else resource
    return NotFound(f'{qual} "{name}" not found', details={"name": name, "group": group, "kind": resource})


def already_exists(resource: str, name: str, *, group: str = "") -> AlreadyExists:
    qual = f"{resource}.{group}" if group else resource
    return AlreadyExists(
        f'{qual} "{name}" already exists', details={"name": name, "group": group, "kind": resource}
    )


def conflict(resource: str, name: str, *, group: str = "") -> Conflict:
    qual = f"{resource}.{group}" if group else resource
    return Conflict(
        f'Operation cannot be fulfilled on {qual} "{name}": the object has been modified; '
        "please apply your changes to the latest version and try again",
        details={"name": name, "group": group, "kind": resource},
    )


_BY_CODE_REASON: dict[tuple[int, str], type[StatusError]] = {}
_BY_CODE: dict[int, type[StatusError]] = {}
for _cls in (
    BadRequest, Unauthorized, Forbidden, NotFound, MethodNotAllowed, NotAcceptable, AlreadyExists,
    Conflict, Gone, RequestEntityTooLarge, UnsupportedMediaType, Invalid, TooManyRequests,
    InternalError, ServiceUnavailable, Timeout,
):
    _BY_CODE_REASON[(_cls.code, _cls.reason)] = _cls
    _BY_CODE.setdefault(_cls.code, _cls)


def from_status(status: dict[str, Any], http_code: int | None = None) -> StatusError:
    """Map a ``Status`` body (as received by a client) back to the matching exception."""
    code = int(status.get("code") or http_code or 500)
    reason = str(status.get("reason") or "")
    cls = _BY_CODE_REASON.get((code, reason)) or _BY_CODE.get(code, StatusError)
    err = cls(str(status.get("message") or reason or f"HTTP {code}"), details=status.get("details"))
    err.code = code
    if reason:
        err.reason = reason
    return err
