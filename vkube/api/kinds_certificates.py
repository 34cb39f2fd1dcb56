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
    resource changes metadata only, ``/status`` changes status but refuses a change of the
    Approved/Denied conditions, ``/approval`` changes the conditions only."""

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
        """``csrStatusStrategy``: spec from old; Approved/Denied conditions keep their stored
        values when the request has as many of them (``preserveConditionInstances``), so that
        adding or removing one reaches validation and is refused there, never dropped."""
        super().prepare_for_status_update(new, old)
        status = new.get("status")
        if not isinstance(status, dict):
            return
        conds = status.get("conditions")
        if isinstance(conds, list):
            for ctype in ("Approved", "Denied"):
                olds = [c for c in _conditions(old) if c.get("type") == ctype]
                idx = [i for i, c in enumerate(conds) if isinstance(c, dict) and c.get("type") == ctype]
                if len(olds) == len(idx):
                    for i, prev in zip(idx, olds):
                        conds[i] = clone(prev)
            status["conditions"] = _timestamps(conds, old)

    def prepare_for_approval_update(self, new: Obj, old: Obj) -> None:
        """``/approval`` (``csrApprovalStrategy``): the conditions come from the request, the
        rest of the object from old."""
        conds = [c for c in ((new.get("status") or {}).get("conditions") or ()) if isinstance(c, dict)]
        keep = clone(old)
        new.clear()
        new.update(keep)
        status = new.setdefault("status", {})
        status["conditions"] = _timestamps(conds, old)

    def validate(self, obj: Obj) -> Causes:
        return _validate_csr(obj, None)

    def validate_with_old(self, new: Obj, old: Obj) -> Causes:
        """An update tolerates what the stored object already had (``getValidationOptions``)."""
        return _validate_csr(new, old)

    def validate_update(self, new: Obj, old: Obj) -> Causes:
        return self.validate_subresource_update(new, old, "")

    def validate_subresource_update(self, new: Obj, old: Obj, subresource: str) -> Causes:
        """``validateCertificateSigningRequestUpdate``: Approved, Denied and Failed are never
        removed; only ``/approval`` adds or changes Approved/Denied; only ``/status`` sets the
        certificate, and only once."""
        causes = validate_object_meta_update(new, old)
        for ctype in ("Approved", "Denied", "Failed"):
            if _count(new, ctype) < _count(old, ctype):
                causes.append(forbidden("status.conditions",
                                        f'updates may not remove a condition of type "{ctype}"'))
        if subresource != "approval":
            for ctype in ("Approved", "Denied"):
                olds = [c for c in _conditions(old) if c.get("type") == ctype]
                news = [c for c in _conditions(new) if c.get("type") == ctype]
                if len(news) > len(olds):
                    causes.append(forbidden("status.conditions",
                                            f'updates may not add a condition of type "{ctype}"'))
                elif len(news) == len(olds) and news != olds:
                    causes.append(forbidden("status.conditions",
                                            f'updates may not modify a condition of type "{ctype}"'))
        old_cert = (old.get("status") or {}).get("certificate") or ""
        if ((new.get("status") or {}).get("certificate") or "") != old_cert:
            if subresource != "status":
                causes.append(forbidden("status.certificate", "updates may not set certificate content"))
            elif old_cert:
                causes.append(forbidden("status.certificate", "updates may not modify existing certificate content"))
        return causes


def _conditions(csr: Obj) -> list[dict[str, Any]]:
    return [c for c in ((csr.get("status") or {}).get("conditions") or ()) if isinstance(c, dict)]


def _count(csr: Obj, ctype: str) -> int:
    return sum(1 for c in (csr.get("status") or {}).get("conditions") or () if isinstance(c, dict) and c.get("type") == ctype)


def _validate_csr(obj: Obj, old: Obj | None) -> Causes:
    """``validateCertificateSigningRequest`` with its compatibility options: on update, what
    the stored object already had (legacy signer, unknown or duplicate usages, duplicate or
    empty condition types, Approved with Denied, an unparsable or unchanged certificate)."""
    import base64
    import binascii

    causes = validate_object_meta(obj, namespaced=False)
    spec = obj.get("spec") or {}
    old_spec = (old or {}).get("spec") or {}
    request = spec.get("request")
    try:
        parse_csr(base64.b64decode(request or "", validate=True))
    except (binascii.Error, ValueError):
        causes.append(invalid_value("spec.request", "", "illegal base64 data"))
    except CertificateError as exc:
        causes.append(invalid_value("spec.request", "", str(exc)))
    usages = spec.get("usages") or []
    if not usages:
        causes.append(required("spec.usages"))
    old_usages = old_spec.get("usages") or []
    if old is None or all(u in ALL_USAGES for u in old_usages):
        for i, usage in enumerate(usages):
            if usage not in ALL_USAGES:
                causes.append(not_supported(f"spec.usages[{i}]", usage, sorted(ALL_USAGES)))
    if old is None or len(set(map(str, old_usages))) == len(old_usages):
        seen: set[str] = set()
        for i, usage in enumerate(usages):
            if usage in seen:
                causes.append(duplicate(f"spec.usages[{i}]", usage))
            seen.add(usage)
    signer = spec.get("signerName")
    if signer == LEGACY_UNKNOWN and old_spec.get("signerName") != LEGACY_UNKNOWN:
        causes.append(invalid_value("spec.signerName", signer,
                                    "the legacy signerName is not allowed via this API version"))
    elif signer != LEGACY_UNKNOWN:
        causes += validate_signer_name(signer, "spec.signerName")
    seconds = spec.get("expirationSeconds")
    if seconds is not None and (not isinstance(seconds, int) or seconds < _MIN_EXPIRATION):
        causes.append(invalid_value("spec.expirationSeconds", seconds,
                                    "may not specify a duration less than 600 seconds (10 minutes)"))
    causes += _validate_conditions(obj, old)
    cert = (obj.get("status") or {}).get("certificate")
    old_cert = ((old or {}).get("status") or {}).get("certificate")
    tolerate = old is not None and (cert == old_cert or _certificate_error(old_cert) is not None)
    problem = None if tolerate else _certificate_error(cert)
    if problem is not None:
        causes.append(invalid_value("status.certificate", "<certificate data>", problem))
    return causes


def _validate_conditions(obj: Obj, old: Obj | None) -> Causes:
    """``validateConditions``: a type, a status (True only for Approved/Denied/Failed), no type
    twice, never Approved with Denied."""
    old_types = [c.get("type") for c in ((old or {}).get("status") or {}).get("conditions") or () if isinstance(c, dict)]
    allow_empty = old is not None and any(not t for t in old_types)
    allow_duplicates = old is not None and len(set(old_types)) < len(old_types)
    allow_both = old is not None and "Approved" in old_types and "Denied" in old_types
    causes: Causes = []
    seen: set[Any] = set()
    approved = denied = False
    for i, cond in enumerate((obj.get("status") or {}).get("conditions") or ()):
        cond = cond if isinstance(cond, dict) else {}
        path, ctype, status = f"status.conditions[{i}]", cond.get("type"), cond.get("status")
        if not ctype and not allow_empty:
            causes.append(required(f"{path}.type"))
        allowed = ("True",) if ctype in _CONDITION_TYPES else ("False", "True", "Unknown")
        if not status:
            causes.append(required(f"{path}.status"))
        elif status not in allowed:
            causes.append(not_supported(f"{path}.status", status, allowed))
        if not allow_both and ctype in ("Approved", "Denied"):
            approved, denied = approved or ctype == "Approved", denied or ctype == "Denied"
            if approved and denied:
                causes.append(invalid_value(f"{path}.type", ctype, "Approved and Denied conditions are mutually exclusive"))
        if not allow_duplicates:
            if ctype in seen:
                causes.append(duplicate(f"{path}.type", ctype))
            seen.add(ctype)
    return causes


def _certificate_error(cert: Any) -> str | None:
    """``validateCertificate`` of ``status.certificate`` (base64 of PEM in JSON): only
    CERTIFICATE blocks without headers, each parsing as X.509, at least one."""
    import base64
    import binascii

    from cryptography import x509

    if not cert:
        return None
    try:
        data = base64.b64decode(cert, validate=True)
    except (binascii.Error, ValueError):
        return "must contain at least one CERTIFICATE PEM block"
    blocks = 0
    for m in _PEM_BLOCK.finditer(data):
        kind, body = m.group(1).decode(), m.group(2)
        if kind != "CERTIFICATE":
            return f'only CERTIFICATE PEM blocks are allowed, found "{kind}"'
        if b":" in body:
            return "no PEM block headers are permitted"
        try:
            x509.load_pem_x509_certificate(m.group(0))
        except ValueError as exc:
            return f"x509: {exc}"
        blocks += 1
    return None if blocks else "must contain at least one CERTIFICATE PEM block"


_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----\r?\n(.*?)-----END \1-----", re.S)


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
