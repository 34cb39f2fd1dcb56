"""``serviceaccounts/NAME/token`` (TokenRequest): signed, expiring service-account tokens in
Kubernetes' JWT shape. Signed with HS256 by a key the control plane keeps in its data dir; the
authentication issue will verify them (and may move to RS256 with a published JWKS)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
import uuid
from typing import Any

import orjson
from aiohttp import web

from vkube.api import errors
from vkube.apiserver import http
from vkube.apiserver.context import Context
from vkube.api.meta import rfc3339
from vkube.apiserver.request import RequestContext

DEFAULT_EXPIRY = 3600
MIN_EXPIRY = 600
MAX_EXPIRY = 48 * 3600
ISSUER = "https://kubernetes.default.svc.cluster.local"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def sign(key: bytes, claims: dict[str, Any]) -> str:
    header = _b64(orjson.dumps({"alg": "HS256", "typ": "JWT", "kid": hashlib.sha256(key).hexdigest()[:16]}))
    payload = _b64(orjson.dumps(claims))
    sig = hmac.new(key, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{_b64(sig)}"


def verify(key: bytes, token: str, *, now: float | None = None) -> dict[str, Any] | None:
    """The claims of a valid, unexpired token signed with ``key``; None otherwise."""
    try:
        header, payload, sig = token.split(".")
        want = hmac.new(key, f"{header}.{payload}".encode(), hashlib.sha256).digest()
        if not hmac.compare_digest(want, base64.urlsafe_b64decode(sig + "=" * (-len(sig) % 4))):
            return None
        claims = orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (ValueError, orjson.JSONDecodeError):
        return None
    if claims.get("exp", 0) < (now or time.time()):
        return None
    return claims


async def token_request(ctx: Context, request: web.Request, rc: RequestContext) -> web.Response:
    info = rc.info
    if request.method != "POST":
        raise errors.method_not_allowed()
    body = http.decode_body(await http.read_body(request), request.headers.get("Content-Type", http.JSON))
    if not isinstance(body, dict):
        raise errors.BadRequest("the body must be a TokenRequest object")
    spec = body.get("spec") or {}
    expiry = spec.get("expirationSeconds", DEFAULT_EXPIRY)
    if not isinstance(expiry, int) or isinstance(expiry, bool) or expiry < MIN_EXPIRY:
        raise errors.invalid("TokenRequest", info.name, [errors.field_error(
            "spec.expirationSeconds", f"Invalid value: {errors.go_value(expiry)}: may not specify a duration less than 10 minutes")],
            group="authentication.k8s.io")
    expiry = min(expiry, MAX_EXPIRY)
    audiences = spec.get("audiences") or [ISSUER]
    sa_storage = ctx.storage_for("", "ServiceAccount")
    assert sa_storage is not None
    sa = await sa_storage.get(rc, info.namespace, info.name)
    now = int(ctx.clock().timestamp())
    k8s: dict[str, Any] = {"namespace": info.namespace,
                           "serviceaccount": {"name": info.name, "uid": sa["metadata"]["uid"]}}
    bound = spec.get("boundObjectRef")
    if isinstance(bound, dict) and bound.get("kind") in ("Pod", "Secret", "Node"):
        k8s[bound["kind"].lower()] = {"name": bound.get("name"), "uid": bound.get("uid")}
    claims = {"aud": audiences, "exp": now + expiry, "iat": now, "nbf": now, "iss": ISSUER,
              "jti": str(uuid.uuid4()), "kubernetes.io": k8s,
              "sub": f"system:serviceaccount:{info.namespace}:{info.name}"}
    token = sign(ctx.signing_key, claims)
    import datetime as dt

    return http.json_response({
        "kind": "TokenRequest", "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"name": info.name, "namespace": info.namespace, "creationTimestamp": None},
        "spec": {"audiences": audiences, "expirationSeconds": expiry, "boundObjectRef": bound},
        "status": {"token": token,
                   "expirationTimestamp": rfc3339(dt.datetime.fromtimestamp(now + expiry, dt.timezone.utc))},
    }, 201)
