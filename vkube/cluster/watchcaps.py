"""Caps on tenants' watches in shared mode: one process serves every cluster, so a tenant
must not hold an unbounded number of watches open, nor park an unbounded number at its
sleeping cluster. Each costs a connection, a task and buffers (asyncio's TLS transport alone
reads into 256 KiB per connection): 4,000 held watches took 4,000 descriptors and ~160 MB.

Two counts per cluster — watches open at its awake server, and watches held while it sleeps
(``vkube.cluster.sleepwatch``) — each capped per cluster and per credential (the digest
``sleepwatch.credential_of`` makes of a request's certificate and identity headers). A watch
over a cap is refused the way kube-apiserver's max-in-flight filter refuses a request: 429,
``Retry-After: 1``, "Too many requests, please try again later." (plain text); clients retry
after that delay. The cluster's own components watch in process and are never counted."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WatchLimits:
    """``controlPlane.watches`` in a cluster's values (defaults: room for operators that watch
    every kind of a cluster, ~50 built-in kinds plus CRDs; each watch is a connection of its
    own, HTTP/1.1, ~300 KiB with its TLS buffers, so 300 cost the process ~90 MB at most)."""

    #: watches one cluster may have open (and, separately, held while it sleeps)
    per_cluster: int = 300
    #: of those, how many one user may have (``controlPlane.watches.maxPerCredential``)
    per_credential: int = 150
    #: the Retry-After seconds of a refusal (kube-apiserver's max-in-flight sends 1)
    retry_after: int = 1


class WatchCount:
    """How many watches of one kind (open, or held) a cluster has, in all and by credential."""

    #: a refusal is logged at most this often per count (a client in a retry loop would flood)
    LOG_EVERY = 60.0

    def __init__(self, what: str) -> None:
        self.what = what
        self.total = 0
        self.by_credential: dict[str, int] = {}
        #: refusals so far (what a platform would watch)
        self.refused = 0
        self._logged = 0.0

    def take(self, credential: str, limits: WatchLimits) -> bool:
        """Count one more of ``credential`` (a user, ``tenantcaps.user_key``); False (nothing
        counted) when a cap is full."""
        mine = self.by_credential.get(credential, 0)
        if self.total >= limits.per_cluster or mine >= limits.per_credential:
            self.refused += 1
            now = time.monotonic()
            if now - self._logged >= self.LOG_EVERY:
                self._logged = now
                log.warning("shared: %s refused (429): %d in all (cap %d), %d of one "
                            "user (cap %d)", self.what, self.total, limits.per_cluster,
                            mine, limits.per_credential)
            return False
        self.total += 1
        self.by_credential[credential] = mine + 1
        return True

    def give(self, credential: str) -> None:
        """One watch of ``credential`` ended."""
        mine = self.by_credential.get(credential, 0) - 1
        if mine > 0:
            self.by_credential[credential] = mine
        else:
            self.by_credential.pop(credential, None)
        self.total = max(0, self.total - 1)


__all__ = ["WatchCount", "WatchLimits"]
