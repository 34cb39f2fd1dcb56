"""The one in-memory Kubernetes API double for unit tests (kept out of the installed package).

One store with the API server's write semantics — generateName, uid, resourceVersion
conflicts, generation bumps on spec changes, the status subresource, merge patch, uid
preconditions, finalizers with deletionTimestamp, background garbage collection of owned
objects — seen three ways:

- ``FakeClient``: the store behind ``vkube.client.Client``'s verbs, in process;
- ``FakeCluster``: that client plus informers, a queue, a recorder and a clock, for driving a
  controller's ``reconcile`` step by step without a server;
- ``FakeAPIServer``: the same store behind real HTTP on a loopback port (CRUD, paged list,
  watch with bookmarks and 410 after compaction, a request log, failure injection), for the
  real ``Client`` and ``Informer`` — the role kmock plays for kopf.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import random
import string
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta, timezone
from typing import Any

import orjson
from aiohttp import web

from vkube.api.errors import AlreadyExists, Conflict, Invalid, NotFound, StatusError
from vkube.api.meta import Obj, object_key, rfc3339
from vkube.api.patch import merge as merge_patch
from vkube.client.client import Resource
from vkube.controllers.workloads._common import selector_matches

T0 = datetime(2026, 1, 1, 12, 0, 0, tzinfo=timezone.utc)

Key = tuple[str, str | None, str]  # plural, namespace (None when cluster-scoped), name
Listener = Callable[[str, str, Obj, "Obj | None"], None]  # plural, type, object, old


def _labels_match_string(obj: Obj, selector: str | None) -> bool:
    """Equality-based ``labelSelector`` query strings (``a=b,c!=d,e``)."""
    if not selector:
        return True
    labels = (obj.get("metadata") or {}).get("labels") or {}
    for term in selector.split(","):
        if "!=" in term:
            k, v = term.split("!=", 1)
            if labels.get(k.strip()) == v.strip():
                return False
        elif "=" in term:
            k, v = term.replace("==", "=").split("=", 1)
            if labels.get(k.strip()) != v.strip():
                return False
        elif term.strip() and term.strip() not in labels:
            return False
    return True


class FakeStore:
    """Objects by (plural, namespace, name), one revision counter, a clock; every change is
    told to the listeners (informers, watches) in order."""

    def __init__(self, *, now: datetime = T0) -> None:
        self.objs: dict[Key, Obj] = {}
        self.rv = 1
        self.now = now
        self.fail_creates: dict[str, int] = {}  # plural → creations to refuse (Invalid)
        self.listeners: list[Listener] = []
        self._uid = itertools.count(1)

    @staticmethod
    def key(res: Any, name: str, namespace: str | None) -> Key:
        return (res.plural, namespace if res.namespaced else None, name)

    # -- raw writes: what another client did, no validation --------------------------------

    def store(self, plural: str, k: Key, obj: Obj, old: Obj | None) -> None:
        self.rv += 1
        meta = obj.setdefault("metadata", {})
        meta["resourceVersion"] = str(self.rv)
        meta.setdefault("uid", f"uid-{next(self._uid)}")
        meta.setdefault("creationTimestamp", rfc3339(self.now))
        self.objs[k] = obj
        self._notify(plural, "MODIFIED" if old else "ADDED", obj, old)

    def remove(self, k: Key) -> None:
        obj = self.objs.pop(k)
        self.rv += 1
        gone = copy.deepcopy(obj)
        gone["metadata"]["resourceVersion"] = str(self.rv)
        self._notify(k[0], "DELETED", gone, None)
        uid = obj["metadata"].get("uid")
        for ck, child in list(self.objs.items()):  # background garbage collection
            refs = child["metadata"].get("ownerReferences") or ()
            if any(r.get("uid") == uid for r in refs) and ck in self.objs:
                if child["metadata"].get("finalizers"):
                    if not child["metadata"].get("deletionTimestamp"):
                        new = copy.deepcopy(child)
                        new["metadata"]["deletionTimestamp"] = rfc3339(self.now)
                        self.store(ck[0], ck, new, child)
                else:
                    self.remove(ck)

    def _notify(self, plural: str, typ: str, obj: Obj, old: Obj | None) -> None:
        for listener in list(self.listeners):
            listener(plural, typ, obj, old)

    def replace(self, plural: str, k: Key, cur: Obj, new: Obj) -> Obj:
        if new.get("spec") != cur.get("spec"):
            new["metadata"]["generation"] = cur["metadata"].get("generation", 1) + 1
        m = new["metadata"]
        if m.get("deletionTimestamp") and not m.get("finalizers"):
            self.remove(k)
            return copy.deepcopy(new)
        self.store(plural, k, new, cur)
        return copy.deepcopy(new)

    # -- the API's verbs --------------------------------------------------------------------

    def read(self, res: Any, name: str, namespace: str | None = None) -> Obj:
        o = self.objs.get(self.key(res, name, namespace))
        if o is None:
            raise NotFound(f'{res.plural} "{name}" not found')
        return copy.deepcopy(o)

    def select(self, plural: str, namespace: str | None = None, *,
               selector: Any = None) -> list[Obj]:
        """Objects of ``plural`` (in ``namespace`` if given), in key order; ``selector`` a
        LabelSelector dict, a plain label map, or a query string."""
        out = []
        for (p, ns, _), o in sorted(self.objs.items(), key=lambda kv: str(kv[0])):
            if p != plural or (namespace and ns != namespace):
                continue
            if isinstance(selector, str):
                if not _labels_match_string(o, selector):
                    continue
            elif selector is not None:
                sel = selector if ("matchLabels" in selector or "matchExpressions" in selector) \
                    else {"matchLabels": selector}
                if not selector_matches(sel, o["metadata"].get("labels")):
                    continue
            out.append(o)
        return out

    def create(self, res: Any, obj: Obj, namespace: str | None = None) -> Obj:
        obj = copy.deepcopy(obj)
        m = obj.setdefault("metadata", {})
        ns = namespace or m.get("namespace")
        if res.namespaced:
            m["namespace"] = ns
        if not m.get("name"):
            if not m.get("generateName"):
                raise Invalid("name or generateName is required")
            m["name"] = m["generateName"] + "".join(random.choices(string.ascii_lowercase, k=5))
        if self.fail_creates.get(res.plural):
            self.fail_creates[res.plural] -= 1
            raise Invalid(f"forced failure creating {m['name']}")
        k = self.key(res, m["name"], ns)
        if k in self.objs:
            raise AlreadyExists(f'{res.plural} "{m["name"]}" already exists')
        m.pop("uid", None)
        m["creationTimestamp"] = rfc3339(self.now)
        m["generation"] = 1
        obj.setdefault("apiVersion", res.api_version)
        obj.setdefault("kind", res.kind)
        self.store(res.plural, k, obj, None)
        return copy.deepcopy(obj)

    def bind(self, res: Any, name: str, namespace: str | None, binding: Obj) -> Obj:
        """``pods/NAME/binding``: set ``spec.nodeName`` once, as the API server does."""
        k = self.key(res, name, namespace)
        cur = self.objs.get(k)
        if cur is None:
            raise NotFound(f'{res.plural} "{name}" not found')
        if (cur.get("spec") or {}).get("nodeName"):
            raise Conflict(f'pod {name} is already assigned to node "{cur["spec"]["nodeName"]}"')
        new = copy.deepcopy(cur)
        new.setdefault("spec", {})["nodeName"] = (binding.get("target") or {}).get("name", "")
        self.replace(res.plural, k, cur, new)
        return {"kind": "Status", "apiVersion": "v1", "status": "Success", "code": 201}

    def update(self, res: Any, obj: Obj, *, subresource: str | None = None) -> Obj:
        m = obj["metadata"]
        k = self.key(res, m["name"], m.get("namespace"))
        cur = self.objs.get(k)
        if cur is None:
            raise NotFound(f'{res.plural} "{m["name"]}" not found')
        if m.get("resourceVersion") and m["resourceVersion"] != cur["metadata"]["resourceVersion"]:
            raise Conflict(f'Operation cannot be fulfilled on {res.plural} "{m["name"]}": the '
                           "object has been modified; please apply your changes to the latest "
                           "version and try again")
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
        return self.replace(res.plural, k, cur, new)

    def patch(self, res: Any, name: str, patch: Any, *, namespace: str | None = None,
              subresource: str | None = None) -> Obj:
        k = self.key(res, name, namespace)
        cur = self.objs.get(k)
        if cur is None:
            raise NotFound(f'{res.plural} "{name}" not found')
        uid = ((patch or {}).get("metadata") or {}).get("uid")
        if uid and uid != cur["metadata"]["uid"]:
            raise Conflict("uid precondition failed")
        return self.replace(res.plural, k, cur, merge_patch(cur, patch))

    def delete(self, res: Any, name: str, *, namespace: str | None = None,
               preconditions: Obj | None = None) -> Obj:
        k = self.key(res, name, namespace)
        cur = self.objs.get(k)
        if cur is None:
            raise NotFound(f'{res.plural} "{name}" not found')
        if preconditions and preconditions.get("uid") not in (None, cur["metadata"]["uid"]):
            raise Conflict("uid precondition failed")
        if cur["metadata"].get("finalizers"):
            if not cur["metadata"].get("deletionTimestamp"):
                new = copy.deepcopy(cur)
                new["metadata"]["deletionTimestamp"] = rfc3339(self.now)
                return self.replace(res.plural, k, cur, new)
            return copy.deepcopy(cur)
        self.remove(k)
        return copy.deepcopy(cur)


# -- in process -------------------------------------------------------------------------------

class FakeClient:
    """``vkube.client.Client``'s verbs on a ``FakeStore``; ``calls`` logs the writes."""

    def __init__(self, store: FakeStore) -> None:
        self.c = store
        self.calls: list[tuple[str, str, str]] = []

    async def get(self, res: Any, name: str, *, namespace: str | None = None, **_: Any) -> Obj:
        return self.c.read(res, name, namespace)

    async def list(self, res: Any, *, namespace: str | None = None, **_: Any) -> Obj:
        return {"items": self.c.select(res.plural, namespace)}

    async def create(self, res: Any, obj: Obj, *, namespace: str | None = None,
                     subresource: str | None = None, name: str | None = None, **_: Any) -> Obj:
        if subresource == "binding":
            out = self.c.bind(res, name or obj["metadata"]["name"], namespace, obj)
            self.calls.append(("bind", res.plural, name or obj["metadata"]["name"]))
            return out
        out = self.c.create(res, obj, namespace)
        self.calls.append(("create", res.plural, out["metadata"]["name"]))
        return out

    async def update(self, res: Any, obj: Obj, *, subresource: str | None = None,
                     **_: Any) -> Obj:
        out = self.c.update(res, obj, subresource=subresource)
        self.calls.append(("update" + ("/status" if subresource else ""), res.plural,
                           obj["metadata"]["name"]))
        return out

    async def patch(self, res: Any, name: str, patch: Any, *, namespace: str | None = None,
                    subresource: str | None = None, **_: Any) -> Obj:
        out = self.c.patch(res, name, patch, namespace=namespace, subresource=subresource)
        self.calls.append(("patch", res.plural, name))
        return out

    async def delete(self, res: Any, name: str, *, namespace: str | None = None,
                     preconditions: Obj | None = None, **_: Any) -> Obj:
        if self.c.objs.get(self.c.key(res, name, namespace)) is not None:
            self.calls.append(("delete", res.plural, name))
        return self.c.delete(res, name, namespace=namespace, preconditions=preconditions)


class FakeInformer:
    """An informer's read side over the store (or over a frozen, stale view of it)."""

    def __init__(self, cluster: "FakeCluster", plural: str) -> None:
        self.cluster, self.plural = cluster, plural
        self.handlers: list[Any] = []
        self.indexes: dict[str, Callable[[Obj], list[str]]] = {}
        self.res: Any = None  # the resource, as vkube's Informer.res

    def add_handler(self, handler: Any) -> None:
        self.handlers.append(handler)

    def add_index(self, name: str, fn: Callable[[Obj], list[str]]) -> None:
        self.indexes[name] = fn

    def by_index(self, name: str, value: str) -> list[Obj]:
        fn = self.indexes[name]
        return [o for o in self.list() if value in fn(o)]

    def _view(self) -> dict[Key, Obj]:
        return self.cluster.frozen.get(self.plural, self.cluster.objs)

    def get(self, name: str, namespace: str | None = None) -> Obj | None:
        return self._view().get((self.plural, namespace, name))  # shared, like the real one

    def list(self, namespace: str | None = None, selector: Any = None) -> list[Obj]:
        view = FakeStore()
        view.objs = self._view()
        return view.select(self.plural, namespace, selector=selector)


class FakeQueue:
    """Keys in order, without timers: ``FakeCluster.settle`` drains it step by step."""

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


class FakeCluster(FakeStore):
    """The store plus what a controller's ``mgr`` offers (informers, a clock), for running
    controllers' reconcile loops in unit tests without a server."""

    def __init__(self) -> None:
        super().__init__()
        self.informers: dict[str, FakeInformer] = {}
        self.client = FakeClient(self)
        self.recorder = FakeRecorder()
        self.controllers: list[Any] = []
        self.requeues: dict[str, float | None] = {}
        self.errors: list[BaseException] = []
        self.frozen: dict[str, dict[Key, Obj]] = {}  # plural → the stale view its informer serves
        self.held: dict[str, list[tuple[str, Obj, Obj | None]]] = {}
        self.listeners.append(self._deliver)

    def freeze(self, plural: str) -> None:
        """Make ``plural``'s informer stale: it keeps serving today's objects and holds back
        events until thaw() — a watch that lags behind the API."""
        self.frozen[plural] = dict(self.objs)
        self.held[plural] = []

    def thaw(self, plural: str) -> None:
        self.frozen.pop(plural)
        for typ, obj, old in self.held.pop(plural):
            self._deliver(plural, typ, obj, old)

    def _deliver(self, plural: str, typ: str, obj: Obj, old: Obj | None) -> None:
        if plural in self.frozen:
            self.held[plural].append((typ, obj, old))
            return
        inf = self.informers.get(plural)
        if inf:
            for h in inf.handlers:
                h(typ, copy.deepcopy(obj), copy.deepcopy(old) if old else None)

    # --- manager surface
    def clock(self) -> datetime:
        return self.now

    def informer(self, res: Any, **_: Any) -> FakeInformer:
        inf = self.informers.setdefault(res.plural, FakeInformer(self, res.plural))
        inf.res = res
        return inf

    def add(self, cls: type, **attrs: Any) -> Any:
        ctl = cls.__new__(cls)
        ctl.mgr, ctl.client, ctl.recorder = self, self.client, self.recorder
        ctl.queue = FakeQueue()
        ctl.enqueue = lambda obj, q=ctl.queue: q.add(object_key(obj))
        if hasattr(ctl, "pod_batch_seconds"):
            ctl.pod_batch_seconds = 0.0  # no timers here: pod updates sync at once
        for k, v in attrs.items():
            setattr(ctl, k, v)
        ctl.setup()
        self.controllers.append(ctl)
        return ctl

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
        self.errors = []
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
                ctl.queue.add(object_key(o))

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
                 "lastTransitionTime": rfc3339(self.now)}]}
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


# -- over HTTP --------------------------------------------------------------------------------

Event = tuple[int, str, Key, Obj]  # revision, type, key, object


def _status(code: int, reason: str, message: str) -> web.Response:
    body = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code,
            "reason": reason, "message": message, "metadata": {}}
    return web.Response(status=code, body=orjson.dumps(body), content_type="application/json")


class FakeAPIServer:
    """``async with FakeAPIServer([PODS, ...]) as api: Client(api.url)`` — the store of
    ``api.store`` served over the Kubernetes REST paths of ``resources``."""

    def __init__(self, resources: Iterable[Resource] = (), *,
                 store: FakeStore | None = None) -> None:
        self.resources = {(r.group, r.plural): r for r in resources}
        self.store = store or FakeStore(now=datetime.now(timezone.utc))
        self.store.listeners.append(self._record)
        self.compacted = 0
        self.history: list[Event] = []
        self.requests: list[dict[str, Any]] = []
        self.failures: list[web.Response] = []
        self.bookmark_every: float | None = None
        self._watchers: set[asyncio.Queue[Event | None]] = set()
        self._runner: web.AppRunner | None = None
        self.url = ""

    @property
    def rv(self) -> int:
        return self.store.rv

    # -- lifecycle --------------------------------------------------------------------------

    async def __aenter__(self) -> "FakeAPIServer":
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]  # noqa: SLF001
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close_watches()
        if self._runner:
            await self._runner.cleanup()

    # -- test controls ----------------------------------------------------------------------

    def close_watches(self) -> None:
        for q in list(self._watchers):
            q.put_nowait(None)

    def compact(self) -> None:
        """Forget history: watches from older revisions now answer 410 Expired."""
        self.compacted = self.rv
        self.history.clear()
        self.close_watches()

    def fail_next(self, code: int, reason: str = "InternalError", message: str = "injected",
                  *, body: bytes | None = None) -> None:
        if body is not None:
            self.failures.append(web.Response(status=code, body=body))
        else:
            self.failures.append(_status(code, reason, message))

    def put(self, res: Resource, obj: Obj) -> Obj:
        """Create or replace directly (as another client would), notifying watchers."""
        meta = obj.setdefault("metadata", {})
        k = self.store.key(res, meta["name"], meta.get("namespace"))
        self.store.store(res.plural, k, obj, self.store.objs.get(k))
        return obj

    def remove(self, res: Resource, name: str, namespace: str = "") -> None:
        self.store.remove(self.store.key(res, name, namespace or None))

    def get(self, res: Resource, name: str, namespace: str | None = None) -> Obj | None:
        """The stored object, or None."""
        return self.store.objs.get(self.store.key(res, name, namespace))

    def _record(self, plural: str, typ: str, obj: Obj, old: Obj | None) -> None:
        meta = obj.get("metadata") or {}
        ev = (self.store.rv, typ, (plural, meta.get("namespace"), meta.get("name", "")),
              copy.deepcopy(obj))
        self.history.append(ev)
        for q in self._watchers:
            q.put_nowait(ev)

    # -- HTTP -------------------------------------------------------------------------------

    def _parse(self, path: str) -> tuple[Resource, str, str | None, str | None] | None:
        parts = [p for p in path.split("/") if p]
        if parts[:1] == ["api"] and len(parts) >= 2:
            group, rest = "", parts[2:]
        elif parts[:1] == ["apis"] and len(parts) >= 3:
            group, rest = parts[1], parts[3:]
        else:
            return None
        ns = ""
        if len(rest) >= 3 and rest[0] == "namespaces" and (group, rest[2]) in self.resources:
            ns, rest = rest[1], rest[2:]
        if not rest or (group, rest[0]) not in self.resources:
            return None
        res = self.resources[(group, rest[0])]
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else None
        return res, ns, name, sub

    async def _handle(self, req: web.Request) -> web.StreamResponse:
        body = await req.read()
        self.requests.append({"method": req.method, "path": req.path, "query": dict(req.query),
                              "content_type": req.headers.get("Content-Type"), "body": body,
                              "headers": dict(req.headers)})
        if self.failures:
            return self.failures.pop(0)
        if req.path in ("/api", "/apis"):
            return self._discovery_root(req.path)
        parsed = self._parse(req.path)
        if parsed is None:
            if req.path.startswith(("/api/", "/apis/")):
                return self._discovery_gv(req.path)
            return _status(404, "NotFound", f"no route {req.path}")
        res, ns, name, sub = parsed
        data = orjson.loads(body) if body else None
        if req.method == "GET" and name is None:
            if req.query.get("watch") in ("1", "true"):
                return await self._watch(req, res, ns)
            return self._list(req, res, ns)
        try:
            return self._verb(req.method, res, ns or None, name, sub, data)
        except StatusError as e:
            return _status(e.code, e.reason, e.message)

    def _verb(self, method: str, res: Resource, ns: str | None, name: str | None,
              sub: str | None, data: Any) -> web.Response:
        s = self.store
        if method == "POST" and sub == "binding" and name is not None:
            return self._json(s.bind(res, name, ns, data), 201)
        if method == "POST":
            return self._json(s.create(res, data, ns), 201)
        assert name is not None
        if method == "GET":
            return self._json(s.read(res, name, ns))
        if method == "PUT":
            data.setdefault("metadata", {}).setdefault("namespace", ns)
            return self._json(s.update(res, data, subresource=sub))
        if method == "PATCH":
            return self._json(s.patch(res, name, data, namespace=ns, subresource=sub))
        if method == "DELETE":
            pre = (data or {}).get("preconditions")
            return self._json(s.delete(res, name, namespace=ns, preconditions=pre))
        return _status(405, "MethodNotAllowed", method)

    def _json(self, obj: Any, status: int = 200) -> web.Response:
        return web.Response(status=status, body=orjson.dumps(obj), content_type="application/json")

    def _list(self, req: web.Request, res: Resource, ns: str) -> web.Response:
        items = [copy.deepcopy(o) for o in self.store.select(
            res.plural, ns or None, selector=req.query.get("labelSelector") or "")]
        start = int(req.query.get("continue") or 0)
        limit = int(req.query.get("limit") or 0)
        meta: Obj = {"resourceVersion": str(self.rv)}
        if limit and start + limit < len(items):
            meta["continue"] = str(start + limit)
        page = items[start:start + limit] if limit else items[start:]
        return self._json({"kind": f"{res.kind}List", "apiVersion": res.api_version,
                           "metadata": meta, "items": page})

    async def _watch(self, req: web.Request, res: Resource, ns: str) -> web.StreamResponse:
        rv = int(req.query.get("resourceVersion") or self.rv)
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        await resp.prepare(req)

        async def send(typ: str, obj: Obj) -> None:
            await resp.write(orjson.dumps({"type": typ, "object": obj}) + b"\n")

        if rv < self.compacted:
            await send("ERROR", {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                 "code": 410, "reason": "Expired",
                                 "message": f"too old resource version: {rv}"})
            return resp
        q: asyncio.Queue[Event | None] = asyncio.Queue()
        for ev in self.history:
            q.put_nowait(ev)
        self._watchers.add(q)
        bookmarks = req.query.get("allowWatchBookmarks") == "true"
        try:
            while True:
                try:
                    ev = await asyncio.wait_for(q.get(), self.bookmark_every or None)
                except asyncio.TimeoutError:
                    if bookmarks:
                        await send("BOOKMARK", {"kind": res.kind, "apiVersion": res.api_version,
                                                "metadata": {"resourceVersion": str(self.rv)}})
                    continue
                if ev is None:
                    break
                erv, typ, key, obj = ev
                if erv <= rv or key[0] != res.plural or (ns and key[1] != ns):
                    continue
                if _labels_match_string(obj, req.query.get("labelSelector")):
                    await send(typ, obj)
        finally:
            self._watchers.discard(q)
        return resp

    def _discovery_root(self, path: str) -> web.Response:
        if path == "/api":
            return self._json({"kind": "APIVersions", "versions": ["v1"]})
        groups = sorted({(r.group, r.version) for r in self.resources.values() if r.group})
        return self._json({"kind": "APIGroupList", "apiVersion": "v1", "groups": [
            {"name": g, "versions": [{"groupVersion": f"{g}/{v}", "version": v}],
             "preferredVersion": {"groupVersion": f"{g}/{v}", "version": v}} for g, v in groups]})

    def _discovery_gv(self, path: str) -> web.Response:
        parts = [p for p in path.split("/") if p]
        group, version = ("", parts[1]) if parts[0] == "api" else (parts[1], parts[2])
        rs = [r for r in self.resources.values() if (r.group, r.version) == (group, version)]
        if not rs:
            return _status(404, "NotFound", path)
        return self._json({"kind": "APIResourceList", "groupVersion": rs[0].api_version,
                           "resources": [{"name": r.plural, "kind": r.kind,
                                          "namespaced": r.namespaced,
                                          "verbs": ["create", "delete", "get", "list", "patch",
                                                    "update", "watch"]} for r in rs]})
