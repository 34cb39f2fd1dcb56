"""ServiceAccounts (only with ``sync.serviceaccounts.enabled``): copied for host-side tools
that look at them (image pull secrets, workload identity annotations), never with tokens."""

from __future__ import annotations


from vkube.api.meta import Obj
from vkube.client.resources import SERVICEACCOUNTS
from vkube.syncer.base import DownSyncer


class ServiceAccountSyncer(DownSyncer):
    kind = "serviceaccounts"
    vres = hres = SERVICEACCOUNTS
    fields = ("imagePullSecrets", "automountServiceAccountToken")

    def desired(self, vobj: Obj) -> Obj:
        ns = vobj["metadata"]["namespace"]
        return {"apiVersion": "v1", "kind": "ServiceAccount",
                "metadata": self.tr.host_metadata(vobj),
                "automountServiceAccountToken": False,
                "imagePullSecrets": [{"name": self.tr.host_name(s["name"], ns)}
                                     for s in vobj.get("imagePullSecrets") or [] if s.get("name")]}
