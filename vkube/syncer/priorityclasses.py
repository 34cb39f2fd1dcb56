"""PriorityClasses (only with ``sync.priorityclasses.enabled``): down as ``NAME-x-VC`` so the
pods that name them can be admitted on the host. A tenant never gets a host default class.

On the host a class's value ranks this tenant's pods against the host's and other tenants'
(scheduling order, the kubelet's eviction order, preemption): the owner decides how far with
``sync.priorityclasses.maxValue`` (a higher value is capped, with a Warning event), and host
copies never preempt (``preemptionPolicy: Never``) unless ``allowPreemption`` — else one
tenant's pods could evict another's to get scheduled."""

from __future__ import annotations

import copy

from vkube.api.meta import Obj
from vkube.client.resources import PRIORITYCLASSES
from vkube.syncer.base import ClusterScopedDownSyncer
from vkube.syncer.values import MAX_USER_PRIORITY

REASON_CAPPED = "PriorityCapped"


class PriorityClassSyncer(ClusterScopedDownSyncer):
    kind = "priorityclasses"
    res = PRIORITYCLASSES

    def skip(self, key: str) -> bool:
        return key.startswith("system-")  # the built-in classes are the host's own

    def desired(self, vpc: Obj) -> Obj:
        opts = self.ctx.values.sync.priorityclasses
        value = int(vpc.get("value") or 0)
        cap = min(opts.max_value, MAX_USER_PRIORITY)
        if value > cap:
            self.ctx.recorder.event(vpc, "Warning", REASON_CAPPED, (
                f"value {value} is above sync.priorityclasses.maxValue ({cap}): the host copy "
                f"has {cap}, so on the host this class's pods rank no higher than that; the "
                "cluster's owner may raise sync.priorityclasses.maxValue"))
        policy = vpc.get("preemptionPolicy") if opts.allow_preemption else "Never"
        return {"apiVersion": PRIORITYCLASSES.api_version, "kind": "PriorityClass",
                "metadata": self.tr.host_metadata(vpc),
                "value": min(value, cap),
                "globalDefault": False,
                **({"description": copy.deepcopy(vpc["description"])} if "description" in vpc
                   else {}),
                **({"preemptionPolicy": policy} if policy else {})}

    def immutable_changed(self, want: Obj, hpc: Obj) -> bool:
        return hpc.get("value") != want["value"] or hpc.get("preemptionPolicy") != want.get("preemptionPolicy")
