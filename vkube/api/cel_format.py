"""Kubernetes' CEL format library (``format.dns1123Label().validate(s)``, ``format.named(n)``):
the name and value formats Kubernetes validates, each giving an optional list of errors —
none when the value is valid. Named as in k8s.io/apiserver/pkg/cel/library/format.go."""

from __future__ import annotations

import base64
import datetime
import re
import urllib.parse
from typing import Callable

from vkube.api.validation import dns1123_label, dns1123_subdomain, label_value, qualified_name

__all__ = ["FORMATS", "KFormat"]

_DNS1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?\Z")
_DNS1035_MSG = ("a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an "
                "alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', "
                "regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')")
_UUID = re.compile(r"^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}\Z", re.I)


def _dns1035(name: str, prefix: bool = False) -> list[str]:
    value = name + "a" if prefix and name else name
    errs = []
    if len(value) > 63:
        errs.append("must be no more than 63 characters")
    if not _DNS1035.match(value):
        errs.append(_DNS1035_MSG)
    return errs


def _uri(text: str) -> list[str]:
    parts = urllib.parse.urlsplit(text)
    if not (parts.scheme or text.startswith("/")) or " " in text:
        return [f'parse "{text}": invalid URI for request']
    return []


def _byte(text: str) -> list[str]:
    try:
        base64.b64decode(text, validate=True)
        return []
    except ValueError:
        return ["invalid base64"]


def _date(text: str) -> list[str]:
    try:
        datetime.date.fromisoformat(text)
        return [] if len(text) == 10 else ["invalid date"]
    except ValueError:
        return ["invalid date"]


def _datetime(text: str) -> list[str]:
    try:
        datetime.datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
        return [] if "T" in text.upper() else ["invalid datetime"]
    except ValueError:
        return ["invalid datetime"]


#: name → (display name, validator)
FORMATS: dict[str, tuple[str, Callable[[str], list[str]]]] = {
    "dns1123Label": ("DNS1123Label", dns1123_label),
    "dns1123Subdomain": ("DNS1123Subdomain", dns1123_subdomain),
    "dns1035Label": ("DNS1035Label", _dns1035),
    "qualifiedName": ("QualifiedName", qualified_name),
    "dns1123LabelPrefix": ("DNS1123LabelPrefix", lambda s: dns1123_label(s, True)),
    "dns1123SubdomainPrefix": ("DNS1123SubdomainPrefix", lambda s: dns1123_subdomain(s, True)),
    "dns1035LabelPrefix": ("DNS1035LabelPrefix", lambda s: _dns1035(s, True)),
    "labelValue": ("LabelValue", label_value),
    "uri": ("URI", _uri),
    "uuid": ("uuid", lambda s: [] if _UUID.match(s) else ["does not match the UUID format"]),
    "byte": ("byte", _byte),
    "date": ("date", _date),
    "datetime": ("datetime", _datetime),
}


class KFormat:
    """``kubernetes.NamedFormat``."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def validate(self, value: str) -> list[str]:
        return FORMATS[self.name][1](value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, KFormat) and self.name == other.name

    def __hash__(self) -> int:
        return hash(self.name)

    def __str__(self) -> str:
        return FORMATS[self.name][0]
