"""Service-account credentials for host pods: the *virtual* cluster's token, never the host's.

For each (virtual namespace, service account) used by a synced pod, a host Secret holds
``token``, ``ca.crt`` and ``namespace`` and is mounted where Kubernetes mounts a token. The token
comes from the virtual API's TokenRequest (``serviceaccounts/NAME/token``); if the server lacks
it, from a legacy ``kubernetes.io/service-account-token`` Secret in the virtual cluster.
Tokens are renewed when 80% of their lifetime has passed.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import logging

from vkube.api import errors
from vkube.api.meta import Obj, parse_time, rfc3339, utcnow
from vkube.client.resources import CONFIGMAPS, SECRETS, SERVICEACCOUNTS
from vkube.syncer.base import SyncContext
from vkube.syncer.translate import LABEL_NAMESPACE

log = logging.getLogger(__name__)

ANN_REFRESH = "vkube.io/token-refresh-at"
ANN_SERVICE_ACCOUNT = "vkube.io/service-account"
TOKEN_SECONDS = 365 * 24 * 3600
RETRY_SECONDS = 60
_SA_TOKEN = "kubernetes.io/service-account-token"


def _refresh_of(secret: Obj) -> dt.datetime:
    ann = ((secret.get("metadata") or {}).get("annotations") or {})
    return parse_time(ann.get(ANN_REFRESH)) or dt.datetime.min.replace(tzinfo=dt.timezone.utc)


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


class TokenManager:
    """Keeps one host token Secret per (namespace, service account) current."""

    def __init__(self, ctx: SyncContext) -> None:
        self.ctx = ctx
        self.secrets = ctx.informers.host(SECRETS)
        self.virtual_ca = ""  # fallback CA when the namespace has no kube-root-ca.crt
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}
        self._written: dict[str, Obj] = {}  # our last write, until the informer has it

    def secret_name(self, namespace: str, sa: str) -> str:
        return self.ctx.tr.token_secret_name(namespace, sa)

    def holds(self, secret: Obj, namespace: str, sa: str) -> bool:
        """Is ``secret`` this cluster's token Secret of exactly ``namespace/sa``? A Secret of
        the same name for another service account is never mounted nor overwritten."""
        meta = secret.get("metadata") or {}
        return self.ctx.tr.is_owned(secret) and \
            (meta.get("labels") or {}).get(LABEL_NAMESPACE) == namespace and \
            (meta.get("annotations") or {}).get(ANN_SERVICE_ACCOUNT) == sa

    def refresh_in(self, namespace: str, sa: str) -> float | None:
        """Seconds until the token Secret needs renewing (0: now); None: no Secret yet."""
        cur = self.secrets.get(self.secret_name(namespace, sa), self.ctx.host_namespace)
        if cur is None:
            return None
        at = parse_time(((cur.get("metadata") or {}).get("annotations") or {}).get(ANN_REFRESH))
        return max(0.0, (at - utcnow()).total_seconds()) if at else 0.0

    async def ensure(self, namespace: str, sa: str) -> str:
        """The host Secret's name, creating or renewing the token when needed (one request
        per service account at a time, however many pod workers ask)."""
        lock = self._locks.setdefault((namespace, sa), asyncio.Lock())
        async with lock:
            return await self._ensure(namespace, sa)

    async def _ensure(self, namespace: str, sa: str) -> str:
        name = self.secret_name(namespace, sa)
        cached = self.secrets.get(name, self.ctx.host_namespace)
        cur = max((c for c in (cached, self._written.get(name)) if c is not None),
                  key=_refresh_of, default=None)
        if cur is not None and not self.holds(cur, namespace, sa):
            raise errors.Conflict(f"host secret {name} exists and is not the token of "
                                  f"{namespace}/{sa}")
        if cur is not None and _refresh_of(cur) > utcnow():
            return name
        now = utcnow()
        try:
            token, expires = await self._token(namespace, sa)
            refresh_at = now + (expires - now) * 0.8 if expires else now + dt.timedelta(days=300)
        except (errors.NotFound, errors.ServiceUnavailable) as e:
            # no token yet (service account or token controller missing): start the pod
            # anyway and fill the Secret in later; mounted Secrets update in place.
            log.warning("no token for %s/%s yet (%s); retrying in %ss", namespace, sa, e,
                        RETRY_SECONDS)
            token, refresh_at = "", now + dt.timedelta(seconds=RETRY_SECONDS)
        ca = await self._ca(namespace)
        body = {
            "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {
                "name": name, "namespace": self.ctx.host_namespace,
                "labels": self.ctx.tr.owner_labels(namespace),
                "annotations": {ANN_REFRESH: rfc3339(refresh_at),
                                ANN_SERVICE_ACCOUNT: sa},
            },
            "data": {"token": _b64(token), "ca.crt": _b64(ca), "namespace": _b64(namespace)},
        }
        if cur is None:
            try:
                self._written[name] = await self.ctx.host.create(
                    SECRETS, body, namespace=self.ctx.host_namespace)
                return name
            except errors.AlreadyExists:
                cur = await self.ctx.host.get(SECRETS, name, namespace=self.ctx.host_namespace)
        if not self.holds(cur, namespace, sa):
            raise errors.Conflict(f"host secret {name} exists and is not the token of "
                                  f"{namespace}/{sa}")
        body["metadata"]["resourceVersion"] = cur["metadata"]["resourceVersion"]
        try:
            self._written[name] = await self.ctx.host.update(SECRETS, body)
        except (errors.NotFound, errors.Conflict):
            self._written.pop(name, None)  # deleted or changed under us: start over next time
            raise
        return name

    async def _token(self, namespace: str, sa: str) -> tuple[str, dt.datetime | None]:
        v = self.ctx.virtual
        await v.get(SERVICEACCOUNTS, sa, namespace=namespace)  # NotFound: retry later
        req = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
               "spec": {"expirationSeconds": TOKEN_SECONDS}}
        try:
            reply = await v.create(SERVICEACCOUNTS, req, namespace=namespace,
                                   subresource="token", name=sa)
            status = reply.get("status") or {}
            if status.get("token"):
                return status["token"], parse_time(status.get("expirationTimestamp"))
        except (errors.NotFound, errors.MethodNotAllowed, errors.BadRequest) as e:
            log.info("virtual TokenRequest unavailable (%s); using a token Secret", e.reason)
        return await self._legacy_token(namespace, sa), None

    async def _legacy_token(self, namespace: str, sa: str) -> str:
        v = self.ctx.virtual
        name = f"{sa}-vkube-token"
        try:
            sec = await v.get(SECRETS, name, namespace=namespace)
        except errors.NotFound:
            sec = await v.create(SECRETS, {
                "apiVersion": "v1", "kind": "Secret", "type": _SA_TOKEN,
                "metadata": {"name": name, "namespace": namespace,
                             "annotations": {"kubernetes.io/service-account.name": sa}},
            }, namespace=namespace)
        token = (sec.get("data") or {}).get("token")
        if not token:
            raise errors.ServiceUnavailable(f"token Secret {namespace}/{name} not filled yet")
        return base64.b64decode(token).decode()

    async def _ca(self, namespace: str) -> str:
        try:
            cm = await self.ctx.virtual.get(CONFIGMAPS, "kube-root-ca.crt", namespace=namespace)
            return (cm.get("data") or {}).get("ca.crt", "") or self.virtual_ca
        except errors.NotFound:
            return self.virtual_ca
