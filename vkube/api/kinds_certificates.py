"""certificates.k8s.io/v1: CertificateSigningRequest (with its ``approval`` subresource),
ClusterTrustBundle and PodCertificateRequest — validation and status rules as upstream's
``pkg/registry/certificates`` strategies and ``pkg/apis/certificates/validation`` have them.

Who asks (``spec.username``/``uid``/``groups``/``extra``) is filled in by the API server's
CertificateSigningRequest admission step, which knows the user; nothing here does.
"""

from __future__ import annotations

import re
from typing import Any

from vkube.api.jsonvalue import clone
from vkube.api.kinds import Column
from vkube.api.meta import Obj, rfc3339, utcnow
from vkube.api.strategy import Strategy
from vkube.api.tables import NONE, age_column, human_duration
from vkube.api.validation import (
    Causes, duplicate, forbidden, invalid_value, not_supported, qualified_name, required,
    validate_immutable, validate_object_meta, validate_object_meta_update)
from vkube.pki.certs import CertificateError
from vkube.pki.signing import ALL_USAGES, parse_csr

__all__ = ["STRATEGIES", "CSRStrategy", "csr_condition", "is_approved", "is_denied", "has_condition",
           "KUBE_APISERVER_CLIENT", "KUBE_APISERVER_CLIENT_KUBELET", "KUBELET_SERVING",
           "LEGACY_UNKNOWN"]

GROUP = "certificates.k8s.io"
KUBE_APISERVER_CLIENT = "kubernetes.io/kube-apiserver-client"
KUBE_APISERVER_CLIENT_KUBELET = "kubernetes.io/kube-apiserver-client-kubelet"
KUBELET_SERVING = "kubernetes.io/kubelet-serving"
LEGACY_UNKNOWN = "kubernetes.io/legacy-unknown"
_CONDITION_TYPES = ("Approved", "Denied", "Failed")
_MIN_EXPIRATION = 600


def has_condition(csr: Obj, ctype: str) -> bool:
    return any(c.get("type") == ctype and c.get("status", "True") == "True"
               for c in ((csr.get("status") or {}).get("conditions") or ()) if isinstance(c, dict))


def is_approved(csr: Obj) -> bool:
    return has_condition(csr, "Approved") and not has_condition(csr, "Denied")


def is_denied(csr: Obj) -> bool:
    return has_condition(csr, "Denied")


def csr_condition(csr: Obj) -> str:
    """kubectl's CONDITION column (``extractCSRStatus``): Denied/Approved/Pending, then
    ``,Failed`` and ``,Issued``."""
    status = "Denied" if is_denied(csr) else "Approved" if has_condition(csr, "Approved") else "Pending"
    if has_condition(csr, "Failed"):
        status += ",Failed"
    if (csr.get("status") or {}).get("certificate"):
        status += ",Issued"
    return status


def _requested_duration(o: Obj) -> str:
    seconds = (o.get("spec") or {}).get("expirationSeconds")
    return NONE if seconds is None else human_duration(float(seconds))


CSR_COLUMNS = (
    age_column(),
    Column("SignerName", lambda o: (o.get("spec") or {}).get("signerName", "")),
    Column("Requestor", lambda o: (o.get("spec") or {}).get("username", "")),
    Column("RequestedDuration", _requested_duration),
    Column("Condition", csr_condition),
)


def validate_signer_name(value: Any, path: str) -> Causes:
    """``ValidateSignerName``: ``DOMAIN/PATH`` with a DNS subdomain domain."""
    if not value:
        return [required(path)]
    if not isinstance(value, str):
        return [invalid_value(path, value, "must be a string")]
    domain, slash, rest = value.partition("/")
    if not slash:
        return [invalid_value(path, value, "must be a fully qualified domain and path of the form "
                                           "'example.com/signer-name'")]
    if not rest:
        return [invalid_value(path, value, "validating path: must not be empty")]
    causes: Causes = []
    if not re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*", domain) \
            or len(domain) > 253:
        causes.append(invalid_value(path, value, "validating domain: a lowercase RFC 1123 subdomain "
                                                 "must consist of lower case alphanumeric characters, "
                                                 "'-' or '.', and must start and end with an "
                                                 "alphanumeric character"))
    for msg in qualified_name(value) if len(value) <= 316 else ["must be no more than 571 characters"]:
        if "prefix part" in msg or "name part" in msg:
            continue  # the path part is checked as a path, not as a qualified name
        causes.append(invalid_value(path, value, msg))
    return causes


class CSRStrategy(Strategy):
    """``csrStrategy``, ``csrStatusStrategy`` and ``csrApprovalStrategy`` in one: the main
    resource changes metadata only, ``/status`` changes status but never the Approved/Denied
    conditions, ``/approval`` changes those conditions only."""

    has_generation = False
    columns = CSR_COLUMNS
    field_selector_keys = ("spec.signerName",)

    def field_attrs(self, obj: Obj) -> dict[str, str]:
        attrs = super().field_attrs(obj)
        attrs["spec.signerName"] = str((obj.get("spec") or {}).get("signerName", ""))
        return attrs

    def prepare_for_create(self, obj: Obj) -> None:
        obj.pop("status", None)

    def prepare_for_update(self, new: Obj, old: Obj) -> None:
        new["spec"] = clone(old.get("spec") or {})
        if "status" in old:
            new["status"] = clone(old["status"])
        else:
            new.pop("status", None)

    def prepare_for_status_update(self, new: Obj, old: Obj) -> None:
        super().prepare_for_status_update(new, old)
        status = new.setdefault("status", {})
        kept = [c for c in ((old.get("status") or {}).get("conditions") or ()) if c.get("type") in ("Approved", "Denied")]
        others = [c for c in status.get("conditions") or () if isinstance(c, dict) and c.get("type") not in ("Approved", "Denied")]
        if kept or others:
            status["conditions"] = _timestamps(kept + others, old)
        old_cert = (old.get("status") or {}).get("certificate")
        if old_cert and "certificate" not in status:
            status["certificate"] = old_cert

    def prepare_for_approval_update(self, new: Obj, old: Obj) -> None:
        """``/approval``: only the Approved and Denied conditions come from the request."""
        conds = [c for c in ((new.get("status") or {}).get("conditions") or ()) if isinstance(c, dict)]
        wanted = [c for c in conds if c.get("type") in ("Approved", "Denied")]
        others = [c for c in ((old.get("status") or {}).get("conditions") or ())
                  if c.get("type") not in ("Approved", "Denied")]
        keep = clone(old)
        new.clear()
        new.update(keep)
        status = new.setdefault("status", {})
        status["conditions"] = _timestamps(wanted + others, old)

    def validate(self, obj: Obj) -> Causes:
        causes = validate_object_meta(obj, namespaced=False)
        spec = obj.get("spec") or {}
        request = spec.get("request")
        if not request:
            causes.append(required("spec.request"))
        else:
            import base64
            import binascii

            try:
                parse_csr(base64.b64decode(request, validate=True))
            except (binascii.Error, ValueError):
                causes.append(invalid_value("spec.request", "", "illegal base64 data"))
            except CertificateError as exc:
                causes.append(invalid_value("spec.request", "", str(exc)))
        usages = spec.get("usages")
        if not usages:
            causes.append(required("spec.usages", "usages must be provided"))
        seen: set[str] = set()
        for i, usage in enumerate(usages or ()):
            if usage not in ALL_USAGES:
                causes.append(not_supported(f"spec.usages[{i}]", usage, ALL_USAGES))
            elif usage in seen:
                causes.append(duplicate(f"spec.usages[{i}]", usage))
            seen.add(usage)
        signer = spec.get("signerName")
        causes += validate_signer_name(signer, "spec.signerName")
        if signer == LEGACY_UNKNOWN:
            causes.append(invalid_value("spec.signerName", signer,
                                        "the legacy signerName is not allowed via this API version"))
        seconds = spec.get("expirationSeconds")
        if seconds is not None and (not isinstance(seconds, int) or seconds < _MIN_EXPIRATION):
            causes.append(invalid_value("spec.expirationSeconds", seconds,
                                        "may not specify a duration less than 600 seconds (10 minutes)"))
        causes += _validate_status(obj)
        return causes

    def validate_update(self, new: Obj, old: Obj) -> Causes:
        causes = validate_object_meta_update(new, old)
        old_status, new_status = old.get("status") or {}, new.get("status") or {}
        old_cert = old_status.get("certificate")
        if old_cert and new_status.get("certificate") != old_cert:
            causes.append(forbidden("status.certificate", "updates may not modify existing certificate content"))
        for ctype in ("Approved", "Denied", "Failed"):
            if has_condition(old, ctype) and not has_condition(new, ctype):
                causes.append(forbidden("status.conditions",
                                        f'updates may not remove a condition of type "{ctype}"'))
        return causes


def _validate_status(obj: Obj) -> Causes:
    status = obj.get("status") or {}
    causes: Causes = []
    seen: set[str] = set()
    for i, cond in enumerate(status.get("conditions") or ()):
        path = f"status.conditions[{i}]"
        ctype = (cond or {}).get("type")
        if not ctype:
            causes.append(required(f"{path}.type"))
        elif ctype in _CONDITION_TYPES:
            if ctype in seen:
                causes.append(duplicate(f"{path}.type", ctype))
            seen.add(ctype)
        if (cond or {}).get("status") not in ("True", "False", "Unknown"):
            causes.append(not_supported(f"{path}.status", (cond or {}).get("status"), ("False", "True", "Unknown")))
    if has_condition(obj, "Approved") and has_condition(obj, "Denied"):
        causes.append(invalid_value("status.conditions", status.get("conditions"),
                                    "Approved and Denied conditions are mutually exclusive"))
    cert = status.get("certificate")
    if cert:
        import base64
        import binascii

        try:
            pem = base64.b64decode(cert, validate=True)
        except (binascii.Error, ValueError):
            pem = b""
        if b"-----BEGIN CERTIFICATE-----" not in pem:
            causes.append(invalid_value("status.certificate", "<certificate data>",
                                        "must contain at least one CERTIFICATE PEM block"))
        if has_condition(obj, "Denied") or has_condition(obj, "Failed"):
            causes.append(forbidden("status.certificate",
                                    "certificate may not be set if a Denied or Failed condition is present"))
        elif not has_condition(obj, "Approved"):
            causes.append(forbidden("status.certificate",
                                    "certificate may only be set if an Approved condition is present"))
    return causes


def _timestamps(conds: list[dict[str, Any]], old: Obj) -> list[dict[str, Any]]:
    """Default ``status`` to True and keep transition times of unchanged conditions; the
    server stamps new ones (``populateConditionTimestamps``) when it writes them."""
    now = rfc3339(utcnow())
    before = {c.get("type"): c for c in ((old.get("status") or {}).get("conditions") or ())}
    out = []
    for c in conds:
        c = dict(c)
        c.setdefault("status", "True")
        prev = before.get(c.get("type"))
        if prev is not None and prev.get("status") == c["status"] and prev.get("lastTransitionTime"):
            c.setdefault("lastTransitionTime", prev["lastTransitionTime"])
        else:
            c.setdefault("lastTransitionTime", now)
        c.setdefault("lastUpdateTime", now)
        out.append(c)
    return out


# --- ClusterTrustBundle, PodCertificateRequest ---------------------------------------------


def _pem_certificates(value: Any) -> list[str]:
    if not isinstance(value, str) or not value.strip():
        return []
    return re.findall(r"-----BEGIN CERTIFICATE-----\s+[A-Za-z0-9+/=\s]+-----END CERTIFICATE-----", value)


class ClusterTrustBundleStrategy(Strategy):
    """``ValidateClusterTrustBundle``: a name prefixed by its signer name (``/`` as ``:``) or
    without any ``:``, and a non-empty bundle of PEM certificates; the signer is immutable."""

    has_generation = False
    columns = (Column("SignerName", lambda o: (o.get("spec") or {}).get("signerName", "")), age_column())

    def validate(self, obj: Obj) -> Causes:
        causes = validate_object_meta(obj, namespaced=False)
        spec = obj.get("spec") or {}
        name = str((obj.get("metadata") or {}).get("name", ""))
        signer = spec.get("signerName") or ""
        if signer:
            causes += validate_signer_name(signer, "spec.signerName")
            prefix = signer.replace("/", ":") + ":"
            if not name.startswith(prefix):
                causes.append(invalid_value("metadata.name", name,
                                            f"ClusterTrustBundle for signerName {signer} must be named "
                                            f"with prefix {prefix}"))
        elif ":" in name:
            causes.append(invalid_value("metadata.name", name,
                                        "ClusterTrustBundle without signer name must not have \":\" "
                                        "in its name"))
        bundle = spec.get("trustBundle")
        if not bundle:
            causes.append(required("spec.trustBundle"))
        elif not _pem_certificates(bundle):
            causes.append(invalid_value("spec.trustBundle", "<value omitted>",
                                        "at least one trust anchor must be provided"))
        return causes

    def validate_update(self, new: Obj, old: Obj) -> Causes:
        return validate_object_meta_update(new, old) + validate_immutable(
            (new.get("spec") or {}).get("signerName"), (old.get("spec") or {}).get("signerName"),
            "spec.signerName")


class PodCertificateRequestStrategy(Strategy):
    """PodCertificateRequest: the kubelet's request for a pod's certificate. Its spec is
    immutable; only the signer writes status."""

    has_generation = True
    status_subresource = True
    columns = (Column("SignerName", lambda o: (o.get("spec") or {}).get("signerName", "")),
               Column("PodName", lambda o: (o.get("spec") or {}).get("podName", "")), age_column())

    def prepare_for_create(self, obj: Obj) -> None:
        obj.pop("status", None)

    def validate(self, obj: Obj) -> Causes:
        causes = validate_object_meta(obj, namespaced=True)
        spec = obj.get("spec") or {}
        causes += validate_signer_name(spec.get("signerName"), "spec.signerName")
        for key in ("podName", "podUID", "serviceAccountName", "serviceAccountUID", "nodeName", "nodeUID",
                    "pkixPublicKey", "proofOfPossession"):
            if not spec.get(key):
                causes.append(required(f"spec.{key}"))
        return causes

    def validate_update(self, new: Obj, old: Obj) -> Causes:
        return validate_object_meta_update(new, old) + validate_immutable(
            new.get("spec"), old.get("spec"), "spec")


STRATEGIES: dict[tuple[str, str], type[Strategy]] = {
    (GROUP, "CertificateSigningRequest"): CSRStrategy,
    (GROUP, "ClusterTrustBundle"): ClusterTrustBundleStrategy,
    (GROUP, "PodCertificateRequest"): PodCertificateRequestStrategy,
}
