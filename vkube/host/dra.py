"""The scheduler's DynamicResources plugin for the embedded host: a pod's ResourceClaims are
allocated from the devices the nodes' ResourceSlices publish, and the pod goes only where
every claim can be satisfied.

As kube-scheduler's plugin (``pkg/scheduler/framework/plugins/dynamicresources``) with its
structured-parameters allocator:

- PreFilter resolves each ``pod.spec.resourceClaims`` entry to a claim (by name, or through
  ``pod.status.resourceClaimStatuses`` for a template: ``pod "NS/NAME": ResourceClaim not
  created yet`` until the resourceclaim controller made it), and refuses missing or deleted
  claims and unknown device classes;
- Filter keeps nodes where already-allocated claims are available and where every request of
  the other claims finds unused devices matching its class's and its own CEL selectors (and
  ``matchAttribute`` constraints), skipping devices with NoSchedule/NoExecute taints (their
  own or a DeviceTaintRule's) the request does not tolerate: otherwise ``cannot allocate all
  claims``;
- PreBind writes each claim's ``status.allocation`` (results, node selector) and reserves it
  for the pod (``status.reservedFor``).

A request with ``adminAccess`` (allowed only in an admin namespace) gets matching devices
whether or not they are in use, and its results (marked ``adminAccess``) take none of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from vkube.api.meta import Obj
from vkube.client import Client
from vkube.client.resources import RESOURCECLAIMS
from vkube.controllers.informer import Informer
from vkube.host.predicates import NodeInfo, match_node_selector, untolerated_taint

__all__ = ["DeviceAllocator", "PodDevices", "R_CANNOT_ALLOCATE", "R_NOT_ON_NODE", "claim_name_for"]

R_CANNOT_ALLOCATE = "cannot allocate all claims"
R_NOT_ON_NODE = "resourceclaim not available on the node"
MAX_RESERVED = 256

DeviceId = tuple[str, str, str]  # driver, pool, device


def claim_name_for(pod: Obj, entry: Obj) -> tuple[str | None, str]:
    """``resourceclaim.Name``: the claim a pod's ``resourceClaims`` entry means, or None with
    why not (a template's claim not created yet)."""
    if entry.get("resourceClaimName"):
        return entry["resourceClaimName"], ""
    for st in ((pod.get("status") or {}).get("resourceClaimStatuses")) or ():
        if st.get("name") == entry.get("name"):
            return st.get("resourceClaimName"), ""  # None: the template produced no claim
    meta = pod["metadata"]
    return None, f'pod "{meta["namespace"]}/{meta["name"]}": ResourceClaim not created yet'


@dataclass
class PodDevices:
    """A pod's claims as PreFilter found them: already allocated ones and ones to allocate,
    and the devices in use when the cycle began (the Filter of every node reads the same)."""

    allocated: list[Obj] = field(default_factory=list)
    pending: list[Obj] = field(default_factory=list)
    in_use: set[DeviceId] | None = None


@dataclass(frozen=True)
class _Device:
    id: DeviceId
    node: str  # "" for devices every node reaches (allNodes slices)
    cel: dict[str, Any]
    taints: tuple[Obj, ...] = ()  # the device's own and those DeviceTaintRules give it
    version: str = ""  # its slice's resourceVersion


class DeviceAllocator:
    """Reads ResourceClaims, ResourceSlices and DeviceClasses from informers the host runs."""

    def __init__(self, client: Client, claims: Informer, slices: Informer, classes: Informer,
                 taint_rules: Informer | None = None) -> None:
        self.client = client
        self.claims, self.slices, self.classes = claims, slices, classes
        self.taint_rules = taint_rules
        if hasattr(slices, "add_index"):  # node name -> its slices (and "*" for allNodes ones)
            slices.add_index("node", lambda sl: [(sl.get("spec") or {}).get("nodeName") or "*"])
        self._programs: dict[str, Any] = {}
        #: selector results per (expression, device, slice version): devices change only with
        #: their slice, so each CEL program runs once per device, not once per scheduling cycle
        self._verdicts: dict[tuple[str, DeviceId, str], bool] = {}
        self._cel: dict[tuple[DeviceId, str], dict[str, Any]] = {}  # the ``device`` variables
        #: claim key -> (devices, resourceVersion written): devices being written, then kept
        #: until the claims informer shows that write (kube-scheduler's assume cache); without
        #: it a pod scheduled between the write and the watch event got the same devices
        self._assumed: dict[str, tuple[set[DeviceId], str]] = {}

    # -- PreFilter -------------------------------------------------------------------------
    def prefilter(self, pod: Obj) -> tuple[str | None, PodDevices | None]:
        entries = (pod.get("spec") or {}).get("resourceClaims") or []
        if not entries:
            return None, None
        ns = pod["metadata"]["namespace"]
        found = PodDevices()
        for entry in entries:
            name, why = claim_name_for(pod, entry)
            if why:
                return why, None
            if name is None:
                continue
            claim = self.claims.get(name, ns)
            if claim is None:
                return f'resourceclaim.resource.k8s.io "{name}" not found', None
            if claim["metadata"].get("deletionTimestamp"):
                return f'resourceclaim "{name}" is being deleted', None
            status = claim.get("status") or {}
            if status.get("allocation"):
                reserved = status.get("reservedFor") or []
                if len(reserved) >= MAX_RESERVED and not any(r.get("uid") == pod["metadata"].get("uid") for r in reserved):
                    return f'resourceclaim "{name}" is in use', None
                found.allocated.append(claim)
                continue
            for req in _requests(claim):
                cls = req.get("deviceClassName", "")
                if self.classes.get(cls) is None:
                    return f'request {req["_name"]}: device class {cls} does not exist', None
            found.pending.append(claim)
        if found.pending:
            found.in_use = self._in_use()
        return None, found

    # -- Filter ----------------------------------------------------------------------------
    def filter(self, devices: PodDevices, node: NodeInfo) -> str | None:
        for claim in devices.allocated:
            sel = ((claim.get("status") or {}).get("allocation") or {}).get("nodeSelector")
            if sel is not None and not match_node_selector(sel, node.node):
                return R_NOT_ON_NODE
        if devices.pending and self.allocate(devices, node.name) is None:
            return R_CANNOT_ALLOCATE
        return None

    def _in_use(self) -> set[DeviceId]:
        used: set[DeviceId] = set()
        for claim in self.claims.list():
            for r in ((((claim.get("status") or {}).get("allocation") or {}).get("devices") or {}).get("results")) or ():
                if r.get("adminAccess"):
                    continue  # admin access shares the device: it stays free for others
                used.add((r.get("driver", ""), r.get("pool", ""), r.get("device", "")))
        for key, (ids, written) in list(self._assumed.items()):
            if written:
                ns, _, name = key.partition("/")
                seen = self.claims.get(name, ns)
                if seen is None or _rv_at_least(seen, written):
                    del self._assumed[key]  # the informer has it (or the claim is gone)
                    continue
            used |= ids
        return used

    def _node_devices(self, node: str) -> list[_Device]:
        rules = self.taint_rules.list() if self.taint_rules is not None else []
        out = []
        if hasattr(self.slices, "by_index"):
            candidates = self.slices.by_index("node", node) + self.slices.by_index("node", "*")
        else:
            candidates = self.slices.list()
        for sl in candidates:
            spec = sl.get("spec") or {}
            if spec.get("nodeName") != node and not spec.get("allNodes"):
                continue
            version = str(sl["metadata"].get("resourceVersion") or (spec.get("pool") or {}).get("generation", ""))
            driver, pool = spec.get("driver", ""), (spec.get("pool") or {}).get("name", "")
            for dev in spec.get("devices") or ():
                ident = (driver, pool, dev.get("name", ""))
                taints = tuple(dev.get("taints") or ()) + tuple(
                    (r.get("spec") or {}).get("taint") or {} for r in rules if _rule_selects(r, ident))
                cel = self._cel.get((ident, version))
                if cel is None:
                    if len(self._cel) > 100_000:
                        self._cel.clear()
                    cel = self._cel[(ident, version)] = _cel_device(driver, dev)
                out.append(_Device(ident, spec.get("nodeName") or "", cel, taints, version))
        return sorted(out, key=lambda d: d.id)

    def allocate(self, devices: PodDevices, node: str) -> dict[str, list[dict[str, Any]]] | None:
        """Results per pending claim key for ``node``, or None when they do not all fit."""
        used = devices.in_use if devices.in_use is not None else self._in_use()
        on_node = self._node_devices(node)
        free = [d for d in on_node if d.id not in used]
        taken: set[DeviceId] = set()
        out: dict[str, list[dict[str, Any]]] = {}
        for claim in devices.pending:
            results: list[dict[str, Any]] = []
            chosen_by_request: dict[str, list[_Device]] = {}
            for req in _requests(claim):
                cls = self.classes.get(req.get("deviceClassName", "")) or {}
                selectors = [s for s in ((cls.get("spec") or {}).get("selectors") or ())] + list(req.get("selectors") or ())
                tolerations = list(req.get("tolerations") or ())
                admin = req.get("adminAccess") is True  # sees devices in use, takes none
                matching = [d for d in (on_node if admin else free)
                            if (admin or d.id not in taken) and self._matches(d, selectors)
                            and untolerated_taint(list(d.taints), tolerations, ("NoSchedule", "NoExecute")) is None]
                if req.get("allocationMode", "ExactCount") == "All":
                    picked = matching
                    if not picked:
                        return None
                else:
                    count = int(req.get("count", 1))
                    if len(matching) < count:
                        return None
                    picked = matching[:count]
                if not admin:
                    taken |= {d.id for d in picked}
                chosen_by_request[req["_name"]] = picked
                results += [{"request": req["_name"], "driver": d.id[0], "pool": d.id[1], "device": d.id[2],
                             **({"adminAccess": True} if admin else {})} for d in picked]
            if not _constraints_hold(claim, chosen_by_request):
                return None
            out[_key(claim)] = results
        return out

    def _matches(self, device: _Device, selectors: list[Obj]) -> bool:
        for sel in selectors:
            expr = ((sel or {}).get("cel") or {}).get("expression")
            if not expr:
                continue
            key = (expr, device.id, device.version)
            verdict = self._verdicts.get(key)
            if verdict is None:
                if len(self._verdicts) > 100_000:
                    self._verdicts.clear()  # bounded: stale slice versions fall out
                verdict = self._verdicts[key] = self._evaluate(expr, device.cel)
            if not verdict:
                return False
        return True

    def _evaluate(self, expr: str, device: dict[str, Any]) -> bool:
        import celpy

        prog = self._programs.get(expr)
        if prog is None:
            prog = False  # a selector that does not compile matches no device
            for runner in (celpy.CompiledRunner, celpy.InterpretedRunner):  # transpiled: ~4x faster
                env = celpy.Environment(runner_class=runner)
                try:
                    prog = env.program(env.compile(expr))
                    break
                except Exception:
                    continue
            self._programs[expr] = prog
        if prog is False:
            return False
        try:
            return bool(prog.evaluate({"device": celpy.json_to_cel(device)}))
        except Exception:  # a runtime error (missing attribute) is "does not match"
            return False

    # -- PreBind ---------------------------------------------------------------------------
    async def prebind(self, pod: Obj, node: str, devices: PodDevices) -> None:
        """Allocate the pending claims on ``node`` and reserve every claim for the pod."""
        devices.in_use = None  # allocate against what is in use now, not at PreFilter
        allocation = self.allocate(devices, node) if devices.pending else {}
        if allocation is None:
            raise RuntimeError(f"devices on node {node} were taken meanwhile")
        ref = {"resource": "pods", "name": pod["metadata"]["name"], "uid": pod["metadata"].get("uid", "")}
        node_selector = {"nodeSelectorTerms": [{"matchFields": [
            {"key": "metadata.name", "operator": "In", "values": [node]}]}]}
        try:
            for claim in devices.pending:
                key = _key(claim)
                results = allocation[key]
                ids = {(r["driver"], r["pool"], r["device"]) for r in results if not r.get("adminAccess")}
                self._assumed[key] = (ids, "")
                status = dict(claim.get("status") or {})
                status["allocation"] = {"devices": {"results": results}, "nodeSelector": node_selector}
                status["reservedFor"] = [ref]
                res = await self.client.update(RESOURCECLAIMS, {**claim, "status": status}, subresource="status")
                self._assumed[key] = (ids, str(res["metadata"].get("resourceVersion") or ""))
            for claim in devices.allocated:
                reserved = list((claim.get("status") or {}).get("reservedFor") or ())
                if any(r.get("uid") == ref["uid"] for r in reserved):
                    continue
                status = {**(claim.get("status") or {}), "reservedFor": reserved + [ref]}
                await self.client.update(RESOURCECLAIMS, {**claim, "status": status}, subresource="status")
        except BaseException:
            for claim in devices.pending:  # written ones stay assumed until the informer has them
                if self._assumed.get(_key(claim), (None, ""))[1] == "":
                    self._assumed.pop(_key(claim), None)
            raise


def _rv_at_least(obj: Obj, rv: str) -> bool:
    """Does the cached ``obj`` reflect the write that returned ``rv``? (Versions are the
    store's revisions; anything else counts as caught up, so nothing stays assumed forever.)"""
    have = str(obj["metadata"].get("resourceVersion") or "")
    return not (have.isdigit() and rv.isdigit()) or int(have) >= int(rv)


def _rule_selects(rule: Obj, ident: DeviceId) -> bool:
    """A DeviceTaintRule's ``deviceSelector`` (driver, pool, device; unset matches all)."""
    sel = (rule.get("spec") or {}).get("deviceSelector") or {}
    return all(not sel.get(k) or sel[k] == v for k, v in zip(("driver", "pool", "device"), ident))


def _key(claim: Obj) -> str:
    return f'{claim["metadata"]["namespace"]}/{claim["metadata"]["name"]}'


def _requests(claim: Obj) -> list[Obj]:
    """Each request's ``exactly`` (or first alternative) with its name as ``_name``."""
    out = []
    for req in (((claim.get("spec") or {}).get("devices") or {}).get("requests")) or ():
        body = req.get("exactly") or ((req.get("firstAvailable") or [None])[0]) or {}
        out.append({**body, "_name": req.get("name", "")})
    return out


def _cel_device(driver: str, dev: Obj) -> dict[str, Any]:
    """The ``device`` CEL variable: ``driver``, ``attributes``/``capacity`` by domain."""
    attrs: dict[str, dict[str, Any]] = {}
    for name, value in (dev.get("attributes") or {}).items():
        domain, _, short = name.rpartition("/")
        v = next(iter(value.values())) if isinstance(value, dict) and value else None
        attrs.setdefault(domain or driver, {})[short] = v
    caps: dict[str, dict[str, Any]] = {}
    for name, value in (dev.get("capacity") or {}).items():
        domain, _, short = name.rpartition("/")
        caps.setdefault(domain or driver, {})[short] = (value or {}).get("value")
    return {"driver": driver, "attributes": attrs, "capacity": caps}


def _constraints_hold(claim: Obj, chosen: dict[str, list[_Device]]) -> bool:
    """``matchAttribute`` constraints: the devices of the named requests agree on it."""
    for con in (((claim.get("spec") or {}).get("devices") or {}).get("constraints")) or ():
        attr = con.get("matchAttribute")
        if not attr:
            continue
        domain, _, short = attr.rpartition("/")
        names = con.get("requests") or list(chosen)
        values = set()
        for n in names:
            for d in chosen.get(n.split("/")[0], ()):
                values.add(repr(d.cel["attributes"].get(domain, {}).get(short, object())))
        if len(values) > 1:
            return False
    return True
