"""Ingress specs as kube-apiserver validates them (``ValidateIngressSpec`` of
pkg/apis/networking/validation, with its messages): a rule's ``host`` is a lowercase DNS-1123
subdomain, never an IP address, with a wildcard only as a whole leading ``*.`` label. The
syncer's host claims (one Ingress per host name on a shared ingress controller) rely on this:
``FOO.example.com`` or ``shop.example.com.`` never reach the store."""

from __future__ import annotations

import re
from typing import Any

from vkube.api.errors import field_error
from vkube.api.validation import (
    Causes, dns1123_subdomain, invalid_value, not_supported, path_segment_name,
    required,
)
from vkube.api.validation_ip import parse_ip

__all__ = ["validate_ingress_spec", "validate_ingress_class_annotation", "host_problems"]

_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_WILDCARD_FMT = r"\*\." + _LABEL + r"(\." + _LABEL + r")*"
_WILDCARD = re.compile(rf"^{_WILDCARD_FMT}\Z")
_WILDCARD_MSG = ("a wildcard DNS-1123 subdomain must start with '*.', followed by a valid DNS "
                 "subdomain, which must consist of lower case alphanumeric characters, '-' or '.' "
                 "and end with an alphanumeric character (e.g. '*.example.com', regex used for "
                 f"validation is '{_WILDCARD_FMT}')")
_DNS1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?\Z")
_DNS1035_MSG = ("a DNS-1035 label must consist of lower case alphanumeric characters or '-', "
                "start with an alphabetic character, and end with an alphanumeric character (e.g. "
                "'my-name',  or 'abc-123', regex used for validation is "
                "'[a-z]([-a-z0-9]*[a-z0-9])?')")
PATH_TYPES = ("Exact", "ImplementationSpecific", "Prefix")
_BAD_SEQUENCES = ("//", "/./", "/../", "%2f", "%2F")
_BAD_SUFFIXES = ("/..", "/.")
CLASS_ANNOTATION = "kubernetes.io/ingress.class"


def is_ip(host: str) -> bool:
    """Go's ``net.ParseIP`` accepts no IPv6 zone (``fe80::1%eth0``); Python's does."""
    return "%" not in host and parse_ip(host) is not None


def wildcard_problems(host: str) -> list[str]:
    errs = ["must be no more than 253 characters"] if len(host) > 253 else []
    if not _WILDCARD.match(host):
        errs.append(_WILDCARD_MSG)
    return errs


def host_problems(host: str) -> list[str]:
    """Why ``host`` is not a valid Ingress host, in upstream's words, in its order."""
    errs = ["must be a DNS name, not an IP address"] if is_ip(host) else []
    return errs + (wildcard_problems(host) if "*" in host else dns1123_subdomain(host))


def _service_name(name: str) -> list[str]:
    errs = ["must be no more than 63 characters"] if len(name) > 63 else []
    return errs + ([] if _DNS1035.match(name) else [_DNS1035_MSG])


def _port_name(name: str) -> list[str]:
    errs = ["must be no more than 15 characters"] if len(name) > 15 else []
    if not re.match(r"^[-a-z0-9]+\Z", name):
        errs.append("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)")
    if not re.search(r"[a-z]", name):
        errs.append("must contain at least one letter (a-z)")
    if "--" in name:
        errs.append("must not contain consecutive hyphens")
    if name and (name[0] == "-" or name[-1] == "-"):
        errs.append("must not begin or end with a hyphen")
    return errs


def _typed_ref(ref: Any, path: str) -> Causes:
    causes: Causes = []
    if not isinstance(ref, dict):
        return causes
    if ref.get("apiGroup") is not None:
        causes += [invalid_value(f"{path}.apiGroup", ref["apiGroup"], m)
                   for m in dns1123_subdomain(str(ref["apiGroup"]))]
    for key in ("kind", "name"):
        if not ref.get(key):
            causes.append(required(f"{path}.{key}", f"{key} is required"))
        else:
            causes += [invalid_value(f"{path}.{key}", ref[key], m)
                       for m in path_segment_name(str(ref[key]))]
    return causes


def _backend(backend: Any, path: str) -> Causes:
    backend = backend if isinstance(backend, dict) else {}
    resource, service = backend.get("resource"), backend.get("service")
    if resource is not None and service is not None:
        return [invalid_value(path, "", "cannot set both resource and service backends")]
    if resource is not None:
        return _typed_ref(resource, f"{path}.resource")
    if not isinstance(service, dict):
        return [invalid_value(path, "", "resource or service backend is required")]
    causes: Causes = []
    name = service.get("name") or ""
    if not name:
        causes.append(required(f"{path}.service.name"))
    else:
        causes += [invalid_value(f"{path}.service.name", name, m) for m in _service_name(str(name))]
    port = service.get("port") if isinstance(service.get("port"), dict) else {}
    pname, pnum = port.get("name") or "", port.get("number") or 0
    if pname and pnum:
        causes.append(invalid_value(path, "", "cannot set both port name & port number"))
    elif pname:
        causes += [invalid_value(f"{path}.service.port.name", pname, m)
                   for m in _port_name(str(pname))]
    elif pnum:
        if not isinstance(pnum, int) or not 1 <= pnum <= 65535:
            causes.append(invalid_value(f"{path}.service.port.number", pnum,
                                        "must be between 1 and 65535, inclusive"))
    else:
        causes.append(required(path, "port name or number is required"))
    return causes


def _http_path(item: Any, path: str) -> Causes:
    item = item if isinstance(item, dict) else {}
    ptype, value = item.get("pathType"), item.get("path") or ""
    if not ptype:
        return [required(f"{path}.pathType", "pathType must be specified")]
    causes: Causes = []
    if ptype in ("Exact", "Prefix"):
        if not value.startswith("/"):
            causes.append(invalid_value(f"{path}.path", value, "must be an absolute path"))
        if value:
            causes += [invalid_value(f"{path}.path", value, f"must not contain '{seq}'")
                       for seq in _BAD_SEQUENCES if seq in value]
            causes += [invalid_value(f"{path}.path", value, f"cannot end with '{suf}'")
                       for suf in _BAD_SUFFIXES if value.endswith(suf)]
    elif ptype == "ImplementationSpecific":
        if value and not value.startswith("/"):
            causes.append(invalid_value(f"{path}.path", value, "must be an absolute path"))
    else:
        causes.append(not_supported(f"{path}.pathType", ptype, PATH_TYPES))
    return causes + _backend(item.get("backend"), f"{path}.backend")


def _rules(rules: list[Any], allow_bad_wildcard_rules: bool) -> Causes:
    causes: Causes = []
    for i, rule in enumerate(rules):
        rule = rule if isinstance(rule, dict) else {}
        host, p = rule.get("host") or "", f"spec.rules[{i}]"
        if host:
            causes += [invalid_value(f"{p}.host", host, m) for m in host_problems(str(host))]
        if "*" in str(host) and allow_bad_wildcard_rules:
            continue
        http = rule.get("http")
        if isinstance(http, dict):
            paths = http.get("paths") or []
            if not paths:
                causes.append(required(f"{p}.http.paths"))
            for j, item in enumerate(paths):
                causes += _http_path(item, f"{p}.http.paths[{j}]")
    return causes


def _tls(tls: list[Any], allow_bad_secret_names: bool = False) -> Causes:
    causes: Causes = []
    for i, entry in enumerate(tls):
        entry = entry if isinstance(entry, dict) else {}
        for j, host in enumerate(entry.get("hosts") or ()):
            problems = wildcard_problems(host) if "*" in str(host) else dns1123_subdomain(str(host))
            causes += [invalid_value(f"spec.tls[{i}].hosts[{j}]", host, m) for m in problems]
        if entry.get("secretName") and not allow_bad_secret_names:
            causes += [invalid_value(f"spec.tls[{i}].secretName", entry["secretName"], m)
                       for m in dns1123_subdomain(str(entry["secretName"]))]
    return causes


def _bad_wildcard_rules(obj: Any) -> bool:
    """Upstream keeps accepting a stored Ingress whose wildcard rules already failed."""
    for rule in ((obj or {}).get("spec") or {}).get("rules") or ():
        if isinstance(rule, dict) and "*" in str(rule.get("host") or "") and isinstance(
                rule.get("http"), dict):
            paths = rule["http"].get("paths") or []
            if not paths or any(_http_path(p, "p") for p in paths):
                return True
    return False


def validate_ingress_spec(obj: dict[str, Any], old: dict[str, Any] | None = None) -> Causes:
    spec = obj.get("spec") if isinstance(obj.get("spec"), dict) else {}
    rules, backend = spec.get("rules") or [], spec.get("defaultBackend")
    causes: Causes = []
    if not rules and backend is None:
        shown = "[]networking.IngressRule{}" if isinstance(spec.get("rules"), list) else \
            "[]networking.IngressRule(nil)"  # Go's %#v of the empty slice
        causes.append(field_error("spec", f"Invalid value: {shown}: either `defaultBackend` or "
                                  "`rules` must be specified"))
    if backend is not None:
        causes += _backend(backend, "spec.defaultBackend")
    causes += _rules(rules, _bad_wildcard_rules(old))
    old_tls = ((old or {}).get("spec") or {}).get("tls") or []
    causes += _tls(spec.get("tls") or [], any(  # upstream keeps accepting stored bad names
        isinstance(t, dict) and t.get("secretName") and dns1123_subdomain(str(t["secretName"]))
        for t in old_tls))
    if spec.get("ingressClassName") is not None:
        name = spec["ingressClassName"]
        causes += [invalid_value("spec.ingressClassName", name, m)
                   for m in dns1123_subdomain(str(name))]
    return causes


def validate_ingress_class_annotation(obj: dict[str, Any]) -> Causes:
    """On create only: the deprecated class annotation and the field may not both be set."""
    ann = (obj.get("metadata") or {}).get("annotations") or {}
    if CLASS_ANNOTATION in ann and (obj.get("spec") or {}).get("ingressClassName") is not None:
        return [invalid_value(f"annotations.{CLASS_ANNOTATION}", ann[CLASS_ANNOTATION],
                              "can not be set when the class field is also set")]
    return []
