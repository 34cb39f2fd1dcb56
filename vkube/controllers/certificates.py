"""CertificateSigningRequest controllers of kube-controller-manager:

- ``csrsigning``: signs approved CSRs of ``kubernetes.io/kube-apiserver-client``,
  ``kubernetes.io/kube-apiserver-client-kubelet`` and ``kubernetes.io/kubelet-serving`` with the
  cluster CA, honouring
  ``expirationSeconds`` (at least 10 minutes, at most the signing duration); a CSR its signer
  refuses gets a ``Failed`` condition with the reason (``SignerValidationFailure``).
- ``csrcleaner``: deletes CSRs once done with — approved or denied or failed for an hour, pending
  for a day, or whose issued certificate has expired (upstream's durations).

The CA comes from ``ControllerManager.options["csrsigning"]["ca"]`` (a
``vkube.pki.CertificateAuthority``); without one, nothing is signed, as a controller manager
without ``--cluster-signing-cert-file`` signs nothing.
"""

from __future__ import annotations

import base64
import datetime as dt
from typing import Any

from cryptography import x509
from cryptography.x509.oid import NameOID

from vkube.api import errors
from vkube.api.kinds_certificates import (
    KUBE_APISERVER_CLIENT, KUBE_APISERVER_CLIENT_KUBELET, KUBELET_SERVING, has_condition, is_approved)
from vkube.api.meta import parse_time, rfc3339
from vkube.client.resources import CSRS
from vkube.controllers.runtime import Controller, Obj
from vkube.controllers.workqueue import run_periodic
from vkube.pki.certs import CertificateError
from vkube.pki.signing import DEFAULT_DURATION, MIN_DURATION, parse_csr, sign_request

__all__ = ["CSRSigningController", "CSRCleanerController", "signer_refusal"]

APPROVED_EXPIRATION = dt.timedelta(hours=1)
DENIED_EXPIRATION = dt.timedelta(hours=1)
PENDING_EXPIRATION = dt.timedelta(hours=24)
CLEANER_INTERVAL = 3600.0


def _client_usages(usages: list[str]) -> str:
    """``validAPIServerClientUsages``: client auth required, digital signature and key
    encipherment optional, nothing else."""
    has_client_auth = False
    for u in usages:
        if u in ("digital signature", "key encipherment"):
            continue
        if u == "client auth":
            has_client_auth = True
            continue
        return f"invalid usage for client certificate: {u}"
    if not has_client_auth:
        return "missing required usage for client certificate: client auth"
    return ""


def _sans(csr: x509.CertificateSigningRequest) -> x509.SubjectAlternativeName | None:
    try:
        return csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None


def _node_usages(usages: list[str], required: set[str]) -> str:
    """Usages must be exactly ``required``, optionally without key encipherment (ECDSA keys)."""
    if set(usages) in (required, required - {"key encipherment"}) and len(set(usages)) == len(usages):
        return ""
    return f"usages did not match [{' '.join(sorted(required))}]"


def _node_subject(csr: x509.CertificateSigningRequest) -> str:
    orgs = [str(a.value) for a in csr.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
    if orgs != ["system:nodes"]:
        return "subject organization is not system:nodes"
    return ""


def _node_cn(csr: x509.CertificateSigningRequest) -> str:
    cns = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not cns or not str(cns[0].value).startswith("system:node:"):
        return "subject common name does not begin with system:node:"
    return ""


def _kubelet_client(csr: x509.CertificateSigningRequest, usages: list[str]) -> str:
    """``isKubeletClient``: O=system:nodes, no SANs, CN=system:node:*, client usages."""
    if why := _node_subject(csr):
        return why
    sans = _sans(csr)
    if sans is not None:
        for cls, what in ((x509.DNSName, "DNS"), (x509.RFC822Name, "Email"), (x509.IPAddress, "IP"),
                          (x509.UniformResourceIdentifier, "URI")):
            if sans.get_values_for_type(cls):
                return f"{what} subjectAltNames are not allowed"
    return _node_cn(csr) or _node_usages(usages, {"digital signature", "key encipherment", "client auth"})


def _kubelet_serving(csr: x509.CertificateSigningRequest, usages: list[str]) -> str:
    """``isKubeletServing``: O=system:nodes, a DNS or IP SAN (no email, no URI), serving
    usages, CN=system:node:*."""
    if why := _node_subject(csr):
        return why
    sans = _sans(csr)
    if sans is None or not (sans.get_values_for_type(x509.DNSName) or sans.get_values_for_type(x509.IPAddress)):
        return "DNS or IP subjectAltName is required"
    if sans.get_values_for_type(x509.RFC822Name):
        return "Email subjectAltNames are not allowed"
    if sans.get_values_for_type(x509.UniformResourceIdentifier):
        return "URI subjectAltNames are not allowed"
    return _node_usages(usages, {"digital signature", "key encipherment", "server auth"}) or _node_cn(csr)


def signer_refusal(signer: str, csr: x509.CertificateSigningRequest, usages: list[str]) -> str:
    """Why ``signer`` refuses this request ("" when it signs it)."""
    if signer == KUBE_APISERVER_CLIENT:
        return _client_usages(usages)
    if signer == KUBE_APISERVER_CLIENT_KUBELET:
        return _kubelet_client(csr, usages)
    if signer == KUBELET_SERVING:
        return _kubelet_serving(csr, usages)
    return "unknown signer"


class CSRSigningController(Controller):
    name = "csrsigning"
    workers = 1  # CSRs are few; each worker is a task in every cluster
    signers = (KUBE_APISERVER_CLIENT, KUBE_APISERVER_CLIENT_KUBELET, KUBELET_SERVING)

    def setup(self) -> None:
        opts: dict[str, Any] = self.mgr.options.get(self.name) or {}
        self.ca = opts.get("ca")
        self.max_duration: dt.timedelta = opts.get("duration") or DEFAULT_DURATION
        self.csrs = self.mgr.informer(CSRS)
        if self.ca is not None:
            self.csrs.add_handler(self.handler)

    async def reconcile(self, key: str) -> float | None:
        csr = self.csrs.get(key)
        if csr is None or self.ca is None:
            return None
        spec, status = csr.get("spec") or {}, csr.get("status") or {}
        if not is_approved(csr) or has_condition(csr, "Failed") or status.get("certificate"):
            return None
        signer = spec.get("signerName")
        if signer not in self.signers:
            return None  # another signer's request: not ours to sign or to fail
        try:
            request = parse_csr(base64.b64decode(spec.get("request") or ""))
        except (CertificateError, ValueError) as exc:
            return await self._fail(csr, f"unable to parse csr {csr['metadata']['name']!r}: {exc}")
        usages = list(spec.get("usages") or ())
        refusal = signer_refusal(signer, request, usages)
        if refusal:
            return await self._fail(csr, refusal)
        seconds = spec.get("expirationSeconds")
        duration = self.max_duration if seconds is None else max(dt.timedelta(seconds=int(seconds)), MIN_DURATION)
        pem = sign_request(self.ca, request, usages, duration=duration, max_duration=self.max_duration,
                           now=self.mgr.clock())
        new = dict(csr)
        new["status"] = {**status, "certificate": base64.b64encode(pem).decode()}
        try:
            await self.client.update(CSRS, new, subresource="status")
        except (errors.Conflict, errors.NotFound):
            pass  # the informer brings the newer state and a new reconcile
        return None

    async def _fail(self, csr: Obj, message: str) -> None:
        status = dict(csr.get("status") or {})
        now = rfc3339(self.mgr.clock())
        status["conditions"] = list(status.get("conditions") or ()) + [{
            "type": "Failed", "status": "True", "reason": "SignerValidationFailure", "message": message,
            "lastUpdateTime": now, "lastTransitionTime": now}]
        try:
            await self.client.update(CSRS, {**csr, "status": status}, subresource="status")
        except (errors.Conflict, errors.NotFound):
            pass
        return None


def _condition_time(csr: Obj, ctype: str) -> dt.datetime | None:
    for c in ((csr.get("status") or {}).get("conditions")) or ():
        if c.get("type") == ctype:
            stamp = c.get("lastUpdateTime") or c.get("lastTransitionTime")
            return parse_time(stamp) if stamp else None
    return None


def expired(csr: Obj, now: dt.datetime) -> bool:
    """``cleaner.go``'s rules: issued certificate past NotAfter; approved (and issued), denied
    or failed longer than an hour ago; pending for more than a day."""
    cert = (csr.get("status") or {}).get("certificate")
    if cert:
        try:
            not_after = x509.load_pem_x509_certificate(base64.b64decode(cert)).not_valid_after_utc
            if now > not_after:
                return True
        except ValueError:
            pass
    for ctype, limit in (("Denied", DENIED_EXPIRATION), ("Failed", DENIED_EXPIRATION)):
        at = _condition_time(csr, ctype)
        if has_condition(csr, ctype) and at is not None and now > at + limit:
            return True
    if cert and has_condition(csr, "Approved"):
        at = _condition_time(csr, "Approved")
        if at is not None and now > at + APPROVED_EXPIRATION:
            return True
    if not any(has_condition(csr, t) for t in ("Approved", "Denied", "Failed")):
        created = parse_time((csr.get("metadata") or {}).get("creationTimestamp"))
        if created is not None and now > created + PENDING_EXPIRATION:
            return True
    return False


class CSRCleanerController(Controller):
    name = "csrcleaner"

    def setup(self) -> None:
        self.interval = float((self.mgr.options.get(self.name) or {}).get("interval", CLEANER_INTERVAL))
        self.csrs = self.mgr.informer(CSRS)

    async def sweep(self) -> int:
        """One pass: delete every expired CSR; how many went."""
        now = self.mgr.clock()
        gone = 0
        for csr in self.csrs.list():
            if expired(csr, now):
                try:
                    await self.client.delete(CSRS, csr["metadata"]["name"])
                    gone += 1
                except errors.NotFound:
                    pass
        return gone

    async def run(self) -> None:
        await self.sweep()  # upstream's cleaner runs once at start, then every interval
        await run_periodic(self.sweep, self.interval, name=self.name)
