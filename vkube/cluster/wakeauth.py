"""Who may wake a sleeping shared cluster, or keep an awake one from sleeping.

Only a request that would authenticate to the cluster wakes it: a client certificate that this
cluster's own CA or front-proxy CA issued, or a bearer token one of the cluster's own token
authenticators would accept, checked as the awake server checks it (``vkube.apiserver.authn``):
a service-account JWT signed by the cluster's key (its public half, read once from
``pki/sa.key``) for its issuer and API audience, inside ``exp``/``nbf``/``iat``, whose bound
service account, pod, secret or node still exist in the cluster's store; a bootstrap token its
``kube-system`` Secret makes valid; a line of its static token file. A port scanner, an
anonymous health check, garbage or another cluster's token must not wake a tenant's cluster;
while it sleeps such a request is answered without starting anything (401, or 503 on the
health paths anonymous clients may read), as the woken server would have refused it anyway.

An awake cluster's activity is counted by the shared server from its answers instead: only a
request that carries a credential and is not answered 401/403 keeps it awake (an anonymous
health check does not), so no check runs here for awake clusters."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

log = logging.getLogger(__name__)

#: paths anonymous clients may read on an awake cluster (vkube's anonymous policy)
HEALTH_PATHS = ("/healthz", "/livez", "/readyz", "/version")

#: ``read(key)``: the value a sleeping cluster's store holds at ``key`` (``/core/secrets/...``,
#: as its API server names keys), or None
Reader = Callable[[str], Awaitable[bytes | None]]
_KEYS = {"ServiceAccount": "/core/serviceaccounts/", "Pod": "/core/pods/",
         "Secret": "/core/secrets/", "Node": "/core/nodes/"}


class WakeCredentials:
    """Per cluster: the CA certificates whose client certificates count and the public key
    its service-account tokens are signed with (read once, lazily, from the cluster's ``pki``
    directory: the cluster's own files, never changed while it lives), how to read its store
    and decrypt its Secrets there, and its static token file."""

    #: verdicts remembered per certificate (a signature check costs ~0.4 ms; a client sends
    #: the same certificate on every request)
    CACHE = 32

    def __init__(self, pki_dir: Path | None, *, read: Reader | None = None,
                 encryption_config: Path | None = None, token_file: Path | None = None) -> None:
        self.pki_dir = pki_dir
        self.read = read
        self.encryption_config = encryption_config
        self.token_file = token_file
        self._cas: list[Any] | None = None
        self._seen: dict[bytes, bool] = {}
        self._verifier: Any = None
        self._static: tuple[float, Any] | None = None
        self._encryption: tuple[float, Any] | None = None

    def _authorities(self) -> list[Any]:
        if self._cas is None:
            from cryptography import x509

            cas = []
            for name in ("ca.crt", "front-proxy-ca.crt"):
                path = self.pki_dir / name if self.pki_dir is not None else None
                try:
                    if path is not None and path.exists():
                        cas.append(x509.load_pem_x509_certificate(path.read_bytes()))
                except (OSError, ValueError) as exc:
                    log.warning("wake: cannot read %s: %s", path, exc)
            self._cas = cas
        return self._cas

    async def may_authenticate(self, request: web.Request) -> bool:
        """Whether ``request`` carries a credential this cluster would accept: a client
        certificate of its own (the server reads that first), else the bearer token."""
        if self._certified(request):
            return True
        auth = request.headers.get("Authorization")
        if auth is None:
            return False
        scheme, _, token = auth.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return False
        try:
            return await self.token_valid(token)
        except Exception:  # noqa: BLE001 - undecidable is "no": the request gets a 401
            log.exception("wake: checking a bearer token failed")
            return False

    def _certified(self, request: web.Request) -> bool:
        der = _peer_certificate(request)
        if not der:
            return False
        known = self._seen.get(der)
        if known is None:
            if len(self._seen) >= self.CACHE:
                self._seen.clear()
            known = self._seen[der] = self._issued_here(der)
        return known

    async def token_valid(self, token: str) -> bool:
        """The cluster's bearer-token authenticators in the awake server's order: static
        file, bootstrap token, service-account JWT."""
        from vkube.apiserver.tokenauth import (BOOTSTRAP_SECRET_PREFIX, BOOTSTRAP_TOKEN_RE,
                                               bootstrap_user)
        from vkube.pki.tokens import MAX_TOKEN_BYTES

        if len(token) > MAX_TOKEN_BYTES:
            return False
        static = self._static_tokens()
        if static is not None and static.authenticate(token) is not None:
            return True
        m = BOOTSTRAP_TOKEN_RE.match(token)
        if m is not None:
            secret = await self._object(_KEYS["Secret"] + "kube-system/" + BOOTSTRAP_SECRET_PREFIX + m.group(1))
            return bootstrap_user(token, secret) is not None
        return await self._service_account(token)

    async def _service_account(self, token: str) -> bool:
        from vkube.apiserver.authn import ISSUER, bound_refs
        from vkube.pki.tokens import TokenAuthenticator, TokenError

        verifier = self._token_verifier()
        if verifier is None:
            return False
        claims = verifier.signed(token)  # signature first: a forged token costs no store read
        if claims is None:
            return False
        objects: dict[tuple[str, str, str], Any] = {}
        for kind, ns, name in bound_refs(claims, ISSUER):
            obj = await self._object(_KEYS[kind] + (f"{ns}/{name}" if kind != "Node" else name))
            if obj is not None:
                objects[(kind, ns, name)] = obj
        checker = TokenAuthenticator(issuers=[ISSUER], keys=list(verifier.keys.values()),
                                     audiences=[ISSUER],
                                     lookup=lambda kind, ns, name: objects.get((kind, ns, name)))
        try:
            return checker.authenticate(token) is not None
        except TokenError as exc:
            log.info("wake: service-account token refused: %s", exc)
            return False

    def _token_verifier(self) -> Any:
        """The cluster's token verifier with only the public half of its signing key."""
        if self._verifier is None and self.pki_dir is not None:
            from vkube.apiserver.authn import ISSUER
            from vkube.pki.tokens import SigningKey, TokenAuthenticator

            try:
                key = SigningKey.from_pem((self.pki_dir / "sa.key").read_bytes()).verifying_key()
            except (OSError, ValueError) as exc:
                log.warning("wake: no service-account key in %s: %s", self.pki_dir, exc)
                return None
            self._verifier = TokenAuthenticator(issuers=[ISSUER], keys=[key], audiences=[ISSUER],
                                                lookup=lambda *_: None)
        return self._verifier

    def _static_tokens(self) -> Any:
        """The static token file as the woken server would read it (again when it changed)."""
        if self.token_file is None:
            return None
        from vkube.apiserver.tokenauth import StaticTokens, TokenFileError

        try:
            mtime = self.token_file.stat().st_mtime
            if self._static is None or self._static[0] != mtime:
                self._static = (mtime, StaticTokens.load(self.token_file))
        except (OSError, TokenFileError):
            return None
        return self._static[1]

    async def _object(self, key: str) -> dict[str, Any] | None:
        """The object stored at ``key`` in the sleeping cluster's store (Secrets decrypted
        with the cluster's own keys), None when absent or unreadable."""
        if self.read is None:
            return None
        value = await self.read(key)
        if value is None:
            return None
        if key.startswith(_KEYS["Secret"]):
            from vkube.api import errors

            try:
                config = self._encryption_config()
            except (errors.StatusError, ValueError, OSError):
                return None
            if config is None:
                return None if value.startswith(b"k8s:enc:") else _json(value)
            try:
                value = config.decrypt(key, value)
            except (errors.StatusError, ValueError, OSError):
                return None
        return _json(value)

    def _encryption_config(self) -> Any:
        """The cluster's encryption config, parsed again only when the file changed (a
        flood of bootstrap-shaped tokens at a sleeping cluster must not parse it per token);
        None when the cluster has none."""
        if self.encryption_config is None:
            return None
        from vkube.apiserver.encryption import EncryptionConfig

        try:
            mtime = self.encryption_config.stat().st_mtime
        except FileNotFoundError:
            return None
        if self._encryption is None or self._encryption[0] != mtime:
            self._encryption = (mtime, EncryptionConfig.load(self.encryption_config))
        return self._encryption[1]

    def _issued_here(self, der: bytes) -> bool:
        from cryptography import x509

        from vkube.pki.certs import signed_by

        try:
            cert = x509.load_der_x509_certificate(der)
        except ValueError:
            return False
        return any(signed_by(cert, ca) for ca in self._authorities())


def presents_credential(request: web.Request) -> bool:
    """Whether ``request`` carries a credential at all (a token or a client certificate): an
    anonymous request the awake server answers (``/healthz``, ``/version``) is no activity."""
    return "Authorization" in request.headers or bool(_peer_certificate(request))


def _peer_certificate(request: web.Request) -> bytes | None:
    transport = request.transport
    sslobj = transport.get_extra_info("ssl_object") if transport is not None else None
    return sslobj.getpeercert(binary_form=True) if sslobj is not None else None


def refusal(path: str, name: str) -> web.StreamResponse:
    """The answer a sleeping cluster gives a request that could not authenticate."""
    from vkube.api import errors
    from vkube.apiserver import http as api_http

    if path.split("?", 1)[0] in HEALTH_PATHS:
        return api_http.status_response(errors.ServiceUnavailable(
            f"virtual cluster {name} is asleep: an authenticated request wakes it", retry_after=5))
    return api_http.status_response(errors.Unauthorized("Unauthorized"))


def _json(value: bytes) -> dict[str, Any] | None:
    try:
        obj = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None
    return obj if isinstance(obj, dict) else None
