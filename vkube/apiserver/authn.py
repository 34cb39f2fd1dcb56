"""Authentication: who sent a request, as kube-apiserver's authenticator union decides it.

Order and semantics follow ``pkg/kubeapiserver/authenticator``: the front proxy's request
headers (:class:`RequestHeader`), x509 client certificates (CN =
user, O = groups, issued by *this* cluster's CA), then bearer tokens (service-account JWTs
signed by this cluster's key, a static ``--token-auth-file``, bootstrap tokens: ``tokenauth``). The first authenticator that succeeds wins;
credentials that are presented but invalid fail the request with 401 even where anonymous access
would be allowed (``union.NewFailOnError``). A request with no credentials is anonymous, which
is allowed only on the paths Kubernetes keeps open to ``system:unauthenticated`` by default
(``AnonymousAuthConfigurableEndpoints``: ``/healthz``, ``/livez``, ``/readyz``) and ``/version``
(``system:public-info-viewer``); everywhere else it is 401. A 401 says "Unauthorized" and
nothing more, so a probe learns nothing about why.

Service-account tokens are verified by :class:`vkube.pki.TokenAuthenticator`; the objects a
token is bound to (service account, pod, secret, node) are read from storage *before* the
synchronous check, so a token of a deleted service account or pod dies with it — within
``TOKEN_SUCCESS_TTL`` (10 s): as kube-apiserver's ``--token-success-cache-ttl``, a token that
authenticated is taken again for that long without the signature check and the reads (each a
store round trip: on a host, every syncer request paid them).
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
import urllib.parse
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

from aiohttp import web
from cryptography import x509
from multidict import CIMultiDict

from vkube.api import errors
from vkube.apiserver.request import ALL_AUTHENTICATED, UserInfo, internal_context
from vkube.apiserver.tokenauth import BOOTSTRAP_TOKEN_RE, BootstrapTokens, StaticTokens
from vkube.pki import (CertificateAuthority, CertificateError, ClientIdentity, TokenAuthenticator,
                       TokenError, authenticate_client_certificate)
from vkube.pki.cluster import ClusterPKI
from vkube.pki.tokens import LEGACY_ISSUER, MAX_TOKEN_BYTES, TokenIssuer, peek

log = logging.getLogger("vkube.apiserver.authn")

__all__ = ["Authenticator", "RequestHeader", "ANONYMOUS", "ISSUER", "anonymous_allowed", "bound_refs",
           "without_front_proxy_headers", "certificate_user"]

ISSUER = "https://kubernetes.default.svc.cluster.local"
ANONYMOUS = UserInfo("system:anonymous", groups=("system:unauthenticated",))
_ANONYMOUS_PATHS = ("/healthz", "/livez", "/readyz", "/version")
_CERT_CACHE_SIZE = 1024
#: kube-apiserver's ``--token-success-cache-ttl`` default: a bearer token that authenticated is
#: taken again for this long without verifying its signature and reading the objects it is
#: bound to (a deleted ServiceAccount's token keeps working up to this long, as upstream's);
#: failures are not cached (``--token-failure-cache-ttl`` 0)
TOKEN_SUCCESS_TTL = 10.0
_TOKEN_CACHE_SIZE = 4096
_FRONT_PROXY_PREFIX = "x-remote-"
_KINDS = {"ServiceAccount": ("", "ServiceAccount"), "Pod": ("", "Pod"), "Secret": ("", "Secret"),
          "Node": ("", "Node")}


def anonymous_allowed(path: str) -> bool:
    """Whether a request without credentials may proceed (Kubernetes' default anonymous paths)."""
    path = path.rstrip("/") or "/"
    return any(path == p or path.startswith(p + "/") for p in _ANONYMOUS_PATHS)


def unauthorized() -> errors.Unauthorized:
    return errors.Unauthorized("Unauthorized")


class RequestHeader:
    """kube-apiserver's request-header authenticator (``--requestheader-*``): a client whose
    certificate the front-proxy CA issued, with a CN in ``allowed_names`` (empty: any), is who
    its ``X-Remote-User`` says, in the ``X-Remote-Group`` groups with the ``X-Remote-Extra-KEY``
    extras. Such a certificate is nobody without the headers, and the headers are nothing
    without such a certificate: only this class reads them, and they are removed from every
    request once it is authenticated (:func:`without_front_proxy_headers`)."""

    username_headers = ("X-Remote-User",)
    group_headers = ("X-Remote-Group",)
    extra_prefixes = ("X-Remote-Extra-",)

    def __init__(self, ca: CertificateAuthority, allowed_names: Sequence[str] = ()) -> None:
        self.ca = ca
        self.allowed_names = tuple(allowed_names)
        self._verified: OrderedDict[bytes, float] = OrderedDict()

    def trusts(self, der: bytes) -> bool:
        """Whether the peer certificate is the front proxy's (``x509.Verifier`` with its
        allowed common names); why not is logged, as upstream's union collects it."""
        now = time.time()
        until = self._verified.get(der)
        if until is not None and now < until:
            return True
        try:
            cert = x509.load_der_x509_certificate(der)
            ident = authenticate_client_certificate(cert, self.ca)
        except (CertificateError, ValueError):
            return False  # not the front proxy's: the other authenticators decide
        if self.allowed_names and ident.user not in self.allowed_names:
            log.info("request-header certificate refused: x509: subject with cn=%s is not in the allowed list",
                     ident.user)
            return False
        self._verified[der] = min(cert.not_valid_after_utc.timestamp(), now + 60)
        if len(self._verified) > _CERT_CACHE_SIZE:
            self._verified.popitem(last=False)
        return True

    def user(self, headers: Mapping[str, str]) -> UserInfo | None:
        """The user the headers name (``requestheader.AuthenticateRequest``); None without a
        user name. ``headers`` is a case-insensitive multidict (aiohttp's)."""
        name = next((v for v in (_first(headers, h) for h in self.username_headers) if v), "")
        if not name:
            return None
        groups = [v for h in self.group_headers for v in _all(headers, h) if v]
        extra: dict[str, list[str]] = {}
        for prefix in self.extra_prefixes:  # prefixes first, as upstream orders the values
            for key, value in headers.items():
                if key.lower().startswith(prefix.lower()):
                    extra.setdefault(_unescape(key[len(prefix):].lower()), []).append(value)
        return UserInfo(name, groups=_with_authenticated(groups),
                        extra=MappingProxyType({k: tuple(v) for k, v in extra.items()}))


def _unescape(key: str) -> str:
    """``unescapeExtraKey``: %-decoded, or as sent when that fails (Go's PathUnescape)."""
    if re.search(r"%(?![0-9a-fA-F]{2})", key):
        return key
    try:
        return urllib.parse.unquote(key, errors="strict")
    except UnicodeDecodeError:
        return key


def _first(headers: Mapping[str, str], name: str) -> str:
    values = _all(headers, name)
    return values[0] if values else ""


def _all(headers: Mapping[str, str], name: str) -> list[str]:
    getall = getattr(headers, "getall", None)
    if getall is not None:
        return list(getall(name, ()))
    value = headers.get(name)
    return [value] if value is not None else []


class Authenticator:
    """The authenticators of one cluster: its CA for client certificates, its signing key for
    service-account tokens."""

    def __init__(self, pki: ClusterPKI, ctx: Any, *, issuer: str = ISSUER,
                 api_audiences: Sequence[str] = (), static_tokens: StaticTokens | None = None,
                 bootstrap_tokens: bool = True, requestheader: RequestHeader | None = None) -> None:
        self.pki = pki
        self.requestheader = requestheader
        self.static_tokens = static_tokens
        self.bootstrap_tokens = BootstrapTokens(ctx) if bootstrap_tokens else None
        self.ctx = ctx  # vkube.apiserver.context.Context: storage for bound-object lookups
        self.issuer = TokenIssuer(issuer, pki.signing_key)
        self.api_audiences = list(api_audiences) or [issuer]
        self._certs: OrderedDict[bytes, tuple[UserInfo, float]] = OrderedDict()
        #: sha256(token), audiences -> (answer, until): upstream's tokencache
        self._tokens: OrderedDict[tuple[bytes, tuple[str, ...]],
                                  tuple[tuple[UserInfo, tuple[str, ...]], float]] = OrderedDict()

    async def authenticate(self, request: web.Request) -> UserInfo:
        """The request's user; anonymous where allowed; else :class:`errors.Unauthorized`."""
        if self.requestheader is not None:  # the headers first: without them no certificate check
            claimed = self.requestheader.user(request.headers)
            der = _peer_certificate(request) if claimed is not None else None
            if claimed is not None and der and self.requestheader.trusts(der):
                return claimed
        user = self._from_certificate(request)
        if user is not None:
            return user
        header = request.headers.get("Authorization")
        if header is not None:
            scheme, _, token = header.strip().partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise unauthorized()
            found = await self.authenticate_token(token.strip())
            if found is None:
                raise unauthorized()
            return found[0]
        if anonymous_allowed(request.path):
            return ANONYMOUS
        raise unauthorized()

    def _from_certificate(self, request: web.Request) -> UserInfo | None:
        der = _peer_certificate(request)
        if not der:
            return None
        now = time.time()
        cached = self._certs.get(der)
        if cached is not None and now < cached[1]:
            self._certs.move_to_end(der)
            return cached[0]
        try:
            cert = x509.load_der_x509_certificate(der)
            ident = _check_certificate(cert, self.pki)
        except (CertificateError, ValueError) as exc:
            # The TLS layer already refused certificates of other CAs; what is left (expired
            # since the handshake, wrong usage) is a 401 with the reason in our log only.
            log.info("client certificate refused: %s", exc)
            raise unauthorized() from None
        user = certificate_user(ident.user, ident.groups)
        self._certs[der] = (user, min(cert.not_valid_after_utc.timestamp(), now + 60))
        if len(self._certs) > _CERT_CACHE_SIZE:
            self._certs.popitem(last=False)
        return user

    async def authenticate_token(self, token: str, *, audiences: Sequence[str] | None = None
                                 ) -> tuple[UserInfo, tuple[str, ...]] | None:
        """The user a bearer token stands for and the audiences it was accepted for; None when
        it is nobody's (garbage, another cluster's, expired, unbound…). Why is only logged."""
        if len(token) > MAX_TOKEN_BYTES:
            return None
        key = (hashlib.sha256(token.encode()).digest(), tuple(audiences or ()))
        now = time.monotonic()
        cached = self._tokens.get(key)
        if cached is not None:
            if now < cached[1]:
                self._tokens.move_to_end(key)
                return cached[0]
            del self._tokens[key]
        found, until = await self._authenticate_token(token, audiences)
        if found is not None and until > 0:
            self._tokens[key] = (found, min(now + TOKEN_SUCCESS_TTL, now + until))
            if len(self._tokens) > _TOKEN_CACHE_SIZE:
                self._tokens.popitem(last=False)
        return found

    async def _authenticate_token(self, token: str, audiences: Sequence[str] | None
                                  ) -> tuple[tuple[UserInfo, tuple[str, ...]] | None, float]:
        """The answer, and for how many seconds more the token itself is valid (its ``exp``;
        a cached answer never outlives it)."""
        user, _ = await self._non_jwt(token)
        if user is not None:
            accepted = self._audience_agnostic(audiences)
            # a bootstrap token expires by its Secret's own field: never cached (node joins
            # are rare), so it ends exactly then
            left = 0.0 if BOOTSTRAP_TOKEN_RE.match(token) else TOKEN_SUCCESS_TTL
            return ((user, accepted) if accepted else None), left
        try:
            found = await self._service_account(token, audiences)
        except TokenError as exc:
            log.info("service-account token refused: %s", exc)
            return None, 0.0
        if found is None:
            return None, 0.0
        _, claims = peek(token)
        exp = claims.get("exp") if isinstance(claims, dict) else None
        left = float(exp) - time.time() if isinstance(exp, (int, float)) else TOKEN_SUCCESS_TTL
        return found, left

    def _audience_agnostic(self, audiences: Sequence[str] | None) -> tuple[str, ...]:
        """Tokens without audiences (static, bootstrap) are valid for the API's audiences
        only (upstream's WrapAudienceAgnosticToken): the requested ones that are the API's."""
        if not audiences:
            return tuple(self.api_audiences)
        return tuple(a for a in audiences if a in self.api_audiences)

    async def _non_jwt(self, token: str) -> tuple[UserInfo | None, bool]:
        """Static file, then bootstrap token (kube-apiserver's union order around the JWT
        authenticator); (user, whether the token looked like one of theirs)."""
        if self.static_tokens is not None:
            user = self.static_tokens.authenticate(token)
            if user is not None:
                return user, True
        if self.bootstrap_tokens is not None and BOOTSTRAP_TOKEN_RE.match(token):
            return await self.bootstrap_tokens.authenticate(token), True
        return None, False

    async def review(self, token: str, audiences: Sequence[str] | None) -> tuple[UserInfo | None, tuple[str, ...], str]:
        """TokenReview: (user or None, audiences, error text as kube-apiserver words it)."""
        if len(token) > MAX_TOKEN_BYTES:
            return None, (), "token too large"
        user, theirs = await self._non_jwt(token)
        if user is not None and (accepted := self._audience_agnostic(audiences)):
            return user, accepted, ""
        if theirs:
            return None, (), "[invalid bearer token, token lookup failed]"
        try:
            found = await self._service_account(token, audiences)
        except TokenError as exc:
            return None, (), f"[invalid bearer token, {exc}]"
        if found is None:
            return None, (), "[invalid bearer token, token lookup failed]"
        return found[0], found[1], ""

    async def _service_account(self, token: str, audiences: Sequence[str] | None
                               ) -> tuple[UserInfo, tuple[str, ...]] | None:
        header, claims = peek(token) if token.count(".") == 2 else (None, None)
        if header is None or claims is None:
            return None
        objects = await self._bound_objects(claims)
        verifier = TokenAuthenticator(issuers=[self.issuer.issuer], keys=[self.pki.signing_key],
                                      audiences=self.api_audiences,
                                      lookup=lambda kind, ns, name: objects.get((kind, ns, name)))
        ident = verifier.authenticate(token, audiences=audiences)
        if ident is None:
            return None
        extra = MappingProxyType({k: tuple(v) for k, v in ident.extra.items()})
        return UserInfo(ident.name, uid=ident.uid, groups=ident.groups, extra=extra), ident.audiences

    async def _bound_objects(self, claims: Mapping[str, Any]) -> dict[tuple[str, str, str], Any]:
        """Read every object the (not yet verified) claims name, so verification can check they
        still exist. At most four reads, all of names inside the token's own namespace."""
        out: dict[tuple[str, str, str], Any] = {}
        for kind, ns, name in bound_refs(claims, self.issuer.issuer):
            storage = self.ctx.storage_for(*_KINDS[kind])
            if storage is None:
                continue
            rc = internal_context("get", resource=storage.spec.plural, version="v1", namespace=ns, name=name)
            try:
                obj = await storage.get_or_none(rc, ns or None, name)
            except errors.StatusError:
                obj = None
            if obj is not None:
                out[(kind, ns, name)] = obj
        return out


def bound_refs(claims: Mapping[str, Any], issuer: str) -> list[tuple[str, str, str]]:
    """(kind, namespace, name) of every object a token's claims say it is bound to: what
    verification must find still existing. Namespaced kinds only in the token's namespace."""
    wanted: list[tuple[Any, Any, Any]] = []
    if claims.get("iss") == LEGACY_ISSUER:
        prefix = "kubernetes.io/serviceaccount/"
        ns = claims.get(prefix + "namespace")
        wanted = [("ServiceAccount", ns, claims.get(prefix + "service-account.name")),
                  ("Secret", ns, claims.get(prefix + "secret.name"))]
    elif claims.get("iss") == issuer:
        private = claims.get("kubernetes.io")
        if not isinstance(private, Mapping):
            return []
        ns = private.get("namespace")
        for kind, key in (("ServiceAccount", "serviceaccount"), ("Pod", "pod"), ("Secret", "secret"),
                          ("Node", "node")):
            ref = private.get(key)
            if isinstance(ref, Mapping):
                wanted.append((kind, "" if kind == "Node" else ns, ref.get("name")))
    return [(kind, ns, name) for kind, ns, name in wanted
            if isinstance(ns, str) and isinstance(name, str) and name]


def without_front_proxy_headers(request: web.Request) -> web.Request:
    """The request as handlers see it after authentication: without ``X-Remote-*`` (upstream's
    ``ClearAuthenticationHeaders``), so nothing past this point can read an identity a
    client merely claimed. The same request when it has none (almost always)."""
    if not any(key.lower().startswith(_FRONT_PROXY_PREFIX) for key in request.headers):
        return request
    kept = CIMultiDict((k, v) for k, v in request.headers.items() if not k.lower().startswith(_FRONT_PROXY_PREFIX))
    return request.clone(headers=kept)


def _peer_certificate(request: web.Request) -> bytes | None:
    transport = request.transport
    ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
    return ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None


def certificate_user(name: str, groups: Sequence[str]) -> UserInfo:
    """The user a valid client certificate of CN ``name``, O ``groups`` authenticates as."""
    return UserInfo(name, groups=_with_authenticated(groups))


def _with_authenticated(groups: Sequence[str]) -> tuple[str, ...]:
    """Every authenticated user is also in ``system:authenticated`` (kube-apiserver adds it)."""
    return tuple(groups) if ALL_AUTHENTICATED in groups else (*groups, ALL_AUTHENTICATED)


def _check_certificate(cert: x509.Certificate, pki: ClusterPKI) -> ClientIdentity:
    return authenticate_client_certificate(cert, pki.ca)
