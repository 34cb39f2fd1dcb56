"""``isolation.enabled`` (``vkube create --isolate``): guard rails in the host namespace.

- a ResourceQuota and a LimitRange (defaults below, the ones virtual-cluster users know);
- a NetworkPolicy limiting *egress* of the tenant's pods to its own namespace, cluster DNS
  and the public internet (no private ranges), so they cannot reach the host's or other
  tenants' pods; ingress stays open, so the host can still reach them;
- Pod Security Standard labels on the host namespace.
"""

from __future__ import annotations

import copy

from vkube.api import errors
from vkube.api.meta import Obj
from vkube.client.resources import LIMITRANGES, NAMESPACES, NETWORKPOLICIES, RESOURCEQUOTAS
from vkube.client.client import Resource
from vkube.syncer.base import KindSyncer, SyncContext

QUOTA = {"requests.cpu": "10", "requests.memory": "20Gi", "requests.storage": "100Gi",
         "requests.ephemeral-storage": "60Gi", "limits.cpu": "20", "limits.memory": "40Gi",
         "limits.ephemeral-storage": "160Gi", "services.nodeports": "0",
         "services.loadbalancers": "1", "count/endpoints": "40", "count/pods": "20",
         "count/services": "20", "count/secrets": "100", "count/configmaps": "100",
         "count/persistentvolumeclaims": "20"}
LIMITS = {"type": "Container",
          "default": {"cpu": "1", "memory": "512Mi", "ephemeral-storage": "8Gi"},
          "defaultRequest": {"cpu": "100m", "memory": "128Mi", "ephemeral-storage": "3Gi"}}
PRIVATE = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "169.254.0.0/16"]


def isolation_objects(ctx: SyncContext) -> list[tuple[Resource, Obj]]:
    iso = ctx.values.isolation
    labels = ctx.tr.owner_labels(None)
    name = f"vkube-isolation-{ctx.name}"[:63].rstrip("-.")
    out: list[tuple[Resource, Obj]] = []
    if iso.resource_quota.enabled:
        out.append((RESOURCEQUOTAS, {"apiVersion": "v1", "kind": "ResourceQuota",
                                     "metadata": {"name": name, "labels": labels},
                                     "spec": {"hard": dict(QUOTA)}}))
    if iso.limit_range.enabled:
        out.append((LIMITRANGES, {"apiVersion": "v1", "kind": "LimitRange",
                                  "metadata": {"name": name, "labels": labels},
                                  "spec": {"limits": [copy.deepcopy(LIMITS)]}}))
    if iso.network_policy.enabled:
        out.append((NETWORKPOLICIES, {
            "apiVersion": NETWORKPOLICIES.api_version, "kind": "NetworkPolicy",
            "metadata": {"name": name, "labels": labels},
            "spec": {
                "podSelector": {"matchLabels": dict(labels)},
                "policyTypes": ["Egress"],
                "egress": [
                    {"to": [{"podSelector": {}}]},  # its own host namespace (incl. its API)
                    {"to": [{"namespaceSelector": {"matchLabels": {
                        "kubernetes.io/metadata.name": "kube-system"}}}],
                     "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]},
                    {"to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": list(PRIVATE)}}]},
                ]}}))
    return out


class IsolationSyncer(KindSyncer):
    """One key, ``isolation``: level-based like the rest (drift is repaired on every event
    of the objects it owns)."""

    kind = "isolation"
    workers = 1

    def setup(self) -> None:
        for res in (RESOURCEQUOTAS, LIMITRANGES, NETWORKPOLICIES):
            self.ctx.informers.host(res).add_handler(lambda t, o, old: self.enqueue("isolation"))

    def initial_keys(self) -> list[str]:
        return ["isolation"]

    async def reconcile(self, key: str) -> None:
        hns = self.ctx.host_namespace
        for res, want in isolation_objects(self.ctx):
            cur = self.ctx.informers.host(res).get(want["metadata"]["name"], hns)
            if cur is None:
                try:
                    await self.ctx.host.create(res, want, namespace=hns)
                except errors.AlreadyExists:
                    pass
            elif cur.get("spec") != want["spec"]:
                new = copy.deepcopy(cur)
                new["spec"] = want["spec"]
                await self.ctx.host.update(res, new)
        level = self.ctx.values.isolation.pod_security_standard
        try:
            await self.ctx.host.patch(NAMESPACES, hns, {"metadata": {"labels": {
                "pod-security.kubernetes.io/enforce": level,
                "pod-security.kubernetes.io/warn": level}}})
        except errors.Forbidden:
            pass  # not allowed to label the host namespace: the other guard rails still hold
