"""Signing CertificateSigningRequests with a cluster CA, as kube-controller-manager's
``csrsigning`` controller does (``pkg/controller/certificates/authority``): the subject and
subject alternative names are the request's, key usages are the CSR object's ``spec.usages``,
the validity is ``expirationSeconds`` capped by the signer's maximum and by the CA's own expiry,
and the certificate is backdated by five minutes for clock skew.

Pure: parsing and signing only; which requests a signer accepts is the controller's business.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

from vkube.pki.certs import CertificateAuthority, CertificateError

__all__ = ["KEY_USAGES", "EXT_KEY_USAGES", "ALL_USAGES", "parse_csr", "sign_request",
           "DEFAULT_DURATION", "MIN_DURATION", "BACKDATE"]

#: ``spec.usages`` values that become X.509 key usage bits
KEY_USAGES = {
    "signing": "digital_signature", "digital signature": "digital_signature",
    "content commitment": "content_commitment", "key encipherment": "key_encipherment",
    "key agreement": "key_agreement", "data encipherment": "data_encipherment",
    "cert sign": "key_cert_sign", "crl sign": "crl_sign", "encipher only": "encipher_only",
    "decipher only": "decipher_only",
}
#: ``spec.usages`` values that become extended key usages
EXT_KEY_USAGES = {
    "any": x509.ObjectIdentifier("2.5.29.37.0"), "server auth": ExtendedKeyUsageOID.SERVER_AUTH,
    "client auth": ExtendedKeyUsageOID.CLIENT_AUTH, "code signing": ExtendedKeyUsageOID.CODE_SIGNING,
    "email protection": ExtendedKeyUsageOID.EMAIL_PROTECTION,
    "s/mime": ExtendedKeyUsageOID.EMAIL_PROTECTION,
    "ipsec end system": x509.ObjectIdentifier("1.3.6.1.5.5.7.3.5"),
    "ipsec tunnel": x509.ObjectIdentifier("1.3.6.1.5.5.7.3.6"),
    "ipsec user": x509.ObjectIdentifier("1.3.6.1.5.5.7.3.7"),
    "timestamping": ExtendedKeyUsageOID.TIME_STAMPING, "ocsp signing": ExtendedKeyUsageOID.OCSP_SIGNING,
    "microsoft sgc": x509.ObjectIdentifier("1.3.6.1.4.1.311.10.3.3"),
    "netscape sgc": x509.ObjectIdentifier("2.16.840.1.113730.4.1"),
}
#: every usage certificates.k8s.io/v1 accepts, in upstream's order
ALL_USAGES = ("signing", "digital signature", "content commitment", "key encipherment", "key agreement",
              "data encipherment", "cert sign", "crl sign", "encipher only", "decipher only", "any",
              "server auth", "client auth", "code signing", "email protection", "s/mime",
              "ipsec end system", "ipsec tunnel", "ipsec user", "timestamping", "ocsp signing",
              "microsoft sgc", "netscape sgc")
#: kube-controller-manager's ``--cluster-signing-duration`` default (one year)
DEFAULT_DURATION = dt.timedelta(days=365)
#: the shortest ``expirationSeconds`` the API accepts (10 minutes)
MIN_DURATION = dt.timedelta(minutes=10)
BACKDATE = dt.timedelta(minutes=5)


def parse_csr(data: bytes) -> x509.CertificateSigningRequest:
    """The one PEM ``CERTIFICATE REQUEST`` block of ``spec.request`` (``ParseCSR``), with its
    self-signature checked; CertificateError with upstream's words otherwise."""
    text = data.lstrip()
    if not text.startswith(b"-----BEGIN "):
        raise CertificateError("PEM block type must be CERTIFICATE REQUEST")
    block_type = text[len(b"-----BEGIN "):].split(b"-----", 1)[0]
    if block_type != b"CERTIFICATE REQUEST":
        raise CertificateError("PEM block type must be CERTIFICATE REQUEST")
    try:
        csr = x509.load_pem_x509_csr(text)
    except ValueError as exc:
        raise CertificateError(f"x509: malformed certificate request: {exc}") from None
    if not csr.is_signature_valid:
        raise CertificateError("x509: ECDSA verification failure")
    return csr


def _key_usage(usages: Sequence[str]) -> x509.KeyUsage | None:
    bits = {KEY_USAGES[u] for u in usages if u in KEY_USAGES}
    if not bits:
        return None
    if bits & {"encipher_only", "decipher_only"}:
        bits.add("key_agreement")  # X.509 defines them only together with keyAgreement
    names = ("digital_signature", "content_commitment", "key_encipherment", "data_encipherment",
             "key_agreement", "key_cert_sign", "crl_sign", "encipher_only", "decipher_only")
    return x509.KeyUsage(**{n: n in bits for n in names})


def sign_request(ca: CertificateAuthority, csr: x509.CertificateSigningRequest, usages: Sequence[str], *,
                 duration: dt.timedelta = DEFAULT_DURATION, max_duration: dt.timedelta = DEFAULT_DURATION,
                 now: dt.datetime | None = None) -> bytes:
    """A PEM certificate for ``csr``: its subject and SANs, ``usages``, valid for ``duration``
    (at most ``max_duration`` and never past the CA's own expiry), backdated by 5 minutes."""
    now = now or dt.datetime.now(dt.timezone.utc)
    duration = min(duration, max_duration)
    not_before = now - BACKDATE if duration > BACKDATE else now
    not_after = min(now + duration, ca.cert.not_valid_after_utc)
    builder = (x509.CertificateBuilder().subject_name(csr.subject).issuer_name(ca.cert.subject)
               .public_key(csr.public_key()).serial_number(x509.random_serial_number())  # type: ignore[arg-type]
               .not_valid_before(not_before).not_valid_after(not_after)
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                   ca.cert.public_key()), critical=False))  # type: ignore[arg-type]
    key_usage = _key_usage(usages)
    if key_usage is not None:
        builder = builder.add_extension(key_usage, critical=True)
    ext = []
    for u in usages:
        oid = EXT_KEY_USAGES.get(u)
        if oid is not None and oid not in ext:
            ext.append(oid)
    if ext:
        builder = builder.add_extension(x509.ExtendedKeyUsage(ext), critical=False)
    try:
        sans = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        sans = None
    if sans is not None and len(sans):
        builder = builder.add_extension(x509.SubjectAlternativeName(list(sans)), critical=False)
    cert = builder.sign(ca.key, hashes.SHA256())
    return cert.public_bytes(serialization.Encoding.PEM)
