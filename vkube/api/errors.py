"""One error tree mirroring Kubernetes' ``Status``: raised anywhere, rendered once by the server,
mapped back once by the client (see ``from_status``)."""

from __future__ import annotations

import decimal
import json
from typing import Any


# Go's field order for StatusDetails and StatusCause; empty fields are omitted (omitempty).
_DETAIL_KEYS = ("name", "group", "kind", "uid", "causes", "retryAfterSeconds")
_CAUSE_KEYS = ("reason", "message", "field")


class StatusError(Exception):
    """An API error that becomes a ``meta/v1 Status`` with ``code`` and ``reason``.

    ``details`` mirrors Go's ``*StatusDetails``: None (the default) leaves it out of the body;
    a dict, even an empty one, is written (kube-apiserver writes ``"details":{}`` for a 404 on
    an unknown path). ``retry_after`` becomes ``details.retryAfterSeconds`` and the
    ``Retry-After`` header."""

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
        self.has_details = details is not None or bool(causes) or bool(retry_after)
        self.details = dict(details or {})
        if causes:
            self.details["causes"] = causes
        if retry_after:
            self.details["retryAfterSeconds"] = int(retry_after)
        elif self.details.get("retryAfterSeconds"):
            retry_after = int(self.details["retryAfterSeconds"])
        if reason:
            self.reason = reason
        self.retry_after = retry_after

    @property
    def causes(self) -> list[dict[str, str]]:
        return list(self.details.get("causes", ()))

    def to_status(self) -> dict[str, Any]:
        """The Status object with kube-apiserver's keys, in Go's order (clients compare bytes):
        ``kind, apiVersion, metadata, status, message, reason, details, code``."""
        status: dict[str, Any] = {"kind": "Status", "apiVersion": "v1", "metadata": {},
                                  "status": "Failure"}
        if self.message:
            status["message"] = self.message
        if self.reason:
            status["reason"] = self.reason
        if self.has_details:
            status["details"] = _ordered_details(self.details)
        if self.code:
            status["code"] = self.code
        return status


def _ordered_details(details: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in _DETAIL_KEYS:
        value = details.get(key)
        if not value:
            continue
        if key == "causes":
            value = [{k: c[k] for k in _CAUSE_KEYS if c.get(k)} for c in value]
        out[key] = value
    return out


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
    """A ``StatusCause``: ``field`` names the path (``spec.containers[0].name``) and ``message``
    is the body without it (``Invalid value: "x": detail``), as ``field.Error.ErrorBody``, so
    kubectl, which prints ``* field: message``, names the path once."""
    return {"reason": reason, "message": message, "field": field}


def go_value(value: Any) -> str:
    """A bad value as ``field.Error.ErrorBody`` prints it: strings quoted (``%q``), numbers and
    booleans bare, anything else as JSON; never a Python repr."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if value is None:
        return "null"
    return json.dumps(value, separators=(",", ":"), default=str)


def go_v(value: Any) -> str:
    """A decoded JSON value as Go's ``fmt`` ``%v`` prints an ``interface{}`` holding it:
    ``map[k:v …]`` with sorted keys, ``[a b]``, strings bare, ``<nil>``, numbers as float64's
    shortest ``%g`` (JSON numbers decode to float64 in Go, so ``1e+06``)."""
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{go_v(value[k])}" for k in sorted(value)) + "]"
    if isinstance(value, list):
        return "[" + " ".join(go_v(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "<nil>"
    if isinstance(value, (int, float)):
        return _go_g(float(value))
    return str(value)


def _go_g(f: float) -> str:
    """``strconv.FormatFloat(f, 'g', -1, 64)``: the shortest digits that round-trip, in ``%e``
    form when the exponent is below -4 or at least 6 (so ``1e+06``, ``123456``, ``1.5e-07``)."""
    if f != f:
        return "NaN"
    if f in (float("inf"), float("-inf")):
        return "+Inf" if f > 0 else "-Inf"
    if f == 0:
        return "-0" if str(f).startswith("-") else "0"
    sign, digits, exponent = decimal.Decimal(repr(f)).normalize().as_tuple()
    text = "".join(map(str, digits))
    dp = len(text) + int(exponent)  # the decimal point's place after the first digit
    exp = dp - 1
    neg = "-" if sign else ""
    if exp < -4 or exp >= 6:
        mant = text[0] + ("." + text[1:] if len(text) > 1 else "")
        return f"{neg}{mant}e{'-' if exp < 0 else '+'}{abs(exp):02d}"
    if dp <= 0:
        return f"{neg}0.{'0' * -dp}{text}"
    if dp >= len(text):
        return f"{neg}{text}{'0' * (dp - len(text))}"
    return f"{neg}{text[:dp]}.{text[dp:]}"


def cause_text(cause: dict[str, str]) -> str:
    """One cause as ``field.Error.Error()`` words it: ``path: body``."""
    field, body = cause.get("field") or "", cause.get("message") or ""
    return f"{field}: {body}" if field else body


def _qualified(name: str, group: str) -> str:
    """``GroupResource.String()`` / ``GroupKind.String()``: ``deployments.apps``, ``pods``."""
    return f"{name}.{group}" if group else name


def _object_details(resource: str, name: str, group: str) -> dict[str, Any]:
    return {"name": name, "group": group, "kind": resource}


def invalid(kind: str, name: str, causes: list[dict[str, str]], *, group: str = "") -> Invalid:
    """``NewInvalid``: ``Kind[.group] "name" is invalid: [path: msg, ...]`` (brackets only for
    more than one distinct message); ``details.kind`` is the Kind, causes keep the path apart."""
    texts: list[str] = []
    for c in causes:
        text = cause_text(c)
        if text not in texts:
            texts.append(text)
    head = f'{_qualified(kind, group)} "{name}" is invalid'
    if texts:
        head += ": " + (texts[0] if len(texts) == 1 else "[" + ", ".join(texts) + "]")
    return Invalid(head, details={"name": name, "group": group, "kind": kind, "causes": causes})


def not_found(resource: str, name: str, *, group: str = "") -> NotFound:
    return NotFound(f'{_qualified(resource, group)} "{name}" not found',
                    details=_object_details(resource, name, group))


def no_such_path() -> NotFound:
    """A path the server does not serve: kube-apiserver answers with empty details."""
    return NotFound("the server could not find the requested resource", details={})


def already_exists(resource: str, name: str, *, group: str = "") -> AlreadyExists:
    return AlreadyExists(f'{_qualified(resource, group)} "{name}" already exists',
                         details=_object_details(resource, name, group))


def conflict(resource: str, name: str, *, group: str = "",
             reason: str = "the object has been modified; please apply your changes to the "
                           "latest version and try again") -> Conflict:
    return Conflict(f'Operation cannot be fulfilled on {_qualified(resource, group)} "{name}": '
                    f"{reason}", details=_object_details(resource, name, group))


def forbidden(resource: str, name: str, reason: str, *, group: str = "") -> Forbidden:
    """``NewForbidden``: ``pods "x" is forbidden: reason`` (or without the name)."""
    qual = _qualified(resource, group)
    if not qual:
        message = f"forbidden: {reason}"
    elif not name:
        message = f"{qual} is forbidden: {reason}"
    else:
        message = f'{qual} "{name}" is forbidden: {reason}'
    return Forbidden(message, details=_object_details(resource, name, group))


def method_not_allowed() -> MethodNotAllowed:
    """A verb the resource's route does not take (``POST`` on a named object, ``create`` on a
    read-only kind): kube-apiserver's generic 405, empty details."""
    return MethodNotAllowed("the server does not allow this method on the requested resource",
                            details={})


def method_not_supported(resource: str, action: str, *, group: str = "") -> MethodNotAllowed:
    """``NewMethodNotSupported``: ``create is not supported on resources of kind "x"``."""
    return MethodNotAllowed(
        f'{action} is not supported on resources of kind "{_qualified(resource, group)}"',
        details={"group": group, "kind": resource})


def resource_expired(message: str) -> Gone:
    """``NewResourceExpired``: 410 with reason ``Expired`` (a compacted resourceVersion)."""
    return Gone(message)


def internal_error(message: str) -> InternalError:
    """``NewInternalError``: the cause carries the bare error text."""
    return InternalError(f"Internal error occurred: {message}", causes=[{"message": message}])


def request_entity_too_large(message: str) -> RequestEntityTooLarge:
    return RequestEntityTooLarge(f"Request entity too large: {message}")


def timeout(message: str, retry_after: int = 0) -> Timeout:
    """``NewTimeoutError``: 504 ``Timeout: message``; always carries details, as upstream."""
    return Timeout(f"Timeout: {message}", details={}, retry_after=retry_after or None)


def too_large_resource_version(requested: int, current: int) -> Timeout:
    """The storage layer's answer to a resourceVersion from the future (retry in 1 s)."""
    err = timeout(f"Too large resource version: {requested}, current: {current}", 1)
    err.details["causes"] = [{"reason": "ResourceVersionTooLarge",
                              "message": "Too large resource version"}]
    return err


def server_rejected() -> Invalid:
    """What kube-apiserver answers when a JSON patch cannot be applied (a failed ``test``, a
    missing path): a 422 ``NewGenericServerResponse`` with empty details and no causes; the
    patch library's own words never reach the body."""
    return Invalid("the server rejected our request due to an error in our request", details={})


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
    details = status.get("details")
    err = cls(str(status.get("message") or reason or f"HTTP {code}"),
              details=details if isinstance(details, dict) else None)
    err.code = code
    if reason:
        err.reason = reason
    return err
