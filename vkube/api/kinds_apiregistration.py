"""``apiregistration.k8s.io/v1`` APIService: defaulting, validation
(``k8s.io/kube-aggregator/pkg/apis/apiregistration/validation``) and the printer columns of
``kubectl get apiservices`` (NAME, SERVICE, AVAILABLE, AGE)."""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

from vkube.api.kinds import Column
from vkube.api.meta import Obj
from vkube.api.strategy import Strategy
from vkube.api.tables import age_column
from vkube.api.validation import (Causes, dns1123_subdomain, invalid_value, path_segment_name, required,
                                  validate_object_meta, validate_object_meta_update)

__all__ = ["STRATEGIES", "available_condition", "ca_bundle_pem"]

_DNS1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?\Z")


def available_condition(obj: Obj) -> Obj | None:
    for cond in (obj.get("status") or {}).get("conditions") or ():
        if isinstance(cond, dict) and cond.get("type") == "Available":
            return cond
    return None


def ca_bundle_pem(spec: Obj) -> bytes:
    """``spec.caBundle`` (base64 in JSON, as every ``[]byte`` field) as PEM bytes."""
    raw = spec.get("caBundle")
    if not raw:
        return b""
    try:
        return base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError, TypeError):
        return b""


def _service_column(o: Obj) -> str:
    svc = (o.get("spec") or {}).get("service")
    if not svc:
        return "Local"
    return f"{svc.get('namespace', '')}/{svc.get('name', '')}"


def _available_column(o: Obj) -> str:
    cond = available_condition(o)
    if cond is None:
        return "Unknown"
    if cond.get("status") == "True":
        return "True"
    return f"{cond.get('status')} ({cond.get('reason', '')})"


APISERVICE_COLUMNS = (
    Column("Service", _service_column, description="The reference to the service that hosts this API endpoint."),
    Column("Available", _available_column, description="Whether this service is available."),
    age_column(),
)


def _validate_name_for(obj: Obj) -> Any:
    spec = obj.get("spec") or {}
    wanted = f"{spec.get('version', '')}.{spec.get('group', '')}"

    def check(name: str, prefix: bool = False) -> list[str]:
        problems = path_segment_name(name, prefix)
        if problems:
            return problems
        if name != wanted:
            return [f'must be `spec.version+"."+spec.group`: "{wanted}"']
        return []
    return check


class APIServiceStrategy(Strategy):
    columns = APISERVICE_COLUMNS

    def default(self, obj: Obj) -> None:
        svc = (obj.get("spec") or {}).get("service") if isinstance(obj.get("spec"), dict) else None
        if isinstance(svc, dict) and svc.get("port") is None:
            svc["port"] = 443

    def prepare_for_create(self, obj: Obj) -> None:
        obj.pop("status", None)

    def validate(self, obj: Obj) -> Causes:
        causes = validate_object_meta(obj, namespaced=False, name_validator=_validate_name_for(obj))
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return causes + [required("spec")]
        group, version = spec.get("group") or "", spec.get("version") or ""
        if not group and version != "v1":
            causes.append(required("spec.group", "only v1 may have an empty group and it better be legacy kube"))
        if group:
            causes += [invalid_value("spec.group", group, m) for m in dns1123_subdomain(str(group))]
        if not _DNS1035.match(str(version)) or len(str(version)) > 63:
            causes.append(invalid_value("spec.version", version,
                                        "a DNS-1035 label must consist of lower case alphanumeric characters or '-', "
                                        "start with an alphabetic character, and end with an alphanumeric character "
                                        "(e.g. 'my-name',  or 'abc-123', regex used for validation is "
                                        "'[a-z]([-a-z0-9]*[a-z0-9])?')"))
        gpm, vp = spec.get("groupPriorityMinimum"), spec.get("versionPriority")
        if not isinstance(gpm, int) or isinstance(gpm, bool) or gpm <= 0 or gpm > 20000:
            causes.append(invalid_value("spec.groupPriorityMinimum", gpm if gpm is not None else 0,
                                        "must be positive and less than 20000"))
        if not isinstance(vp, int) or isinstance(vp, bool) or vp <= 0 or vp > 1000:
            causes.append(invalid_value("spec.versionPriority", vp if vp is not None else 0,
                                        "must be positive and less than 1000"))
        svc = spec.get("service")
        bundle = spec.get("caBundle")
        if bundle and not ca_bundle_pem(spec):
            causes.append(invalid_value("spec.caBundle", "<bytes>", "must be base64-encoded"))
        if not svc:
            if bundle:
                causes.append(invalid_value("spec.caBundle", f"{len(ca_bundle_pem(spec))} bytes",
                                            "local APIServices may not have a caBundle"))
            if spec.get("insecureSkipTLSVerify"):
                causes.append(invalid_value("spec.insecureSkipTLSVerify", True,
                                            "local APIServices may not have insecureSkipTLSVerify"))
            return causes
        if not isinstance(svc, dict):
            return causes + [invalid_value("spec.service", svc, "must be an object")]
        if not svc.get("namespace"):
            causes.append(required("spec.service.namespace"))
        if not svc.get("name"):
            causes.append(required("spec.service.name"))
        port = svc.get("port")
        if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
            causes.append(invalid_value("spec.service.port", port,
                                        "port is not valid: must be between 1 and 65535, inclusive"))
        if spec.get("insecureSkipTLSVerify") and bundle:
            causes.append(invalid_value("spec.insecureSkipTLSVerify", True, "may not be true if caBundle is present"))
        return causes

    def validate_update(self, new: Obj, old: Obj) -> Causes:
        return validate_object_meta_update(new, old)


STRATEGIES: dict[tuple[str, str], type[Strategy]] = {
    ("apiregistration.k8s.io", "APIService"): APIServiceStrategy,
}
