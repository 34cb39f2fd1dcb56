"""PriorityClasses (only with ``sync.priorityclasses.enabled``): down as ``NAME-x-VC`` so the
pods that name them can be admitted on the host. A tenant never gets a host default class nor
a value in the range Kubernetes reserves for system components (above one billion)."""

from __future__ import annotations

import copy
from typing import Any

from vkube.api import errors
from vkube.client.resources import PRIORITYCLASSES
from vkube.syncer.base import KindSyncer, delete_ignore_missing, deleting

Obj = dict[str, Any]

MAX_USER_PRIORITY = 1_000_000_000


class PriorityClassSyncer(KindSyncer):
    kind = "priorityclasses"

    def setup(self) -> None:
        self.vinf = self.ctx.informers.virtual(PRIORITYCLASSES)
        self.hinf = self.ctx.informers.host(PRIORITYCLASSES)
        self.vinf.add_handler(lambda t, o, old: self.enqueue(o["metadata"]["name"]))
        self.hinf.add_handler(lambda t, o, old: self.enqueue(self.host_key(o)))

    def initial_keys(self) -> list[str]:
        keys = {o["metadata"]["name"] for o in self.vinf.list()}
        keys |= {k for o in self.hinf.list() if (k := self.host_key(o))}
        return sorted(keys)

    def desired(self, vpc: Obj) -> Obj:
        return {"apiVersion": PRIORITYCLASSES.api_version, "kind": "PriorityClass",
                "metadata": self.tr.host_metadata(vpc),
                "value": min(int(vpc.get("value") or 0), MAX_USER_PRIORITY),
                "globalDefault": False,
                **{k: copy.deepcopy(vpc[k]) for k in ("description", "preemptionPolicy")
                   if k in vpc}}

    async def reconcile(self, key: str) -> None:
        if key.startswith("system-"):
            return  # the built-in classes are the host's own
        hname = self.tr.host_cluster_name(key)
        vpc, hpc = self.vinf.get(key), self.hinf.get(hname)
        if vpc is None or deleting(vpc):
            if hpc is not None and self.tr.is_owned(hpc):
                await delete_ignore_missing(self.ctx.host, PRIORITYCLASSES, hname, None)
            return
        want = self.desired(vpc)
        if hpc is None:
            try:
                await self.ctx.host.create(PRIORITYCLASSES, want)
            except errors.AlreadyExists:
                pass
            return
        if self.tr.is_owned(hpc) and (hpc.get("value") != want["value"] or
                                      hpc.get("preemptionPolicy") != want.get("preemptionPolicy")):
            # value and preemptionPolicy are immutable: replace
            await delete_ignore_missing(self.ctx.host, PRIORITYCLASSES, hname, None)
            self.queue.add_after(key, 0.5)
