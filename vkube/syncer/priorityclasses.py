"""PriorityClasses (only with ``sync.priorityclasses.enabled``): down as ``NAME-x-VC`` so the
pods that name them can be admitted on the host. A tenant never gets a host default class.

On the host a class's value ranks this tenant's pods against the host's and other tenants'
(scheduling order, the kubelet's eviction order, preemption): the owner decides how far with
``sync.priorityclasses.maxValue`` (a higher value is capped, with a Warning event), and host
copies never preempt (``preemptionPolicy: Never``) unless ``allowPreemption`` — else one
tenant's pods could evict another's to get scheduled.

The built-in ``system-cluster-critical`` and ``system-node-critical`` (values 2000000000 and
2000001000, above any cap) go down too, as ``vkube-NAME-DIGEST`` (a host reserves ``system-``
names): their pods then rank on the host as the tenant's highest class may, at ``maxValue``."""

from __future__ import annotations

import copy

from vkube.api.kinds_other import SYSTEM_PRIORITY_CLASSES
from vkube.api.meta import Obj
from vkube.client.resources import PRIORITYCLASSES
from vkube.syncer.base import ClusterScopedDownSyncer
from vkube.syncer.podrewrite import system_class_host_name
from vkube.syncer.values import MAX_USER_PRIORITY

REASON_CAPPED = "PriorityCapped"


class PriorityClassSyncer(ClusterScopedDownSyncer):
    kind = "priorityclasses"
    res = PRIORITYCLASSES

    def skip(self, key: str) -> bool:  # no other system- class can exist
        return key.startswith("system-") and key not in SYSTEM_PRIORITY_CLASSES

    def initial_keys(self) -> list[str]:
        return sorted({*super().initial_keys(), *SYSTEM_PRIORITY_CLASSES})

    def virtual_object(self, key: str) -> Obj | None:
        """The built-in classes are served whether or not they are stored (as admission
        resolves them)."""
        got = super().virtual_object(key)
        if got is None and key in SYSTEM_PRIORITY_CLASSES:
            return {"metadata": {"name": key}, "value": SYSTEM_PRIORITY_CLASSES[key],
                    "preemptionPolicy": "PreemptLowerPriority"}
        return got

    def host_name_of(self, key: str) -> str:
        if key in SYSTEM_PRIORITY_CLASSES:
            return system_class_host_name(self.tr.vc, key)
        return super().host_name_of(key)

    def desired(self, vpc: Obj) -> Obj:
        opts = self.ctx.values.sync.priorityclasses
        value = int(vpc.get("value") or 0)
        cap = min(opts.max_value, MAX_USER_PRIORITY)
        meta = self.tr.host_metadata(vpc)
        builtin = vpc["metadata"]["name"] in SYSTEM_PRIORITY_CLASSES
        if builtin:  # each of its pods has a SystemPriorityCapped event instead
            meta["name"] = system_class_host_name(self.tr.vc, vpc["metadata"]["name"])
        elif value > cap:
            self.ctx.recorder.event(vpc, "Warning", REASON_CAPPED, (
                f"value {value} is above sync.priorityclasses.maxValue ({cap}): the host copy "
                f"has {cap}, so on the host this class's pods rank no higher than that; the "
                "cluster's owner may raise sync.priorityclasses.maxValue"))
        policy = vpc.get("preemptionPolicy") if opts.allow_preemption else "Never"
        return {"apiVersion": PRIORITYCLASSES.api_version, "kind": "PriorityClass",
                "metadata": meta,
                "value": min(value, cap),
                "globalDefault": False,
                **({"description": copy.deepcopy(vpc["description"])} if "description" in vpc
                   else {}),
                **({"preemptionPolicy": policy} if policy else {})}

    def immutable_changed(self, want: Obj, hpc: Obj) -> bool:
        return hpc.get("value") != want["value"] or hpc.get("preemptionPolicy") != want.get("preemptionPolicy")
