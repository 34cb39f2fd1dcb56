"""Static token files and bootstrap tokens: the two bearer-token authenticators besides
service-account JWTs, as kube-apiserver has them.

* ``--token-auth-file`` (``pkg/authentication/token/tokenfile``): a CSV of
  ``token,user,uid[,"group1,group2"]``. Read once at start, like kube-apiserver (a change needs a
  restart). A bad file refuses to start with upstream's words.
* Bootstrap tokens (``plugin/pkg/auth/authenticator/token/bootstrap``): ``ID.SECRET`` (6 and 16
  of ``[a-z0-9]``) matched against the Secret ``kube-system/bootstrap-token-ID`` of type
  ``bootstrap.kubernetes.io/token``, usable for authentication only when
  ``usage-bootstrap-authentication`` is ``true`` and not past ``expiration``; the user is
  ``system:bootstrap:ID`` in ``system:bootstrappers`` plus its ``auth-extra-groups`` (each must
  start with ``system:bootstrappers:``). kubeadm clusters enable them; so does vkube.
"""

from __future__ import annotations

import base64
import csv
import datetime as dt
import hmac
import io
import logging
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from vkube.api import errors
from vkube.api.meta import parse_time
from vkube.apiserver.request import ALL_AUTHENTICATED, UserInfo, internal_context

log = logging.getLogger("vkube.apiserver.authn")

__all__ = ["StaticTokens", "TokenFileError", "BootstrapTokens", "bootstrap_user", "BOOTSTRAP_TOKEN_RE",
           "BOOTSTRAP_SECRET_TYPE", "BOOTSTRAP_SECRET_PREFIX"]

BOOTSTRAP_TOKEN_RE = re.compile(r"^([a-z0-9]{6})\.([a-z0-9]{16})\Z")
BOOTSTRAP_SECRET_TYPE = "bootstrap.kubernetes.io/token"
BOOTSTRAP_SECRET_PREFIX = "bootstrap-token-"
BOOTSTRAPPERS = "system:bootstrappers"
_EXTRA_GROUP_RE = re.compile(r"^system:bootstrappers:[a-z0-9:-]{0,255}[a-z0-9]\Z")


class TokenFileError(ValueError):
    """The static token file cannot be used (the message is kube-apiserver's)."""


class StaticTokens:
    """``--token-auth-file``: token → user, read once."""

    def __init__(self, users: Mapping[str, UserInfo]) -> None:
        self._users = dict(users)

    @classmethod
    def load(cls, path: str | Path) -> StaticTokens:
        """Parse ``path`` as tokenfile.NewCSV does: leading spaces trimmed, empty tokens skipped
        with a warning, at least 3 columns, the 4th a comma-separated group list; a token seen
        twice keeps its last line."""
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise TokenFileError(f"--token-auth-file {path}: {exc.strerror or exc}") from None
        users: dict[str, UserInfo] = {}
        reader = csv.reader(io.StringIO(text), skipinitialspace=True)
        try:
            for record in reader:
                if not record:
                    continue
                if len(record) < 3:
                    raise TokenFileError(f"token file '{path}' must have at least 3 columns (token, user "
                                         f"name, user uid), found {len(record)}")
                token = record[0]
                if not token:
                    log.warning("empty token has been found in token file '%s', line %d", path, reader.line_num)
                    continue
                if token in users:
                    log.warning("duplicate token has been found in token file '%s', line %d", path,
                                reader.line_num)
                groups = tuple(g.strip() for g in record[3].split(",") if g.strip()) if len(record) >= 4 else ()
                users[token] = UserInfo(record[1], uid=record[2], groups=_authenticated(groups))
        except csv.Error as exc:
            raise TokenFileError(f"--token-auth-file {path}: {exc}") from None
        return cls(users)

    def authenticate(self, token: str) -> UserInfo | None:
        return self._users.get(token)


class BootstrapTokens:
    """Bootstrap tokens, looked up in ``kube-system`` Secrets of this cluster's storage."""

    def __init__(self, ctx: Any) -> None:
        self.ctx = ctx  # vkube.apiserver.context.Context

    async def authenticate(self, token: str) -> UserInfo | None:
        m = BOOTSTRAP_TOKEN_RE.match(token)
        if m is None:
            return None
        secret = await self._secret(BOOTSTRAP_SECRET_PREFIX + m.group(1))
        return bootstrap_user(token, secret)

    async def _secret(self, name: str) -> dict[str, Any] | None:
        storage = self.ctx.storage_for("", "Secret")
        if storage is None:
            return None
        rc = internal_context("get", resource="secrets", version="v1", namespace="kube-system", name=name)
        try:
            return await storage.get_or_none(rc, "kube-system", name)
        except errors.StatusError:
            return None


def bootstrap_user(token: str, secret: Mapping[str, Any] | None) -> UserInfo | None:
    """Who bootstrap token ``token`` is, given the Secret ``kube-system/bootstrap-token-ID``
    (None: no such Secret); None when the Secret does not make it valid."""
    m = BOOTSTRAP_TOKEN_RE.match(token)
    if m is None:
        return None
    token_id, token_secret = m.groups()
    if secret is None:
        log.info("bootstrap token %s: no secret", token_id)
        return None
    meta = secret.get("metadata") or {}
    if meta.get("deletionTimestamp"):
        return None
    if secret.get("type") != BOOTSTRAP_SECRET_TYPE:
        return None
    data = _decoded(secret.get("data") or {})
    if not hmac.compare_digest(data.get("token-secret", ""), token_secret) or data.get("token-id") != token_id:
        log.info("bootstrap token %s: secret does not match", token_id)
        return None
    if _expired(data.get("expiration", "")):
        return None
    if data.get("usage-bootstrap-authentication") != "true":
        return None
    extra = [g.strip() for g in data.get("auth-extra-groups", "").split(",") if g.strip()]
    if any(not _EXTRA_GROUP_RE.match(g) for g in extra):
        log.info("bootstrap token %s: bad auth-extra-groups %r", token_id, extra)
        return None
    return UserInfo(f"system:bootstrap:{token_id}", groups=_authenticated((BOOTSTRAPPERS, *extra)))


def _decoded(data: Mapping[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in data.items():
        try:
            out[k] = base64.b64decode(v, validate=True).decode()
        except (ValueError, TypeError):
            continue
    return out


def _expired(value: str, now: dt.datetime | None = None) -> bool:
    """An expiration that does not parse counts as expired (upstream refuses the token)."""
    if not value:
        return False
    when = parse_time(value)
    if when is None:
        return True
    return (now or dt.datetime.now(dt.timezone.utc)) >= when


def _authenticated(groups: tuple[str, ...]) -> tuple[str, ...]:
    return groups if ALL_AUTHENTICATED in groups else (*groups, ALL_AUTHENTICATED)
