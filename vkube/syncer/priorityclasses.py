"""PriorityClasses (only with ``sync.priorityclasses.enabled``): down as ``NAME-x-VC`` so the
pods that name them can be admitted on the host. A tenant never gets a host default class nor
a value in the range Kubernetes reserves for system components (above one billion)."""

from __future__ import annotations

import copy

from vkube.api.meta import Obj
from vkube.client.resources import PRIORITYCLASSES
from vkube.syncer.base import ClusterScopedDownSyncer

MAX_USER_PRIORITY = 1_000_000_000


class PriorityClassSyncer(ClusterScopedDownSyncer):
    kind = "priorityclasses"
    res = PRIORITYCLASSES

    def skip(self, key: str) -> bool:
        return key.startswith("system-")  # the built-in classes are the host's own

    def desired(self, vpc: Obj) -> Obj:
        return {"apiVersion": PRIORITYCLASSES.api_version, "kind": "PriorityClass",
                "metadata": self.tr.host_metadata(vpc),
                "value": min(int(vpc.get("value") or 0), MAX_USER_PRIORITY),
                "globalDefault": False,
                **{k: copy.deepcopy(vpc[k]) for k in ("description", "preemptionPolicy")
                   if k in vpc}}

    def immutable_changed(self, want: Obj, hpc: Obj) -> bool:
        return hpc.get("value") != want["value"] or hpc.get("preemptionPolicy") != want.get("preemptionPolicy")
