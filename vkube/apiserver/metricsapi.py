"""``metrics.k8s.io/v1beta1`` PodMetrics and NodeMetrics, served natively by the API server
(as vcluster's metrics proxy does), so ``kubectl top`` and the HPA controller work without
installing metrics-server. Read-only: get and list, with label and field selectors.

Where the numbers come from is a ``UsageSource`` on the context:
- ``LocalUsage`` (the default, used by the embedded host and standalone control planes) runs
  the simulated kubelets' usage model (``vkube.api.usage``) over the running pods in the store;
- a virtual cluster's composition root plugs in a source that asks the host's
  ``metrics.k8s.io`` for the translated host pods (``vkube.syncer.metrics``).

A user may still register an APIService with a service for ``v1beta1.metrics.k8s.io`` (a real
metrics-server): the aggregator then proxies to it instead.
"""

from __future__ import annotations

import logging
from fractions import Fraction
from typing import Any, Protocol

from aiohttp import web

from vkube.api import errors
from vkube.api.kinds import ResourceSpec
from vkube.api.meta import Obj, rfc3339
from vkube.api.usage import UsageError, container_usage, pod_usage
from vkube.apiserver import http
from vkube.apiserver.context import Context
from vkube.apiserver.request import RequestContext, internal_context

__all__ = ["GROUP", "LocalUsage", "UsageSource", "serve_metrics", "is_metrics"]

log = logging.getLogger(__name__)
GROUP = "metrics.k8s.io"
WINDOW = "15s"


class UsageSource(Protocol):
    async def pods(self, pods: list[Obj]) -> dict[tuple[str, str], list[dict[str, Any]]]:
        """``(namespace, name) -> containers`` (``[{name, usage: {cpu, memory}}]``) for the
        given pods that have metrics; a pod left out has none (not running, not scraped)."""

    async def nodes(self, nodes: list[Obj], ctx: Context) -> dict[str, dict[str, str]]:
        """``node name -> usage`` for the nodes that have metrics."""


def _running(pod: Obj) -> bool:
    return ((pod.get("status") or {}).get("phase") == "Running"
            and not (pod.get("metadata") or {}).get("deletionTimestamp"))


class LocalUsage:
    """The embedded host's simulated kubelets' usage model, evaluated on the pods' current
    annotations and requests when metrics are asked for."""

    async def pods(self, pods: list[Obj]) -> dict[tuple[str, str], list[dict[str, Any]]]:
        out = {}
        for pod in pods:
            if not _running(pod):
                continue
            meta = pod.get("metadata") or {}
            try:
                out[(meta.get("namespace", ""), meta.get("name", ""))] = pod_usage(pod)
            except UsageError as exc:  # a bad annotation: this pod is not measured
                log.debug("no metrics for %s/%s: %s", meta.get("namespace"), meta.get("name"), exc)
        return out

    async def nodes(self, nodes: list[Obj], ctx: Context) -> dict[str, dict[str, str]]:
        pods = await _all_pods(ctx)
        totals = {(n.get("metadata") or {}).get("name", ""): [Fraction(0), Fraction(0)] for n in nodes}
        for pod in pods:
            node = (pod.get("spec") or {}).get("nodeName")
            if node not in totals or not _running(pod):
                continue
            try:
                totals[node][0] += sum(container_usage(pod, "cpu").values(), Fraction(0))
                totals[node][1] += sum(container_usage(pod, "memory").values(), Fraction(0))
            except UsageError:
                continue
        return {name: {"cpu": f"{int(cpu * 10**9)}n", "memory": f"{int(mem) // 1024}Ki"}
                for name, (cpu, mem) in totals.items()}


async def _all_pods(ctx: Context, namespace: str | None = None, label_selector: Any = None) -> list[Obj]:
    pods = ctx.storage_for("", "Pod")
    assert pods is not None
    rc = internal_context("list", resource="pods", version="v1", namespace=namespace or "")
    return (await pods.list(rc, namespace, label_selector=label_selector)).items


def is_metrics(spec: ResourceSpec) -> bool:
    return spec.group == GROUP


def _meta(obj: Obj, now: str) -> dict[str, Any]:
    m = obj.get("metadata") or {}
    out: dict[str, Any] = {"name": m.get("name", "")}
    if m.get("namespace"):
        out["namespace"] = m["namespace"]
    out["creationTimestamp"] = now
    if m.get("labels"):
        out["labels"] = m["labels"]
    return out


async def serve_metrics(request: web.Request, spec: ResourceSpec, rc: RequestContext, ctx: Context,
                        source: UsageSource, selectors: Any) -> web.Response:
    """GET of one PodMetrics/NodeMetrics or of a list (``labelSelector``, ``fieldSelector`` on
    ``metadata.name``/``metadata.namespace``)."""
    info = rc.info
    if info.verb not in ("get", "list"):
        raise errors.method_not_allowed()
    ls, fs = request.query.get("labelSelector", ""), request.query.get("fieldSelector", "")
    label = selectors.parse_label_selector(ls) if ls else None
    field = selectors.parse_field_selector(fs) if fs else None
    if field is not None:
        for key in field.fields:
            if key not in ("metadata.name", "metadata.namespace"):
                raise errors.BadRequest(f"field label not supported: {key}")
    now = rfc3339(ctx.clock())
    if spec.kind == "PodMetrics":
        namespace = info.namespace or None
        pods = await _all_pods(ctx, namespace, label)
        if info.name:
            pods = [p for p in pods if (p.get("metadata") or {}).get("name") == info.name]
            if not pods:  # metrics-server returns the pod lister's error
                raise errors.not_found("pods", info.name)
        usage = await source.pods(pods)
        items = []
        for pod in pods:
            m = pod.get("metadata") or {}
            containers = usage.get((m.get("namespace", ""), m.get("name", "")))
            if containers is None:
                continue
            items.append({"kind": spec.kind, "apiVersion": spec.api_version, "metadata": _meta(pod, now),
                          "timestamp": now, "window": WINDOW, "containers": containers})
    else:
        nodes_storage = ctx.storage_for("", "Node")
        assert nodes_storage is not None
        nodes = (await nodes_storage.list(internal_context("list", resource="nodes", version="v1"), None,
                                          label_selector=label)).items
        if info.name:
            nodes = [n for n in nodes if (n.get("metadata") or {}).get("name") == info.name]
            if not nodes:
                raise errors.not_found("nodes", info.name)
        usage_by_node = await source.nodes(nodes, ctx)
        items = [{"kind": spec.kind, "apiVersion": spec.api_version, "metadata": _meta(n, now),
                  "timestamp": now, "window": WINDOW,
                  "usage": usage_by_node[n["metadata"]["name"]]}
                 for n in nodes if (n.get("metadata") or {}).get("name") in usage_by_node]
    if field is not None:
        items = [i for i in items if field.matches({"metadata.name": i["metadata"]["name"],
                                                   "metadata.namespace": i["metadata"].get("namespace", "")})]
    if info.name:
        if not items:  # metrics-server's wording: the qualified kind, "namespace/name"
            qualified = f"{info.namespace}/{info.name}" if info.namespace else info.name
            raise errors.not_found(spec.kind.lower(), qualified, group=GROUP)
        return http.json_response(items[0])
    return http.json_response({"kind": spec.list_kind, "apiVersion": spec.api_version, "metadata": {},
                               "items": items})
