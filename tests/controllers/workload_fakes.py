"""An in-memory API + informer + manager double for driving the workload controllers' reconcile
loops in unit tests without a server. Semantics kept: generateName, uid, resourceVersion
conflicts, generation bumps on spec changes, status subresource, merge patch, finalizers with
deletionTimestamp, background garbage collection of owned objects, and watch-style handler
callbacks (ADDED/MODIFIED/DELETED, obj, old)."""

from __future__ import annotations

import copy
import itertools
import random
import string
from datetime import datetime, timedelta, timezone
from typing import Any

from vkube.api.errors import AlreadyExists, Conflict, Invalid, NotFound
from vkube.api.patch import merge as merge_patch
from vkube.controllers.workloads._common import fmt_time, key_of, selector_matches

Obj = dict[str, Any]
T0 = datetime(2026, 1, 1, 12, 0, 0, tzinfo=timezone.utc)



class FakeInformer:
    def __init__(self, cluster: "FakeCluster", plural: str) -> None:
        self.cluster, self.plural = cluster, plural
        self.handlers: list[Any] = []

    def add_handler(self, handler: Any) -> None:
        self.handlers.append(handler)

    def add_index(self, name: str, fn: Any) -> None:
        pass

    def _view(self) -> dict[tuple[str, str | None, str], Obj]:
        return self.cluster.frozen.get(self.plural, self.cluster.objs)

    def get(self, name: str, namespace: str | None = None) -> Obj | None:
        return self._view().get((self.plural, namespace, name))  # shared, like the real one

    def list(self, namespace: str | None = None, selector: Any = None) -> list[Obj]:
        out = []
        for (plural, ns, _), o in sorted(self._view().items(), key=lambda kv: str(kv[0])):
            if plural != self.plural or (namespace is not None and ns != namespace):
                continue
            if selector is not None:
                sel = selector if ("matchLabels" in selector or "matchExpressions" in selector) \
                    else {"matchLabels": selector}
                if not selector_matches(sel, o["metadata"].get("labels")):
                    continue
            out.append(o)
        return out


class FakeClient:
    def __init__(self, cluster: "FakeCluster") -> None:
        self.c = cluster
        self.calls: list[tuple[str, str, str]] = []

    async def get(self, res: Any, name: str, *, namespace: str | None = None, **_: Any) -> Obj:
        o = self.c.objs.get((res.plural, namespace, name))
        if o is None:
            raise NotFound(f'{res.plural} "{name}" not found')
        return copy.deepcopy(o)

    async def list(self, res: Any, *, namespace: str | None = None, **_: Any) -> Obj:
        return {"items": FakeInformer(self.c, res.plural).list(namespace)}

    async def create(self, res: Any, obj: Obj, *, namespace: str | None = None, **_: Any) -> Obj:
        obj = copy.deepcopy(obj)
        m = obj.setdefault("metadata", {})
        ns = namespace or m.get("namespace")
        if res.namespaced:
            m["namespace"] = ns
        if not m.get("name"):
            if not m.get("generateName"):
                raise Invalid("name or generateName is required")
            m["name"] = m["generateName"] + "".join(random.choices(string.ascii_lowercase, k=5))
        if self.c.fail_creates.get(res.plural):
            self.c.fail_creates[res.plural] -= 1
            raise Invalid(f"forced failure creating {m['name']}")
        k = (res.plural, ns if res.namespaced else None, m["name"])
        if k in self.c.objs:
            raise AlreadyExists(f'{res.plural} "{m["name"]}" already exists')
        m["uid"] = f"uid-{next(self.c.seq)}"
        m["creationTimestamp"] = fmt_time(self.c.now)
        m["generation"] = 1
        obj.setdefault("apiVersion", res.api_version)
        obj.setdefault("kind", res.kind)
        self.c.store(res.plural, k, obj, None)
        self.calls.append(("create", res.plural, m["name"]))
        return copy.deepcopy(obj)

    async def update(self, res: Any, obj: Obj, *, subresource: str | None = None,
                     **_: Any) -> Obj:
        m = obj["metadata"]
        k = (res.plural, m.get("namespace") if res.namespaced else None, m["name"])
        cur = self.c.objs.get(k)
        if cur is None:
            raise NotFound(m["name"])
        if m.get("resourceVersion") and m["resourceVersion"] != cur["metadata"]["resourceVersion"]:
            raise Conflict(f"conflict on {m['name']}")
        new = copy.deepcopy(cur)
        if subresource == "status":
            new["status"] = copy.deepcopy(obj.get("status"))
        else:
            st = new.get("status")
            new = copy.deepcopy(obj)
            new["status"] = st
            for f in ("uid", "creationTimestamp", "generation", "deletionTimestamp"):
                if f in cur["metadata"]:
                    new["metadata"][f] = cur["metadata"][f]
        self.calls.append(("update" + ("/status" if subresource else ""), res.plural, m["name"]))
        return self.c.replace(res.plural, k, cur, new)

    async def patch(self, res: Any, name: str, patch: Any, *, namespace: str | None = None,
                    type: str = "merge", subresource: str | None = None, **_: Any) -> Obj:
        k = (res.plural, namespace if res.namespaced else None, name)
        cur = self.c.objs.get(k)
        if cur is None:
            raise NotFound(name)
        uid = ((patch or {}).get("metadata") or {}).get("uid")
        if uid and uid != cur["metadata"]["uid"]:
            raise Conflict("uid precondition failed")
        new = merge_patch(cur, patch)
        self.calls.append(("patch", res.plural, name))
        return self.c.replace(res.plural, k, cur, new)

    async def delete(self, res: Any, name: str, *, namespace: str | None = None,
                     preconditions: Obj | None = None, **_: Any) -> Obj:
        k = (res.plural, namespace if res.namespaced else None, name)
        cur = self.c.objs.get(k)
        if cur is None:
            raise NotFound(name)
        if preconditions and preconditions.get("uid") not in (None, cur["metadata"]["uid"]):
            raise Conflict("uid precondition failed")
        self.calls.append(("delete", res.plural, name))
        if cur["metadata"].get("finalizers"):
            if not cur["metadata"].get("deletionTimestamp"):
                new = copy.deepcopy(cur)
                new["metadata"]["deletionTimestamp"] = fmt_time(self.c.now)
                return self.c.replace(res.plural, k, cur, new)
            return copy.deepcopy(cur)
        self.c.remove(k)
        return copy.deepcopy(cur)


class FakeQueue:
    def __init__(self) -> None:
        self.keys: list[str] = []
        self.later: dict[str, float] = {}

    def add(self, key: str) -> None:
        if key not in self.keys:
            self.keys.append(key)

    def add_after(self, key: str, delay: float) -> None:
        self.later[key] = delay

    def add_rate_limited(self, key: str) -> None:
        self.add(key)

    def forget(self, key: str) -> None:
        pass


class FakeRecorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, str, str]] = []

    def event(self, obj: Obj, type: str, reason: str, message: str) -> None:
        self.events.append((obj["metadata"]["name"], type, reason, message))

    def reasons(self) -> list[str]:
        return [e[2] for e in self.events]


class FakeCluster:
    """Objects keyed by (plural, namespace, name) with informers, a clock and controllers."""

    def __init__(self) -> None:
        self.objs: dict[tuple[str, str | None, str], Obj] = {}
        self.informers: dict[str, FakeInformer] = {}
        self.seq = itertools.count(1)
        self.now = T0
        self.client = FakeClient(self)
        self.recorder = FakeRecorder()
        self.controllers: list[Any] = []
        self.fail_creates: dict[str, int] = {}
        self.requeues: dict[str, float | None] = {}
        self.frozen: dict[str, dict] = {}  # plural → the stale view its informer serves
        self.held: dict[str, list[tuple[str, Obj, Obj | None]]] = {}

    def freeze(self, plural: str) -> None:
        """Make ``plural``'s informer stale: it keeps serving today's objects and holds back
        events until thaw() — a watch that lags behind the API."""
        self.frozen[plural] = dict(self.objs)
        self.held[plural] = []

    def thaw(self, plural: str) -> None:
        self.frozen.pop(plural)
        for type_, obj, old in self.held.pop(plural):
            self._notify(plural, type_, obj, old)

    # --- manager surface
    def clock(self) -> datetime:
        return self.now

    def informer(self, res: Any, **_: Any) -> FakeInformer:
        return self.informers.setdefault(res.plural, FakeInformer(self, res.plural))

    def add(self, cls: type, **attrs: Any) -> Any:
        ctl = cls.__new__(cls)
        ctl.mgr, ctl.client, ctl.recorder = self, self.client, self.recorder
        ctl.queue = FakeQueue()
        ctl.enqueue = lambda obj, q=ctl.queue: q.add(key_of(obj))
        for k, v in attrs.items():
            setattr(ctl, k, v)
        ctl.setup()
        self.controllers.append(ctl)
        return ctl

    # --- storage with notifications
    def _notify(self, plural: str, type_: str, obj: Obj, old: Obj | None) -> None:
        if plural in self.frozen:
            self.held[plural].append((type_, obj, old))
            return
        inf = self.informers.get(plural)
        if inf:
            for h in inf.handlers:
                h(type_, copy.deepcopy(obj), copy.deepcopy(old) if old else None)

    def store(self, plural: str, k: tuple, obj: Obj, old: Obj | None) -> None:
        obj["metadata"]["resourceVersion"] = str(next(self.seq))
        self.objs[k] = obj
        self._notify(plural, "MODIFIED" if old else "ADDED", obj, old)

    def replace(self, plural: str, k: tuple, cur: Obj, new: Obj) -> Obj:
        if new.get("spec") != cur.get("spec"):
            new["metadata"]["generation"] = cur["metadata"].get("generation", 1) + 1
        m = new["metadata"]
        if m.get("deletionTimestamp") and not m.get("finalizers"):
            self.remove(k)
            return copy.deepcopy(new)
        self.store(plural, k, new, cur)
        return copy.deepcopy(new)

    def remove(self, k: tuple) -> None:
        obj = self.objs.pop(k)
        self._notify(k[0], "DELETED", obj, None)
        uid = obj["metadata"]["uid"]
        for ck, child in list(self.objs.items()):  # background garbage collection
            refs = child["metadata"].get("ownerReferences") or ()
            if any(r.get("uid") == uid for r in refs) and ck in self.objs:
                if child["metadata"].get("finalizers"):
                    if not child["metadata"].get("deletionTimestamp"):
                        new = copy.deepcopy(child)
                        new["metadata"]["deletionTimestamp"] = fmt_time(self.now)
                        self.store(ck[0], ck, new, child)
                else:
                    self.remove(ck)

    # --- helpers for tests
    def get(self, plural: str, name: str, ns: str | None = "default") -> Obj | None:
        return self.objs.get((plural, ns, name))

    def list(self, plural: str, ns: str | None = "default") -> list[Obj]:
        return [o for (p, n, _), o in sorted(self.objs.items(), key=lambda kv: str(kv[0]))
                if p == plural and n == ns]

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)

    async def settle(self, rounds: int = 200, *, raise_errors: bool = False) -> None:
        """Run every controller's queued keys until all queues are empty."""
        self.requeues = {}
        self.errors: list[BaseException] = []
        for _ in range(rounds):
            busy = False
            for ctl in self.controllers:
                if ctl.queue.keys:
                    busy = True
                    key = ctl.queue.keys.pop(0)
                    try:
                        self.requeues[f"{ctl.name}:{key}"] = await ctl.reconcile(key)
                    except Exception as e:  # the real runtime would back off and retry
                        if raise_errors:
                            raise
                        self.errors.append(e)
            if not busy:
                return
        raise AssertionError("controllers did not settle")

    def kick(self) -> None:
        """Enqueue every object of every controller (a resync)."""
        for ctl in self.controllers:
            inf = getattr(ctl, "owners", None)
            for o in (inf.list() if inf else ()):
                ctl.queue.add(key_of(o))

    async def run_pods(self, *, ready: bool = True, ns: str = "default",
                       names: list[str] | None = None, node: str = "node-1") -> None:
        """Play kubelet: pending pods become Running (and Ready)."""
        for p in self.list("pods", ns):
            if names is not None and p["metadata"]["name"] not in names:
                continue
            status = p.get("status") or {}
            if status.get("phase") in ("Succeeded", "Failed") or p["metadata"].get(
                    "deletionTimestamp"):
                continue
            cond = next((x for x in status.get("conditions") or () if x["type"] == "Ready"), {})
            if status.get("phase") == "Running" and (cond.get("status") == "True") == ready:
                continue
            new = copy.deepcopy(p)
            new["spec"].setdefault("nodeName", node)
            new["status"] = {"phase": "Running", "conditions": [
                {"type": "Ready", "status": "True" if ready else "False",
                 "lastTransitionTime": fmt_time(self.now)}]}
            await self.client.update(_Res("pods"), new, subresource="status")

    async def finish_pod(self, name: str, *, phase: str = "Succeeded", exit_code: int = 0,
                         ns: str = "default", reason: str | None = None) -> None:
        p = copy.deepcopy(self.objs[("pods", ns, name)])
        term: Obj = {"exitCode": exit_code}
        if reason:
            term["reason"] = reason
        p["status"] = {"phase": phase, "conditions": [{"type": "Ready", "status": "False"}],
                       "containerStatuses": [{"name": "c", "state": {"terminated": term}}]}
        await self.client.update(_Res("pods"), p, subresource="status")


class _Res:
    def __init__(self, plural: str) -> None:
        self.plural, self.namespaced = plural, True
