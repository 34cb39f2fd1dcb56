"""A virtual cluster's ``metrics.k8s.io`` numbers, read from the host (vcluster's metrics
proxy, served natively by the virtual API server through ``apiserver.metricsapi``).

Pods: the host's PodMetrics of the translated host pods (``NAME-x-NS-x-VC`` in the host
namespace), presented under the virtual names; the usage annotations the simulation reads
(``vkube.io/cpu-usage``, ``vkube.io/memory-usage``) go down with the pod, so on the embedded
host the tenant's annotation drives what the host reports. Nodes: with real nodes
(``sync.nodes.enabled``) the host's NodeMetrics; with fake nodes only the sum of this
cluster's own pods on each node, so a tenant never sees other tenants' usage.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

from vkube.api import errors
from vkube.api.meta import Obj
from vkube.api.quantity import parse_quantity
from vkube.client.resources import PODS
from vkube.syncer.base import SyncContext
from vkube.syncer.podrewrite import host_pod_name

__all__ = ["HostUsage"]

_BASE = "/apis/metrics.k8s.io/v1beta1"


class HostUsage:
    """A ``metricsapi.UsageSource`` backed by the host's ``metrics.k8s.io``."""

    def __init__(self, ctx: SyncContext) -> None:
        self.ctx = ctx

    async def _host_pod_metrics(self) -> dict[str, list[dict[str, Any]]]:
        try:
            doc = await self.ctx.host.request("GET", f"{_BASE}/namespaces/{self.ctx.host_namespace}/pods")
        except errors.StatusError as exc:
            raise errors.ServiceUnavailable(f"the host's metrics are not available: {exc.message}") from None
        return {(i.get("metadata") or {}).get("name", ""): i.get("containers") or [] for i in doc.get("items") or ()}

    async def pods(self, pods: list[Obj]) -> dict[tuple[str, str], list[dict[str, Any]]]:
        if not pods:
            return {}
        host = await self._host_pod_metrics()
        out = {}
        for pod in pods:
            meta = pod.get("metadata") or {}
            ns, name = meta.get("namespace", ""), meta.get("name", "")
            containers = host.get(host_pod_name(self.ctx.tr, name, ns))
            if containers is not None:
                out[(ns, name)] = containers
        return out

    async def nodes(self, nodes: list[Obj], ctx: Any = None) -> dict[str, dict[str, str]]:
        names = {(n.get("metadata") or {}).get("name", "") for n in nodes}
        if self.ctx.values.sync.nodes.enabled:
            try:
                doc = await self.ctx.host.request("GET", f"{_BASE}/nodes")
            except errors.StatusError as exc:
                raise errors.ServiceUnavailable(f"the host's metrics are not available: {exc.message}") from None
            return {(i.get("metadata") or {}).get("name", ""): i.get("usage") or {}
                    for i in doc.get("items") or () if (i.get("metadata") or {}).get("name") in names}
        virtual_pods = self.ctx.informers.virtual(PODS).list()
        usage = await self.pods(virtual_pods)
        totals = {name: [Fraction(0), Fraction(0)] for name in names}
        for pod in virtual_pods:
            meta = pod.get("metadata") or {}
            node = (pod.get("spec") or {}).get("nodeName")
            containers = usage.get((meta.get("namespace", ""), meta.get("name", "")))
            if node not in totals or containers is None:
                continue
            for c in containers:
                for i, resource in enumerate(("cpu", "memory")):
                    value = (c.get("usage") or {}).get(resource)
                    if value is not None:
                        totals[node][i] += parse_quantity(value).value
        return {name: {"cpu": f"{int(cpu * 10**9)}n", "memory": f"{int(mem) // 1024}Ki"}
                for name, (cpu, mem) in totals.items()}
