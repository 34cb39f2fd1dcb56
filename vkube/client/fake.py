"""An in-memory fake of the Kubernetes REST API (CRUD, paged list, watch with bookmarks and
410 after compaction, request log, failure injection), for unit tests of clients and
controllers without a real API server — the role kmock plays for kopf. Not a server to run.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
from collections.abc import Iterable
from typing import Any

import orjson
from aiohttp import web

from vkube.api.meta import Obj, now_rfc3339
from vkube.api.patch import merge as merge_patch
from vkube.client.client import Resource

Key = tuple[str, str, str, str]  # group, plural, namespace, name


def _status(code: int, reason: str, message: str) -> web.Response:
    body = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code,
            "reason": reason, "message": message, "metadata": {}}
    return web.Response(status=code, body=orjson.dumps(body), content_type="application/json")


def _labels_match(obj: Obj, selector: str | None) -> bool:
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


class FakeAPIServer:
    """``async with FakeAPIServer([PODS, ...]) as api: Client(api.url)``."""

    def __init__(self, resources: Iterable[Resource] = ()) -> None:
        self.resources = {(r.group, r.plural): r for r in resources}
        self.objects: dict[Key, Obj] = {}
        self.rv = 1
        self.compacted = 0
        self.history: list[tuple[int, str, Key, Obj]] = []
        self.requests: list[dict[str, Any]] = []
        self.failures: list[web.Response] = []
        self.bookmark_every: float | None = None
        self._watchers: set[asyncio.Queue[tuple[int, str, Key, Obj] | None]] = set()
        self._uid = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self.url = ""

    # -- lifecycle --------------------------------------------------------------------------

    async def __aenter__(self) -> "FakeAPIServer":
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
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
        key = (res.group, res.plural, meta.get("namespace", "") if res.namespaced else "",
               meta["name"])
        return self._store(key, obj, "MODIFIED" if key in self.objects else "ADDED")

    def remove(self, res: Resource, name: str, namespace: str = "") -> None:
        key = (res.group, res.plural, namespace if res.namespaced else "", name)
        obj = self.objects.pop(key)
        self._emit("DELETED", key, obj, bump=True)

    # -- storage ------------------------------------------------------------------------------

    def _store(self, key: Key, obj: Obj, typ: str) -> Obj:
        self.rv += 1
        meta = obj.setdefault("metadata", {})
        meta["resourceVersion"] = str(self.rv)
        meta.setdefault("uid", f"uid-{next(self._uid)}")
        meta.setdefault("creationTimestamp", now_rfc3339())
        self.objects[key] = obj
        self._emit(typ, key, obj)
        return obj

    def _emit(self, typ: str, key: Key, obj: Obj, *, bump: bool = False) -> None:
        if bump:
            self.rv += 1
            obj = copy.deepcopy(obj)
            obj["metadata"]["resourceVersion"] = str(self.rv)
        ev = (self.rv, typ, key, copy.deepcopy(obj))
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
        key = (res.group, res.plural, ns, name or (data or {}).get("metadata", {}).get("name", ""))
        if req.method == "POST":
            meta = data.setdefault("metadata", {})
            if not meta.get("name") and meta.get("generateName"):
                meta["name"] = meta["generateName"] + f"{next(self._uid):05d}"
                key = key[:3] + (meta["name"],)
            if res.namespaced:
                meta["namespace"] = ns
            if key in self.objects:
                return _status(409, "AlreadyExists", f'{res.plural} "{key[3]}" already exists')
            return self._json(self._store(key, data, "ADDED"), 201)
        if key not in self.objects:
            return _status(404, "NotFound", f'{res.plural} "{key[3]}" not found')
        cur = self.objects[key]
        if req.method == "GET":
            return self._json(cur)
        if req.method == "PUT":
            want = (data.get("metadata") or {}).get("resourceVersion")
            if want and want != cur["metadata"]["resourceVersion"]:
                return _status(409, "Conflict", "the object has been modified")
            data["metadata"]["uid"] = cur["metadata"]["uid"]
            return self._json(self._after_write(key, data))
        if req.method == "PATCH":
            return self._json(self._after_write(key, merge_patch(copy.deepcopy(cur), data)))
        if req.method == "DELETE":
            if cur["metadata"].get("finalizers"):
                new = copy.deepcopy(cur)
                new["metadata"].setdefault("deletionTimestamp", "2026-01-01T00:00:00Z")
                return self._json(self._store(key, new, "MODIFIED"))
            del self.objects[key]
            self._emit("DELETED", key, cur, bump=True)
            return self._json(cur)
        return _status(405, "MethodNotAllowed", req.method)

    def _after_write(self, key: Key, obj: Obj) -> Obj:
        if obj["metadata"].get("deletionTimestamp") and not obj["metadata"].get("finalizers"):
            self.objects.pop(key)
            self._emit("DELETED", key, obj, bump=True)
            return obj
        return self._store(key, obj, "MODIFIED")

    def _json(self, obj: Any, status: int = 200) -> web.Response:
        return web.Response(status=status, body=orjson.dumps(obj), content_type="application/json")

    def _list(self, req: web.Request, res: Resource, ns: str) -> web.Response:
        items = [copy.deepcopy(o) for k, o in sorted(self.objects.items())
                 if k[:2] == (res.group, res.plural) and (not ns or k[2] == ns)
                 and _labels_match(o, req.query.get("labelSelector"))]
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
        q: asyncio.Queue[tuple[int, str, Key, Obj] | None] = asyncio.Queue()
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
                if erv <= rv or key[:2] != (res.group, res.plural) or (ns and key[2] != ns):
                    continue
                if _labels_match(obj, req.query.get("labelSelector")):
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
