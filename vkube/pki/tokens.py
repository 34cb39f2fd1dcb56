"""Service-account tokens: signed JWTs with Kubernetes' claims, their verification, and the
issuer discovery documents (``/.well-known/openid-configuration``, ``/openid/v1/jwks``).

Follows ``pkg/serviceaccount`` (``claims.go``, ``jwt.go``, ``legacy.go``, ``openidmetadata.go``):

- bound tokens (TokenRequest): ``iss``, ``sub`` = ``system:serviceaccount:NS:NAME``, ``aud``
  (list), ``exp``, ``nbf``, ``iat``, ``jti`` and the private ``kubernetes.io`` claim naming the
  namespace, the service account and optionally the pod or secret (and node) the token is bound to;
- legacy tokens (token Secrets): issuer ``kubernetes/serviceaccount``, no expiry, the
  ``kubernetes.io/serviceaccount/*`` claims, valid only while the Secret holds that very token;
- verification: a token whose issuer is not ours is "not ours" (None: other authenticators may
  try it); ours must carry a valid RS256/ES256 signature of one of our keys, share an audience
  with the server's, be inside exp/nbf/iat with 60 s leeway (go-jose's default), and every bound
  object must still exist with the same UID and not be deleted for more than 60 s. Failures raise
  :class:`TokenError` with kube-apiserver's text (shown in TokenReview ``status.error``).
- key IDs are kube-apiserver's: base64url(SHA-256(DER of the public key)).

JWS/JWT handling uses PyJWT (with ``cryptography``): mature, small, and strict about the
algorithms it is given; the claim checks are ours, to give Kubernetes' messages.
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import hashlib
import hmac
import json
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

__all__ = [
    "SigningKey", "VerifyingKey", "TokenError", "TokenIssuer", "TokenAuthenticator", "ServiceAccountIdentity",
    "Lookup", "LEGACY_ISSUER", "MIN_EXPIRATION_SECONDS", "MAX_EXPIRATION_SECONDS", "JWKS_PATH",
    "OPENID_CONFIG_PATH", "JWKS_CONTENT_TYPE", "MAX_TOKEN_BYTES", "peek",
]

LEGACY_ISSUER = "kubernetes/serviceaccount"
MIN_EXPIRATION_SECONDS = 600
MAX_EXPIRATION_SECONDS = 1 << 32
LEEWAY = dt.timedelta(seconds=60)
MAX_TOKEN_BYTES = 64 * 1024
#: tokens whose verified signature a TokenAuthenticator remembers (then it forgets them all)
VERIFIED_CACHE = 256
JWKS_PATH = "/openid/v1/jwks"
OPENID_CONFIG_PATH = "/.well-known/openid-configuration"
JWKS_CONTENT_TYPE = "application/jwk-set+json"
SA_PREFIX = "system:serviceaccount:"
_ALGS = frozenset({"RS256", "ES256", "ES384", "ES512"})

#: ``lookup(kind, namespace, name)`` → the object as the API returns it (dict) or None.
Lookup = Callable[[str, str, str], Mapping[str, Any] | None]


class TokenError(Exception):
    """A token that is ours but not (or no longer) valid."""


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _int_b64(value: int, length: int | None = None) -> str:
    size = length or max(1, (value.bit_length() + 7) // 8)
    return _b64url(value.to_bytes(size, "big"))


def _kid_and_alg(public: rsa.RSAPublicKey | ec.EllipticCurvePublicKey) -> tuple[str, str]:
    der = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    kid = _b64url(hashlib.sha256(der).digest())
    if isinstance(public, rsa.RSAPublicKey):
        return kid, "RS256"
    alg = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}.get(public.curve.name, "")
    if not alg:
        raise ValueError(f"unsupported curve {public.curve.name}")
    return kid, alg


class VerifyingKey:
    """The public half of a cluster's signing key: all a token's signature is checked with
    (the shared server keeps one per sleeping cluster, never the private key)."""

    def __init__(self, public: rsa.RSAPublicKey | ec.EllipticCurvePublicKey) -> None:
        self.public = public
        self.kid, self.alg = _kid_and_alg(public)


class SigningKey:
    """A private key that signs tokens: RS256 (RSA 2048) or ES256 (P-256)."""

    def __init__(self, private_key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> None:
        self.key = private_key
        self.public = private_key.public_key()
        self.kid, self.alg = _kid_and_alg(self.public)

    def verifying_key(self) -> VerifyingKey:
        return VerifyingKey(self.public)

    @classmethod
    def generate(cls, alg: str = "RS256") -> SigningKey:
        if alg == "RS256":
            return cls(rsa.generate_private_key(public_exponent=65537, key_size=2048))
        if alg == "ES256":
            return cls(ec.generate_private_key(ec.SECP256R1()))
        raise ValueError(f'unsupported signing algorithm "{alg}": use RS256 or ES256')

    @classmethod
    def from_pem(cls, pem: bytes) -> SigningKey:
        key = serialization.load_pem_private_key(pem, password=None)
        if not isinstance(key, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey)):
            raise ValueError("service-account signing key must be RSA or ECDSA")
        return cls(key)

    def private_pem(self) -> bytes:
        return self.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption())

    def public_jwk(self) -> dict[str, str]:
        """The key as kube-apiserver lists it in its JWKS (``use: sig``, ``kid``, ``alg``)."""
        public = self.key.public_key()
        if isinstance(public, rsa.RSAPublicKey):
            numbers = public.public_numbers()
            return {"use": "sig", "kty": "RSA", "kid": self.kid, "alg": self.alg,
                    "n": _int_b64(numbers.n), "e": _int_b64(numbers.e)}
        assert isinstance(public, ec.EllipticCurvePublicKey)
        pnum = public.public_numbers()
        size = (public.curve.key_size + 7) // 8
        crv = {"ES256": "P-256", "ES384": "P-384", "ES512": "P-521"}[self.alg]
        return {"use": "sig", "kty": "EC", "kid": self.kid, "crv": crv, "alg": self.alg,
                "x": _int_b64(pnum.x, size), "y": _int_b64(pnum.y, size)}


def _ref(obj: Mapping[str, Any] | None) -> dict[str, str] | None:
    if obj is None:
        return None
    meta = obj.get("metadata") or {}
    return {"name": str(meta.get("name") or ""), "uid": str(meta.get("uid") or "")}


class TokenIssuer:
    """Signs tokens for one cluster with its current key; publishes all keys it verifies with."""

    def __init__(self, issuer: str, key: SigningKey, *, extra_public_keys: Sequence[SigningKey] = ()) -> None:
        self.issuer = issuer
        self.key = key
        self.verify_keys = [key, *extra_public_keys]

    def issue(self, service_account: Mapping[str, Any], *, audiences: Sequence[str],
              expiration_seconds: int = 3600, pod: Mapping[str, Any] | None = None,
              secret: Mapping[str, Any] | None = None, node: Mapping[str, Any] | None = None,
              now: dt.datetime | None = None, warn_after: dt.datetime | None = None) -> tuple[str, dt.datetime]:
        """A bound token (TokenRequest) and its expiry. ``pod`` and ``secret`` are exclusive."""
        if pod is not None and secret is not None:
            raise ValueError("a token is bound to a pod or to a secret, not both")
        if not audiences:
            raise ValueError("a token needs at least one audience")
        if not MIN_EXPIRATION_SECONDS <= expiration_seconds <= MAX_EXPIRATION_SECONDS:
            raise ValueError(f"expirationSeconds must be between {MIN_EXPIRATION_SECONDS} and "
                             f"{MAX_EXPIRATION_SECONDS}")
        meta = service_account.get("metadata") or {}
        namespace = str(meta.get("namespace") or "")
        now = (now or dt.datetime.now(dt.timezone.utc)).replace(microsecond=0)
        exp = now + dt.timedelta(seconds=expiration_seconds)
        private: dict[str, Any] = {"namespace": namespace, "serviceaccount": _ref(service_account)}
        for key, obj in (("pod", pod), ("secret", secret), ("node", node)):
            if obj is not None:
                private[key] = _ref(obj)
        if warn_after is not None:
            private["warnafter"] = int(warn_after.timestamp())
        claims = {"iss": self.issuer, "sub": f"{SA_PREFIX}{namespace}:{meta.get('name')}",
                  "aud": list(audiences), "exp": int(exp.timestamp()), "iat": int(now.timestamp()),
                  "nbf": int(now.timestamp()), "jti": str(uuid.uuid4()), "kubernetes.io": private}
        return self._sign(claims), exp

    def issue_legacy(self, service_account: Mapping[str, Any], secret_name: str) -> str:
        """A non-expiring token for a ``kubernetes.io/service-account-token`` Secret."""
        meta = service_account.get("metadata") or {}
        namespace, name = str(meta.get("namespace") or ""), str(meta.get("name") or "")
        claims = {"iss": LEGACY_ISSUER, "kubernetes.io/serviceaccount/namespace": namespace,
                  "kubernetes.io/serviceaccount/secret.name": secret_name,
                  "kubernetes.io/serviceaccount/service-account.name": name,
                  "kubernetes.io/serviceaccount/service-account.uid": str(meta.get("uid") or ""),
                  "sub": f"{SA_PREFIX}{namespace}:{name}"}
        return self._sign(claims)

    def _sign(self, claims: Mapping[str, Any]) -> str:
        import jwt  # PyJWT (~0.6 MiB) only once a token is issued

        return jwt.encode(dict(claims), self.key.key, algorithm=self.key.alg,
                          headers={"kid": self.key.kid, "typ": None})

    def jwks(self) -> dict[str, Any]:
        """``/openid/v1/jwks``: every public key tokens may be verified with."""
        return {"keys": [k.public_jwk() for k in self.verify_keys]}

    def openid_configuration(self, *, jwks_uri: str = "") -> dict[str, Any]:
        """``/.well-known/openid-configuration``; ``jwks_uri`` defaults to the issuer's host."""
        if not jwks_uri:
            base = self.issuer.split("://", 1)
            host = base[1].split("/", 1)[0] if len(base) == 2 else base[0]
            jwks_uri = f"{base[0]}://{host}{JWKS_PATH}" if len(base) == 2 else JWKS_PATH
        return {"issuer": self.issuer, "jwks_uri": jwks_uri, "response_types_supported": ["id_token"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": sorted({k.alg for k in self.verify_keys})}


@dataclass(frozen=True)
class ServiceAccountIdentity:
    """Who a valid token authenticates as (``user.Info`` of a service account)."""

    name: str
    uid: str
    groups: tuple[str, ...]
    extra: dict[str, list[str]] = field(default_factory=dict)
    audiences: tuple[str, ...] = ()
    namespace: str = ""
    service_account: str = ""
    expires: dt.datetime | None = None


def _deleted_long_ago(obj: Mapping[str, Any], now: dt.datetime) -> bool:
    stamp = (obj.get("metadata") or {}).get("deletionTimestamp")
    if not stamp:
        return False
    try:
        when = dt.datetime.fromisoformat(str(stamp).replace("Z", "+00:00"))
    except ValueError:
        return True
    return when < now - LEEWAY


class TokenAuthenticator:
    """Verifies service-account tokens for one cluster (its issuers, keys and API audiences)."""

    def __init__(self, *, issuers: Sequence[str], keys: Sequence[SigningKey | VerifyingKey], audiences: Sequence[str],
                 lookup: Lookup, legacy: bool = True) -> None:
        self.issuers = set(issuers) | ({LEGACY_ISSUER} if legacy else set())
        self.keys = {k.kid: k for k in keys}
        self.audiences = list(audiences)
        self.lookup = lookup
        # token -> (the key that verified its signature, its claims): a client sends the same
        # token with every request (a syncer thousands a minute), and an ECDSA/RSA verify was
        # ~3% of a host's CPU in a rollout. Only the signature is remembered: times, audiences
        # and bound objects are checked on every request, so a deleted ServiceAccount still
        # ends its tokens at once.
        self._verified: dict[str, tuple[SigningKey | VerifyingKey, dict[str, Any]]] = {}

    def authenticate(self, token: str, *, audiences: Sequence[str] | None = None,
                     now: dt.datetime | None = None) -> ServiceAccountIdentity | None:
        """The identity, None if the token is not one of ours, or :class:`TokenError`."""
        if len(token) > MAX_TOKEN_BYTES or token.count(".") != 2:
            return None
        header, unverified = peek(token)
        if header is None or unverified is None:
            return None
        iss = unverified.get("iss")
        if not isinstance(iss, str) or iss not in self.issuers:
            return None
        claims = self._verify_signature(token, header)
        now = now or dt.datetime.now(dt.timezone.utc)
        if claims.get("iss") == LEGACY_ISSUER:
            return self._legacy(token, claims, now)
        wanted = list(audiences) if audiences else self.audiences
        raw_aud = claims.get("aud")
        token_auds = [raw_aud] if isinstance(raw_aud, str) else raw_aud if isinstance(raw_aud, list) else []
        if raw_aud is not None and (not token_auds and raw_aud != [] or
                                    not all(isinstance(a, str) for a in token_auds)):
            raise TokenError("service account token claims could not be validated: bad aud")
        accepted = [a for a in token_auds if a in wanted] if token_auds else list(wanted)
        if not accepted:
            raise TokenError(f"token audiences {_go_list(token_auds)} is invalid for the target "
                             f"audiences {_go_list(wanted)}")
        self._check_times(claims, now)
        return self._bound(claims, now, tuple(accepted))

    def signed(self, token: str) -> dict[str, Any] | None:
        """The claims of a token one of our keys signed for one of our issuers, None for any
        other (nothing else is checked: the cheap first test before reading bound objects)."""
        if len(token) > MAX_TOKEN_BYTES or token.count(".") != 2:
            return None
        header, unverified = peek(token)
        if header is None or unverified is None or unverified.get("iss") not in self.issuers:
            return None
        try:
            return self._verify_signature(token, header)
        except TokenError:
            return None

    def _verify_signature(self, token: str, header: Mapping[str, Any]) -> dict[str, Any]:
        known = self._verified.get(token)
        if known is not None and self.keys.get(known[0].kid) is known[0]:  # that key still trusted
            return copy.deepcopy(known[1])
        claims, key = self._verify_uncached(token, header)
        if len(self._verified) >= VERIFIED_CACHE:
            self._verified.clear()
        self._verified[token] = (key, copy.deepcopy(claims))
        return claims

    def _verify_uncached(self, token: str, header: Mapping[str, Any]
                         ) -> tuple[dict[str, Any], SigningKey | VerifyingKey]:
        import jwt  # PyJWT only once a token is presented

        alg, kid = header.get("alg"), header.get("kid")
        if not isinstance(alg, str) or alg not in _ALGS:
            raise TokenError("invalid signature")
        candidates = [self.keys[kid]] if isinstance(kid, str) and kid in self.keys else list(self.keys.values())
        for key in candidates:
            if key.alg != alg:
                continue
            try:
                return jwt.decode(token, key.public, algorithms=[key.alg], options={
                    "verify_aud": False, "verify_exp": False, "verify_nbf": False, "verify_iat": False,
                    "verify_iss": False}), key
            except jwt.InvalidSignatureError:
                continue
            except jwt.InvalidTokenError as exc:
                raise TokenError(f"invalid token: {exc}") from None
        raise TokenError("invalid signature")

    @staticmethod
    def _check_times(claims: Mapping[str, Any], now: dt.datetime) -> None:
        def at(key: str) -> dt.datetime | None:
            value = claims.get(key)
            if value is None:
                return None
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                raise TokenError(f"service account token claims could not be validated: bad {key}")
            return dt.datetime.fromtimestamp(value, dt.timezone.utc)
        exp, nbf, iat = at("exp"), at("nbf"), at("iat")
        if exp is None:
            raise TokenError("service account token has no expiry")
        if now - LEEWAY > exp:
            raise TokenError("service account token has expired")
        if nbf is not None and now + LEEWAY < nbf:
            raise TokenError("service account token is not valid yet")
        if iat is not None and now + LEEWAY < iat:
            raise TokenError("service account token is issued in the future")

    def _get(self, kind: str, namespace: str, name: str) -> Mapping[str, Any]:
        obj = self.lookup(kind, namespace, name) if name else None
        if obj is None:
            resource = {"ServiceAccount": "serviceaccounts", "Pod": "pods", "Secret": "secrets",
                        "Node": "nodes"}[kind]
            raise TokenError(f'{resource} "{name}" not found')
        return obj

    def _bound(self, claims: Mapping[str, Any], now: dt.datetime,
               audiences: tuple[str, ...]) -> ServiceAccountIdentity:
        private = claims.get("kubernetes.io")
        if not isinstance(private, Mapping) or not isinstance(private.get("serviceaccount"), Mapping):
            raise TokenError("service account token claims could not be validated: no kubernetes.io claim")
        namespace = str(private.get("namespace") or "")
        sa_ref = private["serviceaccount"]
        sa = self._get("ServiceAccount", namespace, str(sa_ref.get("name") or ""))
        sa_uid = str((sa.get("metadata") or {}).get("uid") or "")
        if sa_uid != sa_ref.get("uid"):
            raise TokenError(f"service account UID ({sa_uid}) does not match claim ({sa_ref.get('uid')})")
        if _deleted_long_ago(sa, now):
            raise TokenError(f"service account {namespace}/{sa_ref.get('name')} has been deleted")
        extra: dict[str, list[str]] = {}
        for kind, key, label in (("Secret", "secret", "secret"), ("Pod", "pod", "pod"), ("Node", "node", "node")):
            ref = private.get(key)
            if ref is None:
                continue
            if not isinstance(ref, Mapping):
                raise TokenError(f"service account token claims could not be validated: bad {key}")
            obj = self._get(kind, "" if kind == "Node" else namespace, str(ref.get("name") or ""))
            uid = str((obj.get("metadata") or {}).get("uid") or "")
            if kind != "Node" and _deleted_long_ago(obj, now):
                raise TokenError("service account token has been invalidated")
            if ref.get("uid") and uid != ref.get("uid"):
                claim = "claim" if kind == "Node" else f"service account {label} ref claim"
                raise TokenError(f"{label} UID ({uid}) does not match {claim} ({ref.get('uid')})")
            if kind in ("Pod", "Node"):
                extra[f"authentication.kubernetes.io/{label}-name"] = [str(ref.get("name"))]
                if ref.get("uid"):
                    extra[f"authentication.kubernetes.io/{label}-uid"] = [str(ref.get("uid"))]
        if claims.get("jti"):
            extra["authentication.kubernetes.io/credential-id"] = [f"JTI={claims['jti']}"]
        name = str(sa_ref.get("name"))
        exp = claims.get("exp")
        return ServiceAccountIdentity(
            f"{SA_PREFIX}{namespace}:{name}", sa_uid, _sa_groups(namespace), extra, audiences,
            namespace, name, dt.datetime.fromtimestamp(exp, dt.timezone.utc) if exp else None)

    def _legacy(self, token: str, claims: Mapping[str, Any], now: dt.datetime) -> ServiceAccountIdentity:
        prefix = "kubernetes.io/serviceaccount/"
        namespace = str(claims.get(prefix + "namespace") or "")
        name = str(claims.get(prefix + "service-account.name") or "")
        secret_name = str(claims.get(prefix + "secret.name") or "")
        if not namespace or not name or not secret_name:
            raise TokenError("service account token claims could not be validated: missing claims")
        secret = self._get("Secret", namespace, secret_name)
        stored = base64.b64decode(((secret.get("data") or {}).get("token") or "").encode() or b"")
        if not hmac.compare_digest(stored, token.encode()):
            raise TokenError("token does not match server's copy")
        if _deleted_long_ago(secret, now):
            raise TokenError("service account token has been invalidated")
        sa = self._get("ServiceAccount", namespace, name)
        sa_uid = str((sa.get("metadata") or {}).get("uid") or "")
        claimed = claims.get(prefix + "service-account.uid")
        if claimed and sa_uid != claimed:
            raise TokenError(f"service account UID ({sa_uid}) does not match claim ({claimed})")
        if _deleted_long_ago(sa, now):
            raise TokenError(f"service account {namespace}/{name} has been deleted")
        return ServiceAccountIdentity(f"{SA_PREFIX}{namespace}:{name}", sa_uid, _sa_groups(namespace),
                                      {}, tuple(self.audiences), namespace, name, None)


def peek(token: str) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """Header and claims without verifying anything: only to see whose token it is (PyJWT
    verifies it afterwards); None for anything that is not a JSON-object JWS."""
    out: list[dict[str, Any] | None] = []
    for segment in token.split(".")[:2]:
        try:
            value = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
        except (ValueError, UnicodeDecodeError):
            value = None
        out.append(value if isinstance(value, dict) else None)
    return out[0], out[1]


def _sa_groups(namespace: str) -> tuple[str, ...]:
    return ("system:serviceaccounts", f"system:serviceaccounts:{namespace}", "system:authenticated")


def _go_list(values: Sequence[str]) -> str:
    return "[" + " ".join(f'"{v}"' for v in values) + "]"
