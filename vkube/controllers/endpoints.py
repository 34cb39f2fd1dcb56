"""Endpoints and EndpointSlices for Services with a selector: which pods back a Service, on
which ports (named targetPorts resolved per pod), ready or not. Services without a selector
are left alone: their endpoints belong to the user."""

from __future__ import annotations

import asyncio
import copy
import logging
from typing import Any

from vkube.api import errors
from vkube.client.resources import ENDPOINTS, ENDPOINTSLICES, PODS, SERVICES
from vkube.controllers.runtime import Controller, Obj
from vkube.controllers.vanished import quiet_when_vanished

log = logging.getLogger(__name__)

MANAGED_BY = "endpointslice.kubernetes.io/managed-by"
MANAGER = "endpointslice-controller.k8s.io"
SERVICE_NAME = "kubernetes.io/service-name"
MAX_PER_SLICE = 100
PortKey = tuple[tuple[str, int, str], ...]


def pod_ready(pod: Obj) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or [])


def _selects(svc: Obj, pod: Obj) -> bool:
    sel = (svc.get("spec") or {}).get("selector") or {}
    labels = pod["metadata"].get("labels") or {}
    return bool(sel) and all(labels.get(k) == v for k, v in sel.items())


def resolve_port(svc_port: Obj, pod: Obj) -> int | None:
    """The pod port a Service port targets: a number, or a container port's name."""
    target = svc_port.get("targetPort", svc_port.get("port"))
    if isinstance(target, int):
        return target
    if isinstance(target, str) and target.isdigit():
        return int(target)
    proto = svc_port.get("protocol", "TCP")
    for c in (pod.get("spec") or {}).get("containers") or []:
        for p in c.get("ports") or []:
            if p.get("name") == target and p.get("protocol", "TCP") == proto:
                return int(p["containerPort"])
    return None


def pod_ports(svc: Obj, pod: Obj) -> PortKey | None:
    ports = []
    for sp in (svc.get("spec") or {}).get("ports") or []:
        n = resolve_port(sp, pod)
        if n is not None:
            ports.append((sp.get("name", ""), n, sp.get("protocol", "TCP")))
    if not ports and (svc.get("spec") or {}).get("ports"):
        return None  # no port resolves on this pod
    return tuple(sorted(ports))


def _target_ref(pod: Obj) -> Obj:
    m = pod["metadata"]
    return {"kind": "Pod", "namespace": m["namespace"], "name": m["name"], "uid": m.get("uid", "")}


def _port_objs(key: PortKey) -> list[Obj]:
    return [{"name": n, "port": p, "protocol": proto} if n else {"port": p, "protocol": proto}
            for n, p, proto in key]


class _ServicePods(Controller):
    """Shared wiring: services keyed by themselves; pod changes enqueue the services that
    select the pod before or after the change."""

    def setup(self) -> None:
        self.services = self.mgr.informer(SERVICES)
        self.pods = self.mgr.informer(PODS)
        self.services.add_handler(self.handler)
        self.pods.add_handler(self._on_pod)

    def _on_pod(self, typ: str, obj: Obj, old: Obj | None) -> None:
        for svc in self.services.list(obj["metadata"]["namespace"]):
            if _selects(svc, obj) or (old is not None and _selects(svc, old)):
                self.enqueue(svc)

    def candidate_pods(self, svc: Obj) -> list[Obj]:
        ns = svc["metadata"]["namespace"]
        return [p for p in self.pods.list(ns) if _selects(svc, p)
                and (p.get("status") or {}).get("podIP")
                and (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")]


class EndpointsController(_ServicePods):
    name = "endpoints-controller"

    def setup(self) -> None:
        super().setup()
        self.endpoints = self.mgr.informer(ENDPOINTS)
        self.endpoints.add_handler(self.handler)

    def desired_subsets(self, svc: Obj) -> list[Obj]:
        publish = bool((svc.get("spec") or {}).get("publishNotReadyAddresses"))
        headless = (svc.get("spec") or {}).get("clusterIP") == "None"
        groups: dict[PortKey, Obj] = {}
        for pod in self.candidate_pods(svc):
            if pod["metadata"].get("deletionTimestamp") and not publish:
                continue
            key = pod_ports(svc, pod)
            if key is None or (not key and not headless):
                continue
            addr: Obj = {"ip": pod["status"]["podIP"], "targetRef": _target_ref(pod)}
            if (pod.get("spec") or {}).get("nodeName"):
                addr["nodeName"] = pod["spec"]["nodeName"]
            spec = pod.get("spec") or {}
            if spec.get("hostname") and spec.get("subdomain") == svc["metadata"]["name"]:
                addr["hostname"] = spec["hostname"]
            sub = groups.setdefault(key, {"addresses": [], "notReadyAddresses": []})
            sub["addresses" if publish or pod_ready(pod) else "notReadyAddresses"].append(addr)
        out = []
        for key, sub in sorted(groups.items()):
            s: Obj = {}
            for f in ("addresses", "notReadyAddresses"):
                if sub[f]:
                    s[f] = sorted(sub[f], key=lambda a: a["ip"])
            if key:
                s["ports"] = _port_objs(key)
            out.append(s)
        return out

    @quiet_when_vanished("services")
    async def reconcile(self, key: str) -> float | None:
        ns, _, name = key.partition("/")
        svc = self.services.get(name, ns)
        if svc is None:
            if self.endpoints.get(name, ns) is not None:
                try:
                    await self.client.delete(ENDPOINTS, name, namespace=ns)
                except errors.NotFound:
                    pass
            return None
        if not (svc.get("spec") or {}).get("selector"):
            return None
        labels = dict(svc["metadata"].get("labels") or {})
        if (svc.get("spec") or {}).get("clusterIP") == "None":
            labels["service.kubernetes.io/headless"] = ""
        subsets = self.desired_subsets(svc)
        cur = self.endpoints.get(name, ns)
        if cur is None:
            try:
                await self.client.create(ENDPOINTS, {
                    "apiVersion": "v1", "kind": "Endpoints",
                    "metadata": {"name": name, "namespace": ns, "labels": labels},
                    "subsets": subsets})
            except errors.AlreadyExists:
                pass  # the informer brings it; we will compare then
            return None
        if (cur.get("subsets") or []) == subsets and (cur["metadata"].get("labels") or {}) == labels:
            return None
        new = copy.deepcopy(cur)
        new["subsets"] = subsets
        new["metadata"]["labels"] = labels
        await self.client.update(ENDPOINTS, new)
        return None


class EndpointSliceController(_ServicePods):
    name = "endpointslice-controller"

    def setup(self) -> None:
        super().setup()
        self.slices = self.mgr.informer(ENDPOINTSLICES,
                                        label_selector=f"{MANAGED_BY}={MANAGER}")
        self.slices.add_index("service", lambda s: [
            f"{s['metadata']['namespace']}/{(s['metadata'].get('labels') or {}).get(SERVICE_NAME, '')}"])
        self.slices.add_handler(lambda typ, obj, old: self.queue.add(
            f"{obj['metadata']['namespace']}/"
            f"{(obj['metadata'].get('labels') or {}).get(SERVICE_NAME, '')}"))

        # slices we created that the cache has not shown yet, with a deadline (loop time)
        self._expected: dict[str, dict[str, float]] = {}

    def desired_slices(self, svc: Obj) -> list[tuple[PortKey, list[Obj]]]:
        publish = bool((svc.get("spec") or {}).get("publishNotReadyAddresses"))
        groups: dict[PortKey, list[Obj]] = {}
        for pod in self.candidate_pods(svc):
            key = pod_ports(svc, pod)
            if key is None:
                continue
            terminating = bool(pod["metadata"].get("deletionTimestamp"))
            ready = pod_ready(pod)
            ep: Obj = {"addresses": [pod["status"]["podIP"]],
                       "conditions": {"ready": publish or (ready and not terminating),
                                      "serving": publish or ready,
                                      "terminating": terminating},
                       "targetRef": _target_ref(pod)}
            if (pod.get("spec") or {}).get("nodeName"):
                ep["nodeName"] = pod["spec"]["nodeName"]
            spec = pod.get("spec") or {}
            if spec.get("hostname") and spec.get("subdomain") == svc["metadata"]["name"]:
                ep["hostname"] = spec["hostname"]
            groups.setdefault(key, []).append(ep)
        out = []
        for key, eps in sorted(groups.items()):
            eps.sort(key=lambda e: e["addresses"][0])
            for i in range(0, len(eps), MAX_PER_SLICE):
                out.append((key, eps[i:i + MAX_PER_SLICE]))
        if not out:
            out.append((tuple(), []))  # Kubernetes keeps one (empty) slice per service
        return out

    @quiet_when_vanished("services")
    async def reconcile(self, key: str) -> float | None:
        ns, _, name = key.partition("/")
        svc = self.services.get(name, ns)
        existing = sorted(self.slices.by_index("service", key),
                          key=lambda s: s["metadata"]["name"])
        now = asyncio.get_running_loop().time()
        seen = {s["metadata"]["name"] for s in existing}
        pending = {n: t for n, t in self._expected.get(key, {}).items() if n not in seen and t > now}
        if pending:  # our own create is not in the cache yet: acting now would duplicate it
            self._expected[key] = pending
            return 0.05
        self._expected.pop(key, None)
        if svc is None or not (svc.get("spec") or {}).get("selector"):
            return None  # the garbage collector removes slices owned by a deleted service
        labels = {**(svc["metadata"].get("labels") or {}), SERVICE_NAME: name,
                  MANAGED_BY: MANAGER}
        if (svc.get("spec") or {}).get("clusterIP") == "None":
            labels["service.kubernetes.io/headless"] = ""
        owner = {"apiVersion": "v1", "kind": "Service", "name": name,
                 "uid": svc["metadata"].get("uid", ""), "controller": True,
                 "blockOwnerDeletion": True}
        desired = self.desired_slices(svc)
        for i, (ports, eps) in enumerate(desired):
            body: Obj = {"addressType": "IPv4", "endpoints": eps, "ports": _port_objs(ports)}
            if i < len(existing):
                cur = existing[i]
                if all(cur.get(k) == v for k, v in body.items()) and (
                        cur["metadata"].get("labels") or {}) == labels:
                    continue
                new = copy.deepcopy(cur)
                new.update(body)
                new["metadata"]["labels"] = labels
                new["metadata"]["ownerReferences"] = [owner]
                await self.client.update(ENDPOINTSLICES, new)
            else:
                made = await self.client.create(ENDPOINTSLICES, {
                    "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                    "metadata": {"generateName": f"{name}-", "namespace": ns,
                                 "labels": labels, "ownerReferences": [owner]}, **body})
                self._expected.setdefault(key, {})[made["metadata"]["name"]] = (
                    asyncio.get_running_loop().time() + 10)
        for extra in existing[len(desired):]:
            try:
                await self.client.delete(ENDPOINTSLICES, extra["metadata"]["name"], namespace=ns)
            except errors.NotFound:
                pass
        return None


__all__: list[Any] = ["EndpointsController", "EndpointSliceController"]
