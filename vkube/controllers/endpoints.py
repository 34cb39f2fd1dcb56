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
from vkube.controllers.podbatch import SyncThrottle
from vkube.controllers.runtime import Controller, Obj, obj_key
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


def _endpoint_view(pod: Obj | None) -> tuple[Any, ...] | None:
    """What of a pod an endpoint shows (None: the pod backs no endpoint): pod updates that
    leave this alone (container statuses, other conditions) need no sync."""
    if pod is None:
        return None
    st, spec, meta = pod.get("status") or {}, pod.get("spec") or {}, pod["metadata"]
    if not st.get("podIP") or st.get("phase") in ("Succeeded", "Failed"):
        return None
    return (st["podIP"], pod_ready(pod), bool(meta.get("deletionTimestamp")),
            spec.get("nodeName"), spec.get("hostname"), spec.get("subdomain"), meta.get("uid"))


def _selector(svc: Obj) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(((svc.get("spec") or {}).get("selector") or {}).items()))


class _ServicePods(Controller):
    """Shared wiring: services keyed by themselves; a pod change enqueues the services that
    select the pod before or after it, only if what an endpoint shows changed, batched by
    ``pod_batch_seconds`` (see vkube.controllers.podbatch). Each service's member pods are
    kept as an index, so a sync reads its own pods, not every pod of the namespace."""

    #: a service synced less than this long ago waits the rest of it for pod changes
    pod_batch_seconds = 0.5

    def setup(self) -> None:
        self.services = self.mgr.informer(SERVICES)
        self.pods = self.mgr.informer(PODS)
        self.services.add_handler(self._on_service)
        self.pods.add_handler(self._on_pod)
        self.throttle = SyncThrottle(self.queue, self.mgr.clock)
        # service key -> (its selector when built, keys of the pods it selects)
        self._members: dict[str, tuple[tuple[tuple[str, str], ...], set[str]]] = {}
        # the fields of our writes whose echo has not come, per service key: it needs no sync
        self._sent: dict[str, list[Obj]] = {}
        # service keys whose last write conflicted: our cache was behind the API
        self._stale: set[str] = set()

    def _on_service(self, typ: str, obj: Obj, old: Obj | None) -> None:
        key = obj_key(obj)
        if typ == "DELETED":
            self._members.pop(key, None)
            self._sent.pop(key, None)
            self._stale.discard(key)
            self.throttle.forget(key)
        self.queue.add(key)

    def _on_pod(self, typ: str, obj: Obj, old: Obj | None) -> None:
        ns, pkey = obj["metadata"]["namespace"], obj_key(obj)
        now_view = None if typ == "DELETED" else _endpoint_view(obj)
        old_view = _endpoint_view(old) if typ != "ADDED" else None
        if typ == "DELETED":
            old_view, old = _endpoint_view(obj), obj
        for svc in self.services.list(ns):
            skey = obj_key(svc)
            now_sel = typ != "DELETED" and _selects(svc, obj)
            was_sel = old is not None and _selects(svc, old)
            built = self._members.get(skey)
            if built is not None:
                (built[1].add if now_sel else built[1].discard)(pkey)
            shown_now = now_view if now_sel else None
            shown_before = old_view if was_sel else None
            if shown_now != shown_before:
                self.throttle.add(skey, self.pod_batch_seconds)

    def _on_written(self, skey: str, obj: Obj) -> bool:
        """Is ``obj`` (an event of ours) the echo of our own write? Then it needs no sync.
        Matched by content, so it holds whether the echo comes before the write returns.
        After a write of ``skey`` conflicted, no event is an echo: the conflict meant our cache
        was behind, and this event is it catching up, so the sync runs again now rather than
        after the work queue's back-off (which grows with every conflict while the watch
        lags, to minutes in a large rollout on a loaded machine, and left the last pods'
        endpoints unwritten that long)."""
        if skey in self._stale:
            self._stale.discard(skey)
            return False
        sent = self._sent.get(skey) or []
        for i, body in enumerate(sent):
            if all(obj.get(f) == v for f, v in body.items()):
                del sent[i]
                return True
        return False

    async def write(self, skey: str, res: Any, obj: Obj, body: Obj) -> None:
        """Update ``obj`` (holding ``body``) for service ``skey``. A write that fails has no
        echo to wait for; a conflict also marks the key stale (see ``_on_written``) and is
        raised for the work queue's retry."""
        self.sending(skey, body)
        try:
            await self.client.update(res, obj)
        except BaseException as e:
            sent = self._sent.get(skey) or []
            if body in sent:
                sent.remove(body)
            if isinstance(e, errors.Conflict):
                self._stale.add(skey)
            raise

    def sending(self, skey: str, body: Obj) -> None:
        """Remember the fields we are about to write for ``skey`` (see ``_on_written``)."""
        sent = self._sent.setdefault(skey, [])
        sent.append(body)
        del sent[:-16]  # echoes lost to a relist or a failed write: bounded

    def member_pods(self, svc: Obj) -> list[Obj]:
        """The pods ``svc`` selects, from the index (built on first use, rebuilt when the
        selector changed)."""
        skey, sel = obj_key(svc), _selector(svc)
        ns = svc["metadata"]["namespace"]
        built = self._members.get(skey)
        if built is None or built[0] != sel:
            built = self._members[skey] = (sel, {
                obj_key(p) for p in self.pods.list(ns) if _selects(svc, p)})
        out = []
        for pkey in sorted(built[1]):
            pod = self.pods.get(pkey.partition("/")[2], ns)
            if pod is not None and _selects(svc, pod):
                out.append(pod)
        return out

    def candidate_pods(self, svc: Obj) -> list[Obj]:
        return [p for p in self.member_pods(svc) if (p.get("status") or {}).get("podIP")
                and (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")]


class EndpointsController(_ServicePods):
    name = "endpoints-controller"

    def setup(self) -> None:
        super().setup()
        self.endpoints = self.mgr.informer(ENDPOINTS)
        self.endpoints.add_handler(self._on_endpoints)

    def _on_endpoints(self, typ: str, obj: Obj, old: Obj | None) -> None:
        key = obj_key(obj)
        if typ == "DELETED":
            self.queue.add(key)  # someone removed it: put it back now
        elif not self._on_written(key, obj):
            self.throttle.add(key, self.pod_batch_seconds)

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
        self.throttle.synced(key)
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
            self.sending(key, {"subsets": subsets})
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
        # the old subsets are replaced, not copied (a 1,000-pod Service's are ~200 KB)
        new = {**cur, "metadata": copy.deepcopy(cur["metadata"]), "subsets": subsets}
        new["metadata"]["labels"] = labels
        await self.write(key, ENDPOINTS, new, {"subsets": subsets})
        return None


def _slice_ports(sl: Obj) -> PortKey:
    return tuple(sorted((p.get("name", ""), int(p.get("port", 0)), p.get("protocol", "TCP"))
                        for p in sl.get("ports") or []))


def _ep_id(ep: Obj) -> str:
    return (ep.get("targetRef") or {}).get("name") or ep["addresses"][0]


def _ep_sort(ep: Obj) -> str:
    return ep["addresses"][0]


def place(existing: list[Obj], desired: dict[PortKey, dict[str, Obj]],
          limit: int = MAX_PER_SLICE) -> tuple[list[tuple[Obj | None, PortKey, list[Obj]]],
                                               list[Obj]]:
    """Upstream's slice reconciliation, simplified: an endpoint stays in the slice that holds
    it (updated in place), new endpoints fill slices with room (ones already changing first),
    then new slices of at most ``limit``; a slice left empty goes (or is reused for a new
    one, so the placeholder turns into the first real slice). So a pod change rewrites
    one slice, not every slice after it. Returns (slice or None to create, ports, endpoints)
    per slice to keep, and the slices to delete."""
    placed: set[tuple[PortKey, str]] = set()
    plan: list[tuple[Obj | None, PortKey, list[Obj]]] = []
    for sl in existing:
        pk = _slice_ports(sl)
        group = desired.get(pk)
        keep = []
        for ep in sl.get("endpoints") or []:
            eid = _ep_id(ep)
            if group is not None and eid in group and (pk, eid) not in placed:
                placed.add((pk, eid))
                keep.append(group[eid])
        plan.append((sl, pk, keep))
    for pk, group in sorted(desired.items()):
        fresh = sorted((ep for eid, ep in group.items() if (pk, eid) not in placed), key=_ep_sort)
        if not fresh:
            continue
        changed = {id(sl) for sl, k, eps in plan
                   if sl is not None and k == pk and len(eps) != len(sl.get("endpoints") or [])}
        order = sorted((i for i, (sl, k, eps) in enumerate(plan) if k == pk and len(eps) < limit),
                       key=lambda i: (id(plan[i][0]) not in changed, i))
        for i in order:
            sl, k, eps = plan[i]
            room = limit - len(eps)
            eps.extend(fresh[:room])
            fresh = fresh[room:]
            if not fresh:
                break
        for j in range(0, len(fresh), limit):
            plan.append((None, pk, fresh[j:j + limit]))
    drop = [sl for sl, _, eps in plan if not eps and sl is not None]
    kept: list[tuple[Obj | None, PortKey, list[Obj]]] = []
    for sl, pk, eps in plan:
        if eps:
            if sl is None and drop:  # as upstream: a slice to delete becomes one to create
                sl = drop.pop(0)
            kept.append((sl, pk, eps))
    if not kept:  # Kubernetes keeps one (empty, portless) slice per service
        if drop:
            kept, drop = [(drop[0], tuple(), [])], drop[1:]
        else:
            kept = [(None, tuple(), [])]
    return [(sl, pk, sorted(eps, key=_ep_sort)) for sl, pk, eps in kept], drop


class EndpointSliceController(_ServicePods):
    name = "endpointslice-controller"

    def setup(self) -> None:
        super().setup()
        self.slices = self.mgr.informer(ENDPOINTSLICES,
                                        label_selector=f"{MANAGED_BY}={MANAGER}")
        self.slices.add_index("service", lambda s: [self._service_of(s)])
        self.slices.add_handler(self._on_slice)

        # slices we created that the cache has not shown yet, with a deadline (loop time)
        self._expected: dict[str, dict[str, float]] = {}

    @staticmethod
    def _service_of(sl: Obj) -> str:
        return f"{sl['metadata']['namespace']}/" \
               f"{(sl['metadata'].get('labels') or {}).get(SERVICE_NAME, '')}"

    def _on_slice(self, typ: str, obj: Obj, old: Obj | None) -> None:
        key = self._service_of(obj)
        if typ == "DELETED":
            self.queue.add(key)
        elif not self._on_written(key, obj):
            self.throttle.add(key, self.pod_batch_seconds)

    def desired_endpoints(self, svc: Obj) -> dict[PortKey, dict[str, Obj]]:
        """The endpoints of ``svc`` per port set, keyed by pod name."""
        publish = bool((svc.get("spec") or {}).get("publishNotReadyAddresses"))
        groups: dict[PortKey, dict[str, Obj]] = {}
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
            groups.setdefault(key, {})[_ep_id(ep)] = ep
        return groups

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
        self.throttle.synced(key)
        if svc is None or not (svc.get("spec") or {}).get("selector"):
            return None  # the garbage collector removes slices owned by a deleted service
        labels = {**(svc["metadata"].get("labels") or {}), SERVICE_NAME: name,
                  MANAGED_BY: MANAGER}
        if (svc.get("spec") or {}).get("clusterIP") == "None":
            labels["service.kubernetes.io/headless"] = ""
        owner = {"apiVersion": "v1", "kind": "Service", "name": name,
                 "uid": svc["metadata"].get("uid", ""), "controller": True,
                 "blockOwnerDeletion": True}
        keep, drop = place(existing, self.desired_endpoints(svc))
        for cur, ports, eps in keep:
            body: Obj = {"addressType": "IPv4", "endpoints": eps, "ports": _port_objs(ports)}
            if cur is not None:
                if all(cur.get(k) == v for k, v in body.items()) and (
                        cur["metadata"].get("labels") or {}) == labels:
                    continue
                new = {**cur, "metadata": copy.deepcopy(cur["metadata"]), **body}
                new["metadata"]["labels"] = labels
                new["metadata"]["ownerReferences"] = [owner]
                await self.write(key, ENDPOINTSLICES, new, body)
            else:
                self.sending(key, body)
                made = await self.client.create(ENDPOINTSLICES, {
                    "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                    "metadata": {"generateName": f"{name}-", "namespace": ns,
                                 "labels": labels, "ownerReferences": [owner]}, **body})
                self._expected.setdefault(key, {})[made["metadata"]["name"]] = (
                    asyncio.get_running_loop().time() + 10)
        for extra in drop:
            try:
                await self.client.delete(ENDPOINTSLICES, extra["metadata"]["name"], namespace=ns)
            except errors.NotFound:
                pass
        return None


__all__: list[Any] = ["EndpointsController", "EndpointSliceController"]
