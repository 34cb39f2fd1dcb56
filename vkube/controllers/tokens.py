"""Token Secrets, as kube-controller-manager keeps them.

* ``tokencleaner`` (``pkg/controller/bootstrap/tokencleaner.go``): a bootstrap-token Secret in
  ``kube-system`` whose ``expiration`` has passed is deleted (requeued for the moment it
  expires; an unparsable expiration counts as expired, as upstream's).
* the legacy ``tokens`` controller (``pkg/controller/serviceaccount/tokens_controller.go``): a
  Secret of type ``kubernetes.io/service-account-token`` that names a service account in its
  ``kubernetes.io/service-account.name`` annotation gets ``data.token`` (a non-expiring JWT of
  the cluster's key), ``data.ca.crt``, ``data.namespace`` and the account's UID annotation; a
  Secret whose account does not exist (or has another UID) is deleted. Since 1.24 such Secrets
  exist only when someone creates them — exactly the "legacy token Secrets on request".
"""

from __future__ import annotations

import base64
from typing import Any

from vkube.api import errors
from vkube.api.meta import parse_time
from vkube.client.resources import SECRETS, SERVICEACCOUNTS
from vkube.controllers.runtime import Controller, Obj

BOOTSTRAP_TYPE = "bootstrap.kubernetes.io/token"
SA_TOKEN_TYPE = "kubernetes.io/service-account-token"
SA_NAME = "kubernetes.io/service-account.name"
SA_UID = "kubernetes.io/service-account.uid"


def _b64(s: str) -> str:
    return base64.b64encode(s.encode()).decode()


class TokenCleaner(Controller):
    name = "tokencleaner"
    workers = 1

    def setup(self) -> None:
        self.secrets = self.mgr.informer(SECRETS, namespace="kube-system",
                                         field_selector=f"type={BOOTSTRAP_TYPE}")
        self.secrets.add_handler(self.handler)

    async def reconcile(self, key: str) -> float | None:
        ns, _, name = key.partition("/")
        secret = self.secrets.get(name, ns)
        if secret is None or secret.get("type") != BOOTSTRAP_TYPE or secret["metadata"].get("deletionTimestamp"):
            return None
        raw = (secret.get("data") or {}).get("expiration")
        if not raw:
            return None
        try:
            value = base64.b64decode(raw).decode()
        except (ValueError, UnicodeDecodeError):
            value = ""
        when = parse_time(value)
        left = (when - self.mgr.clock()).total_seconds() if when is not None else 0.0
        if left > 0:
            return left
        try:
            await self.client.delete(SECRETS, name, namespace=ns,
                                     preconditions={"uid": secret["metadata"].get("uid")})
        except (errors.NotFound, errors.Conflict):
            pass
        return None


class LegacyTokensController(Controller):
    name = "serviceaccount-token-controller"

    def setup(self) -> None:
        self.secrets = self.mgr.informer(SECRETS, field_selector=f"type={SA_TOKEN_TYPE}")
        self.sas = self.mgr.informer(SERVICEACCOUNTS)
        self.secrets.add_handler(self.handler)
        self.sas.add_handler(self._on_sa)

    def _on_sa(self, typ: str, obj: Obj, old: Obj | None) -> None:
        meta = obj["metadata"]
        for s in self.secrets.list(meta.get("namespace")):
            if (s["metadata"].get("annotations") or {}).get(SA_NAME) == meta["name"]:
                self.enqueue(s)

    async def reconcile(self, key: str) -> float | None:
        issuer: Any = self.mgr.token_issuer
        ns, _, name = key.partition("/")
        secret = self.secrets.get(name, ns)
        if issuer is None or secret is None or secret.get("type") != SA_TOKEN_TYPE:
            return None
        meta = secret["metadata"]
        if meta.get("deletionTimestamp"):
            return None
        ann = meta.get("annotations") or {}
        sa = self.sas.get(ann.get(SA_NAME, ""), ns)
        if sa is None or (ann.get(SA_UID) and ann[SA_UID] != sa["metadata"].get("uid")):
            # the account is gone (or is another one of that name): so is its token
            if await self._account_missing(ns, ann.get(SA_NAME, ""), ann.get(SA_UID)):
                try:
                    await self.client.delete(SECRETS, name, namespace=ns, preconditions={"uid": meta.get("uid")})
                except (errors.NotFound, errors.Conflict):
                    pass
            return None
        data = dict(secret.get("data") or {})
        want = {"ca.crt": _b64(self.mgr.root_ca_pem), "namespace": _b64(ns)}
        if data.get("token") and all(data.get(k) == v for k, v in want.items()) and ann.get(SA_UID):
            return None
        if not data.get("token"):
            data["token"] = _b64(issuer.issue_legacy(sa, name))
        data.update(want)
        try:
            await self.client.patch(SECRETS, name, {
                "metadata": {"resourceVersion": meta["resourceVersion"],
                             "annotations": {SA_UID: sa["metadata"].get("uid", "")}},
                "data": data}, namespace=ns)
        except (errors.Conflict, errors.NotFound):
            pass  # the informer brings the newer state
        return None

    async def _account_missing(self, ns: str, name: str, uid: str | None) -> bool:
        """Ask the server, not the cache (upstream's liveServiceAccount), before deleting."""
        if not name:
            return True
        try:
            live = await self.client.get(SERVICEACCOUNTS, name, namespace=ns)
        except errors.NotFound:
            return True
        return bool(uid) and live["metadata"].get("uid") != uid
