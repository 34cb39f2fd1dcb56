"""Watches at a sleeping shared cluster (issue 18): sleep that survives operators.

Informers (client-go's reflector, kopf, the official client's ``Watch``) re-watch from the
last resourceVersion they saw as soon as a watch ends. If that re-watch woke the cluster, no
cluster with an operator or a ``kubectl get -w`` would ever stay asleep. Nothing writes to a
sleeping cluster (none of its components runs), so a watch from a resourceVersion the cluster
had reached when it slept has nothing to deliver until the cluster wakes: such a watch is
*parked* — its request is held (only its connection's own handler task waits, on one event
per cluster) until

- the cluster wakes for another reason: the request then goes to the woken server as it came
  (with what is left of its ``timeoutSeconds``), which authenticates, authorizes and streams
  from that resourceVersion, so nothing written since is lost; or
- its ``timeoutSeconds`` passes: it ends as a server-side watch timeout ends, 200 and a
  clean end of an empty stream (clients re-watch).

Who may park: only a request the awake server already authorized — the same credential (client
certificate, bearer token, impersonation and front-proxy headers) for the same verb, resource,
namespace and name: when such a watch started, and again for every watch still open when the
cluster goes to sleep (its server, about to stop, authenticates and authorizes each once more:
those are the clients that re-watch at once). Such a decision cannot have changed while the cluster slept, since RBAC,
service accounts and their Secrets, CRDs and API services are only changed by writes; the
recorded decisions are dropped on every write to those kinds and on every wake (the server's
token files are read again then), and a credential that expired since (a JWT's ``exp``, a
certificate's ``notAfter``) or that depends on a date kept in the store (bootstrap tokens) is
not parked. Any other watch with a credential the cluster would accept (``wakeauth``) wakes
the cluster, whose server answers it (403 included).

Sleep ends the open watches of tenants as a timeout ends them (clean end of stream, not a
broken connection): each tenant watch leaves its stop function in ``TenantWatches`` (the API
server's ``WATCH_STOPPERS`` request key), which makes its watch loop finish its response
normally.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import random
import re
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web
from yarl import URL

from vkube.apiserver.requestinfo import parse as parse_request

#: store keys (``/GROUP/RESOURCE/...``) whose writes can change who may watch what
AUTHZ_KEYS = ("/rbac.authorization.k8s.io/", "/core/serviceaccounts/", "/core/secrets/",
              "/apiextensions.k8s.io/", "/apiregistration.k8s.io/")
#: recorded decisions per cluster (a full table starts again empty: a miss only wakes)
GRANT_LIMIT = 1024
#: the request header names that take part in who a request is
_IDENTITY_HEADERS = ("authorization", "impersonate-", "x-remote-")
_BOOTSTRAP_TOKEN = re.compile(r"^[a-z0-9]{6}\.[a-z0-9]{16}\Z")


def credential_of(request: web.Request) -> str:
    """A digest of everything authentication reads from ``request``: the client certificate
    the handshake proved, and the identity headers."""
    h = hashlib.sha256()
    transport = request.transport
    sslobj = transport.get_extra_info("ssl_object") if transport is not None else None
    der = sslobj.getpeercert(binary_form=True) if sslobj is not None else None
    h.update(der or b"-")
    for key, value in sorted((k.lower(), v) for k, v in request.headers.items()):
        if key.startswith(_IDENTITY_HEADERS):
            h.update(b"\0" + key.encode() + b"\0" + value.encode())
    return h.hexdigest()


def unexpired(request: web.Request, now: float | None = None) -> bool:
    """The request's credentials are as valid now as when they were authorized: a bearer JWT
    has not passed its ``exp``, the client certificate its ``notAfter``. A bootstrap token's
    expiry lives in a Secret: never assumed."""
    now = time.time() if now is None else now
    auth = request.headers.get("Authorization", "")
    if auth[:7].lower() == "bearer ":
        token = auth[7:].strip()
        if _BOOTSTRAP_TOKEN.match(token):
            return False
        parts = token.split(".")
        if len(parts) == 3:
            try:
                claims = orjson.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
            except (ValueError, orjson.JSONDecodeError):
                return False
            exp = claims.get("exp") if isinstance(claims, dict) else None
            if exp is not None and (not isinstance(exp, (int, float)) or exp <= now):
                return False
    transport = request.transport
    sslobj = transport.get_extra_info("ssl_object") if transport is not None else None
    cert = sslobj.getpeercert() if sslobj is not None else None
    if cert and cert.get("notAfter"):
        try:
            if ssl.cert_time_to_seconds(cert["notAfter"]) <= now:
                return False
        except ValueError:
            return False
    return True


def watch_key(method: str, tail: str) -> tuple[str, ...] | None:
    """What RBAC decides a watch by (``tail``: path and query at the cluster), or None when
    the request is not a watch."""
    url = URL(tail, encoded=True)
    info = parse_request(method, url.path, url.query)
    if not info.is_resource or info.verb != "watch":
        return None
    return (info.group, info.version, info.resource, info.subresource, info.namespace, info.name)


class Grants:
    """Watches the awake server authorized, by (credential, watch key). ``epoch`` moves on every
    ``clear``: a decision taken before a change to authorization is not recorded after it."""

    def __init__(self) -> None:
        self._keys: set[tuple[str, tuple[str, ...]]] = set()
        self.epoch = 0
        #: credential → the user it authenticated as while awake: held watches count by user
        self._users: dict[str, str] = {}

    def note_user(self, credential: str, user: str) -> None:
        if len(self._users) >= GRANT_LIMIT and credential not in self._users:
            self._users.clear()
        self._users[credential] = user

    def user_of(self, credential: str) -> str:
        """Who ``credential`` was when the cluster was awake (itself when unknown)."""
        return self._users.get(credential, credential)

    def clear(self) -> None:
        self._keys.clear()
        self.epoch += 1

    def add(self, credential: str, key: tuple[str, ...], epoch: int) -> None:
        if epoch != self.epoch:
            return
        if len(self._keys) >= GRANT_LIMIT:
            self._keys.clear()
        self._keys.add((credential, key))

    def __contains__(self, item: tuple[str, tuple[str, ...]]) -> bool:
        return item in self._keys

    def __len__(self) -> int:
        return len(self._keys)


#: request key: (grants, credential, watch key, epoch) of a tenant's watch at an awake cluster
GRANT = web.RequestKey("vkube_watch_grant", tuple)


async def record_grant(request: web.Request, response: web.StreamResponse) -> None:
    """``on_response_prepare``: a watch whose stream starts (200) was authorized."""
    grant = request.get(GRANT)
    if grant is not None and response.status == 200:
        grants, credential, key, epoch = grant
        grants.add(credential, key, epoch)


@dataclass
class Ticket:
    """A parked watch: its request's tail and when its ``timeoutSeconds`` ends."""

    tail: str
    deadline: float
    explicit_timeout: bool

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def tail_now(self) -> str:
        """The tail to hand the woken server: the time parked counts against the timeout."""
        if not self.explicit_timeout:
            return self.tail
        url = URL(self.tail, encoded=True)
        left = max(1, int(self.remaining() + 0.999))
        return str(url.update_query(timeoutSeconds=str(left)))


class Parking:
    """One cluster's parking: the decisions its awake server took, the revision it slept at,
    and the event parked watches wait on."""

    def __init__(self) -> None:
        self.grants = Grants()
        #: the store revision when the cluster went to sleep (None: awake, or unknown)
        self.slept_at: int | None = None
        self.awake = asyncio.Event()

    def woke(self) -> None:
        self.slept_at = None
        self.grants.clear()  # the woken server decides afresh (its token files were re-read)
        self.awake.set()

    def slept(self, revision: int) -> None:
        self.awake = asyncio.Event()
        self.slept_at = revision

    def ticket(self, request: web.Request, tail: str, *, compacted: int = 0) -> Ticket | None:
        """A ticket when the watch in ``request`` may be parked, else None (it wakes).
        ``compacted``: the store's compacted revision (older versions get the woken server's
        410 at once, as they would awake)."""
        if self.slept_at is None or request.method != "GET":
            return None
        key = watch_key(request.method, tail)
        if key is None:
            return None
        query = URL(tail, encoded=True).query
        rv = query.get("resourceVersion", "")
        if not rv.isdigit() or not max(1, compacted) <= int(rv) <= self.slept_at:
            return None  # "" / "0" list first; a newer one the cluster never had
        if query.get("sendInitialEvents") == "true":
            return None
        if (credential_of(request), key) not in self.grants or not unexpired(request):
            return None
        raw = query.get("timeoutSeconds", "")
        explicit = raw.isdigit() and int(raw) > 0
        timeout = int(raw) if explicit else random.randint(1800, 3600)  # as serve_watch
        return Ticket(tail, time.monotonic() + timeout, explicit)

    async def wait(self, ticket: Ticket) -> bool:
        """Until the cluster wakes (True) or the watch's timeout passes (False)."""
        awake = self.awake
        try:
            async with asyncio.timeout(max(0.0, ticket.remaining())):
                await awake.wait()
            return True
        except TimeoutError:
            return awake.is_set()


async def admitted(server: Any, request: web.Request) -> bool:
    """Would ``server`` (an ``APIServer``) let ``request`` through authentication and
    authorization now?"""
    from vkube.api import errors

    info = parse_request(request.method, request.path, request.query)
    try:
        rc = await server.request_context(request, info, "")
        rc = server.authorization.impersonate(rc, request.headers.items())
        server.authorization.authorize_request(rc)
    except errors.StatusError:
        return False
    except Exception:  # noqa: BLE001 - undecidable: the watch wakes the cluster instead
        return False
    return True


def gone(request: web.Request) -> bool:
    """The client of ``request`` closed its connection (aiohttp does not cancel the handler)."""
    transport = request.transport
    return transport is None or transport.is_closing()


async def timed_out(request: web.Request) -> web.StreamResponse:
    """A parked watch's end at its ``timeoutSeconds``: as the API server ends a watch at its
    timeout — 200, the watch stream's content type, no event, a clean end."""
    resp = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
    resp.enable_chunked_encoding()
    await resp.prepare(request)
    await resp.write_eof()
    return resp


class TenantWatches:
    """Tenants' open watches: their requests (sleep asks the server, before it stops, whether
    each may go on) and their stop functions (sleep ends them cleanly)."""

    def __init__(self) -> None:
        #: the API server's watch loops add their stop function here (``WATCH_STOPPERS``)
        self.stoppers: set[Callable[[], None]] = set()
        #: handler task → (the request as the cluster's server got it, credential, watch key)
        self.open: dict[asyncio.Task[Any], tuple[web.Request, str, tuple[str, ...]]] = {}

    async def authorize_open(self, server: Any, grants: Grants) -> int:
        """Record every open watch that ``server`` (about to stop) admits now: authentication,
        impersonation and RBAC as its dispatch runs them. Returns how many it admitted."""
        n = 0
        epoch = grants.epoch
        for request, credential, key in list(self.open.values()):
            if await admitted(server, request):
                grants.add(credential, key, epoch)
                n += 1
        return n

    def end(self) -> None:
        """End every tenant watch: each ends its stream as at a timeout."""
        for stop in list(self.stoppers):
            stop()
        self.stoppers.clear()


__all__ = ["AUTHZ_KEYS", "GRANT", "Grants", "Parking", "TenantWatches", "Ticket",
           "admitted", "credential_of", "gone", "record_grant", "timed_out", "unexpired",
           "watch_key"]
