"""X.509 for one cluster: its CA, serving certificates, client certificates, and reading them back.

Shapes follow what kubeadm and kube-apiserver use, so kubectl, client-go and the Python client
accept them unchanged:

- the CA is self-signed (``CA:TRUE``, keyCertSign/cRLSign), 10 years by default;
- a serving certificate has ``serverAuth`` and a SubjectAltName listing *every* DNS name and IP
  it is reached by (clients match against SANs only, never the CN);
- a client certificate carries the user in ``CN`` and each group in an ``O`` (the x509
  authenticator's ``CommonNameUserConversion``), with ``clientAuth``;
- :func:`authenticate_client_certificate` re-does what kube-apiserver's x509 authenticator does
  after the TLS handshake: issued by our CA, inside its validity window, usable for client auth.

Keys are ECDSA P-256 by default (fast to generate; accepted everywhere); RSA 2048 on request.
Everything is bytes in and out (PEM); :func:`write_private` stores a key with mode 0600.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = [
    "KeyPair", "CertificateAuthority", "ClientIdentity", "CertificateError", "new_private_key",
    "authenticate_client_certificate", "needs_renewal", "certificate_sans", "load_certificate",
    "write_private", "write_public",
]

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
CA_VALIDITY = dt.timedelta(days=3650)
LEAF_VALIDITY = dt.timedelta(days=365)
#: backdating absorbs small clock differences between the machines involved
BACKDATE = dt.timedelta(minutes=5)


class CertificateError(Exception):
    """A certificate that is not acceptable; the text says why (never includes key material)."""


#: RFC 5280's ub-common-name (and ub-organization-name): X.509 refuses a longer CN or O.
MAX_NAME_ATTRIBUTE = 64


def fit_label(name: str) -> str:
    """``name`` as a CN that only labels (a CA's): cut to 64 characters, a hash of the whole
    keeping different long names different. Never for a CN that is an identity."""
    if len(name) <= MAX_NAME_ATTRIBUTE:
        return name
    import hashlib

    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{name[:MAX_NAME_ATTRIBUTE - 9]}-{digest}"


def new_private_key(kind: str = "ecdsa") -> PrivateKey:
    if kind == "ecdsa":
        return ec.generate_private_key(ec.SECP256R1())
    if kind == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    raise ValueError(f'unknown key type "{kind}": use "ecdsa" or "rsa"')


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _key_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


@dataclass(frozen=True)
class KeyPair:
    """A certificate and its private key, both PEM."""

    cert_pem: bytes
    key_pem: bytes

    @property
    def certificate(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.cert_pem)


@dataclass(frozen=True)
class ClientIdentity:
    """Who a client certificate says it is: ``CN`` → user, ``O`` → groups (in order)."""

    user: str
    groups: tuple[str, ...]


def load_certificate(data: bytes) -> x509.Certificate:
    """PEM or DER."""
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            return x509.load_pem_x509_certificate(data)
        return x509.load_der_x509_certificate(data)
    except ValueError as exc:
        raise CertificateError(f"not a certificate: {exc}") from None


def _split_sans(names: Iterable[str]) -> list[x509.GeneralName]:
    out: list[x509.GeneralName] = []
    seen: set[str] = set()
    for name in names:
        if not name or name in seen:
            continue
        seen.add(name)
        try:
            out.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            out.append(x509.DNSName(name))
    return out


def certificate_sans(cert: x509.Certificate) -> set[str]:
    """Every DNS name and IP address in the SubjectAltName, as strings."""
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set()
    return set(ext.get_values_for_type(x509.DNSName)) | {
        str(ip) for ip in ext.get_values_for_type(x509.IPAddress)}


class CertificateAuthority:
    """A cluster's CA: issues serving and client certificates signed by its key."""

    def __init__(self, cert_pem: bytes, key_pem: bytes) -> None:
        self.cert = x509.load_pem_x509_certificate(cert_pem)
        key = serialization.load_pem_private_key(key_pem, password=None)
        if not isinstance(key, (ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey)):
            raise CertificateError("CA key must be ECDSA or RSA")
        if key.public_key().public_numbers() != self.cert.public_key().public_numbers():
            raise CertificateError("CA key does not match the CA certificate")
        self.key: PrivateKey = key
        self.cert_pem, self.key_pem = cert_pem, key_pem

    @classmethod
    def create(cls, common_name: str, *, validity: dt.timedelta = CA_VALIDITY,
               key_type: str = "ecdsa", now: dt.datetime | None = None) -> CertificateAuthority:
        """A new self-signed CA (``common_name`` such as ``vkube-ca-NAME``)."""
        key = new_private_key(key_type)
        now = now or _now()
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, fit_label(common_name))])
        ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - BACKDATE).not_valid_after(now + validity)
                .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                .add_extension(x509.KeyUsage(digital_signature=True, key_encipherment=True,
                                             key_cert_sign=True, crl_sign=True, content_commitment=False,
                                             data_encipherment=False, key_agreement=False,
                                             encipher_only=False, decipher_only=False), critical=True)
                .add_extension(ski, critical=False)
                .sign(key, hashes.SHA256()))
        return cls(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))

    def _issue(self, subject: x509.Name, usage: x509.ObjectIdentifier, *, sans: Sequence[str] = (),
               validity: dt.timedelta, key_type: str, now: dt.datetime | None) -> KeyPair:
        key = new_private_key(key_type)
        now = now or _now()
        not_after = min(now + validity, self.cert.not_valid_after_utc)
        builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(self.cert.subject)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - BACKDATE).not_valid_after(not_after)
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                   .add_extension(x509.KeyUsage(digital_signature=True, key_encipherment=True,
                                                key_cert_sign=False, crl_sign=False,
                                                content_commitment=False, data_encipherment=False,
                                                key_agreement=False, encipher_only=False,
                                                decipher_only=False), critical=True)
                   .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
                   .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                       self.cert.public_key()), critical=False))  # type: ignore[arg-type]
        general_names = _split_sans(sans)
        if general_names:
            builder = builder.add_extension(x509.SubjectAlternativeName(general_names), critical=False)
        cert = builder.sign(self.key, hashes.SHA256())
        return KeyPair(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))

    def issue_serving(self, names: Sequence[str], *, common_name: str = "kube-apiserver",
                      validity: dt.timedelta = LEAF_VALIDITY, key_type: str = "ecdsa",
                      now: dt.datetime | None = None) -> KeyPair:
        """A server certificate valid for every DNS name and IP in ``names``."""
        if not [n for n in names if n]:
            raise CertificateError("a serving certificate needs at least one DNS name or IP address")
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        return self._issue(subject, ExtendedKeyUsageOID.SERVER_AUTH, sans=names, validity=validity,
                           key_type=key_type, now=now)

    def issue_client(self, user: str, groups: Sequence[str] = (), *,
                     validity: dt.timedelta = LEAF_VALIDITY, key_type: str = "ecdsa",
                     now: dt.datetime | None = None) -> KeyPair:
        """A client certificate authenticating as ``user`` in ``groups``."""
        if not user:
            raise CertificateError("a client certificate needs a user name (CN)")
        for what, value in (("user name", user), *(("group", g) for g in groups)):
            if len(value) > MAX_NAME_ATTRIBUTE:  # an identity is never cut: say so instead
                raise CertificateError(f"a client certificate's {what} holds at most "
                                       f"{MAX_NAME_ATTRIBUTE} characters (X.509), {value!r} has "
                                       f"{len(value)}: authenticate it with a token")
        attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, g) for g in groups]
        attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, user))
        return self._issue(x509.Name(attrs), ExtendedKeyUsageOID.CLIENT_AUTH, validity=validity,
                           key_type=key_type, now=now)


def signed_by(cert: x509.Certificate, ca_cert: x509.Certificate) -> bool:
    """Whether ``ca_cert`` issued ``cert`` (its subject is the issuer, its key signed it)."""
    if cert.issuer != ca_cert.subject:
        return False
    try:
        cert.verify_directly_issued_by(ca_cert)
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True


def authenticate_client_certificate(cert_data: bytes | x509.Certificate, ca: CertificateAuthority, *,
                                    now: dt.datetime | None = None) -> ClientIdentity:
    """The identity in a client certificate, after checking it as kube-apiserver's x509 authenticator
    does (signed by the cluster's CA, valid now, ``clientAuth`` usage); else :class:`CertificateError`.
    """
    cert = cert_data if isinstance(cert_data, x509.Certificate) else load_certificate(cert_data)
    if not signed_by(cert, ca.cert):
        raise CertificateError("x509: certificate signed by unknown authority")
    now = now or _now()
    if now < cert.not_valid_before_utc or now > cert.not_valid_after_utc:
        raise CertificateError(
            f"x509: certificate has expired or is not yet valid: current time {now:%Y-%m-%dT%H:%M:%SZ} "
            f"is outside {cert.not_valid_before_utc:%Y-%m-%dT%H:%M:%SZ} - "
            f"{cert.not_valid_after_utc:%Y-%m-%dT%H:%M:%SZ}")
    try:
        usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        usages = None
    if usages is not None and ExtendedKeyUsageOID.CLIENT_AUTH not in usages \
            and ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE not in usages:
        raise CertificateError("x509: certificate specifies an incompatible key usage")
    cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    user = str(cns[0].value) if cns else ""
    if not user:
        raise CertificateError("x509: certificate has no common name")
    groups = tuple(str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME))
    return ClientIdentity(user, groups)


def needs_renewal(cert_data: bytes | x509.Certificate, *, names: Iterable[str] = (),
                  ca: CertificateAuthority | None = None, now: dt.datetime | None = None,
                  remaining_fraction: float = 1 / 3) -> str | None:
    """Why a certificate should be re-issued now, or None.

    Renew when less than ``remaining_fraction`` of its lifetime is left (kubelet rotates at
    70–90 % of the lifetime; we take the same idea without jitter), when it is no longer valid,
    when a wanted SAN is missing (an address was added), or when it was not issued by ``ca``.
    """
    cert = cert_data if isinstance(cert_data, x509.Certificate) else load_certificate(cert_data)
    now = now or _now()
    start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
    if now >= end:
        return "expired"
    if now < start:
        return "not yet valid"
    if (end - now) < (end - start) * remaining_fraction:
        return f"expires {end:%Y-%m-%dT%H:%M:%SZ}"
    missing = sorted({n for n in names if n} - certificate_sans(cert), key=str)
    if missing:
        return "missing SANs " + ", ".join(missing)
    if ca is not None and cert.issuer != ca.cert.subject:
        return "issued by another CA"
    return None


def _atomic_write(path: Path, data: bytes, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_private(path: str | os.PathLike[str], data: bytes) -> None:
    """Write a private key atomically, readable by the owner only (0600)."""
    _atomic_write(Path(path), data, 0o600)


def write_public(path: str | os.PathLike[str], data: bytes) -> None:
    """Write a certificate atomically (0644)."""
    _atomic_write(Path(path), data, 0o644)
