"""``PodLogOptions`` from a ``pods/log`` query, checked as kube-apiserver does before it looks
at the pod: an unparsable number is a 400 (the parameter codec's ``strconv.ParseInt`` error),
a value out of range a 422 ``PodLogOptions "NAME" is invalid`` naming each field
(``ValidatePodLogOptions``), so a bad query never reaches a kubelet and never answers 200."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from vkube.api import errors
from vkube.api.meta import parse_time

_INTS = ("tailLines", "limitBytes", "sinceSeconds")


def _parse_int(name: str, text: str) -> int:
    """``strconv.ParseInt(text, 10, 64)``: decimal digits with an optional sign, 64-bit range."""
    body = text[1:] if text[:1] in "+-" else text
    if not body or not body.isascii() or not body.isdigit():
        raise errors.BadRequest(f'strconv.ParseInt: parsing "{text}": invalid syntax')
    value = int(text)
    if not -(1 << 63) <= value < (1 << 63):
        raise errors.BadRequest(f'strconv.ParseInt: parsing "{text}": value out of range')
    return value


def check_log_options(name: str, query: Mapping[str, str]) -> dict[str, Any]:
    """The parsed options (only those given); raises BadRequest or Invalid as the API does."""
    opts: dict[str, Any] = {}
    for key in _INTS:
        text = query.get(key)
        if text:  # an empty value converts to nil, as for an absent one
            opts[key] = _parse_int(key, text)
    since_time = query.get("sinceTime")
    if since_time:
        if parse_time(since_time) is None:
            raise errors.BadRequest(f'parsing time "{since_time}" as "2006-01-02T15:04:05Z07:00": '
                                    f'cannot parse "{since_time}" as "2006"')
        opts["sinceTime"] = since_time
    causes: list[dict[str, str]] = []
    if opts.get("tailLines", 0) < 0:
        causes.append(errors.field_error(
            "tailLines", f"Invalid value: {opts['tailLines']}: must be greater than or equal to 0"))
    if "limitBytes" in opts and opts["limitBytes"] < 1:
        causes.append(errors.field_error(
            "limitBytes", f"Invalid value: {opts['limitBytes']}: must be greater than 0"))
    if "sinceSeconds" in opts and "sinceTime" in opts:
        causes.append(errors.field_error(
            "", "Forbidden: at most one of `sinceTime` or `sinceSeconds` may be specified",
            reason="FieldValueForbidden"))
    elif opts.get("sinceSeconds", 1) < 1:
        causes.append(errors.field_error(
            "sinceSeconds", f"Invalid value: {opts['sinceSeconds']}: must be greater than 0"))
    if causes:
        raise _invalid(name, causes)
    return opts


def _invalid(name: str, causes: list[dict[str, str]]) -> errors.Invalid:
    """``NewInvalid(Kind("PodLogOptions"), name, errs)``; ``field.Error.Error()`` writes
    ``path: body`` even for the empty root path, hence ``: Forbidden: …``."""
    texts = [f"{c['field']}: {c['message']}" for c in causes]
    message = f'PodLogOptions "{name}" is invalid: ' + (texts[0] if len(texts) == 1 else "[" + ", ".join(texts) + "]")
    return errors.Invalid(message, details={"name": name, "group": "", "kind": "PodLogOptions", "causes": causes})
