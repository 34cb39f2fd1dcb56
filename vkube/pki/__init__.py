"""Key material of a cluster: X.509 (:mod:`.certs`: CA, serving and client certificates), TLS
contexts with in-place certificate renewal (:mod:`.tls`) and service-account JWTs (:mod:`.tokens`).
The bottom layer: imports nothing else from vkube, so the API server, the CLI, the client and the
host can all use it."""

from vkube.pki.certs import (
    CertificateAuthority, CertificateError, ClientIdentity, KeyPair, authenticate_client_certificate,
    certificate_sans, load_certificate, needs_renewal, new_private_key, write_private, write_public)
from vkube.pki.tls import ServingCertificate, client_context, server_context
from vkube.pki.tokens import (
    JWKS_PATH, LEGACY_ISSUER, OPENID_CONFIG_PATH, ServiceAccountIdentity, SigningKey,
    TokenAuthenticator, TokenError, TokenIssuer)

__all__ = [
    "CertificateAuthority", "CertificateError", "ClientIdentity", "KeyPair",
    "authenticate_client_certificate", "certificate_sans", "load_certificate", "needs_renewal",
    "new_private_key", "write_private", "write_public", "JWKS_PATH", "LEGACY_ISSUER",
    "OPENID_CONFIG_PATH", "ServiceAccountIdentity", "SigningKey", "TokenAuthenticator", "TokenError",
    "TokenIssuer", "ServingCertificate", "client_context", "server_context",
]
