"""kube-aggregator inside the API server: ``apiregistration.k8s.io/v1`` APIServices.

- **Local APIServices**: every group-version the registry serves (built-ins, CRDs, the native
  ``metrics.k8s.io``) gets an APIService without a service, ``Available=True`` with reason
  ``Local`` (kube-aggregator's autoregister + local availability controllers). They follow the
  registry: a CRD version appears and disappears with its CRD.
- **Remote APIServices** (``spec.service`` set): requests under ``/apis/GROUP/VERSION`` are
  proxied to the service (``aggproxy``), the group appears in ``/apis`` in both discovery forms,
  and an availability controller keeps the ``Available`` condition with kube-aggregator's
  reasons (ServiceNotFound, ServicePortError, EndpointsNotFound, MissingEndpoints,
  FailedDiscoveryCheck, Passed). A remote APIService for a group-version served locally wins,
  as in Kubernetes (e.g. a real metrics-server replaces the native metrics).

The APIService objects are followed through the store's watch (no polling); the availability
check runs on every change of an APIService or of a Service/Endpoints/EndpointSlice in a remote
APIService's namespace, and every ``CHECK_INTERVAL`` seconds while a remote APIService exists.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import ssl
from typing import Any

from vkube.api import errors
from vkube.api.kinds_apiregistration import available_condition
from vkube.api.meta import Obj, rfc3339
from vkube.apiserver import aggproxy
from vkube.apiserver.context import Context
from vkube.apiserver.objects import decode
from vkube.apiserver.request import internal_context
from vkube.pki.certs import KeyPair
from vkube.pki.cluster import FRONT_PROXY_CLIENT
from vkube.store.base import Compacted, StoreClosed, StoreError


__all__ = ["Aggregator", "CHECK_INTERVAL"]

log = logging.getLogger(__name__)
GROUP = "apiregistration.k8s.io"
PREFIX = f"/{GROUP}/apiservices/"
AUTOMANAGED = "kube-aggregator.kubernetes.io/automanaged"
CHECK_INTERVAL = 10.0
#: availability checks in flight at once per cluster (each reads up to aggproxy.DISCOVERY_MAX)
CHECK_CONCURRENCY = 4
#: remote APIServices (``spec.service``) checked and proxied per cluster; the rest read
#: Available=False naming this limit (a tenant's discovery documents are kept in memory)
MAX_REMOTE_APISERVICES = 32
AUTH_CONFIGMAP = "extension-apiserver-authentication"
FRONT_PROXY_CN = FRONT_PROXY_CLIENT
#: kube-aggregator's apiVersionPriorities for the built-in groups (group -> minimum, version)
PRIORITIES = {
    "": (18000, 1), "apiregistration.k8s.io": (18200, 15), "apps": (17800, 15), "events.k8s.io": (17750, 15),
    "authentication.k8s.io": (17700, 15), "authorization.k8s.io": (17600, 15), "autoscaling": (17500, 15),
    "batch": (17400, 15), "certificates.k8s.io": (17300, 15), "networking.k8s.io": (17200, 15),
    "policy": (17100, 15), "rbac.authorization.k8s.io": (17000, 15), "storage.k8s.io": (16800, 15),
    "admissionregistration.k8s.io": (16700, 15), "apiextensions.k8s.io": (16400, 15),
    "scheduling.k8s.io": (16600, 15), "coordination.k8s.io": (16500, 15), "node.k8s.io": (16300, 15),
    "discovery.k8s.io": (16200, 15), "flowcontrol.apiserver.k8s.io": (16100, 15), "metrics.k8s.io": (100, 100),
}


async def _all(jobs: list[Any]) -> None:
    """Run ``jobs`` together; the first failure is raised once all have finished."""
    results = await asyncio.gather(*jobs, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result


def _name(group: str, version: str) -> str:
    return f"{version}.{group}"


class Aggregator:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.objects: dict[str, Obj] = {}
        #: remote group-version -> discovery document fetched by the last passing check
        self.discovered: dict[tuple[str, str], Obj] = {}
        self.generation = 0  # bumped on every change that discovery shows
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._backends: asyncio.Task[None] | None = None
        #: the client certificate presented to aggregated servers (kube-apiserver's
        #: ``--proxy-client-cert-file``), and the CA that signed it; None: none presented
        self.front_proxy_client: KeyPair | None = None
        self.front_proxy_ca: bytes = b""
        #: the CA this API server verifies client certificates with (``--client-ca-file``)
        self.client_ca: bytes = b""
        #: the CNs the API server's request-header authenticator trusts (published as such)
        self.requestheader_allowed_names: tuple[str, ...] = (FRONT_PROXY_CN,)
        self._tls: dict[str, tuple[tuple[str, int], ssl.SSLContext | bool]] = {}

    # -- state --------------------------------------------------------------------------------

    def remote_for(self, group: str, version: str) -> Obj | None:
        """The APIService with a service for ``group/version``, if any."""
        obj = self.objects.get(_name(group, version))
        if obj is None or not (obj.get("spec") or {}).get("service"):
            return None
        return obj

    def remotes(self) -> list[Obj]:
        return [o for o in self.objects.values() if (o.get("spec") or {}).get("service")]

    def tls_for(self, obj: Obj) -> ssl.SSLContext | bool:
        """The TLS context for one APIService, built once per version of it."""
        name = obj["metadata"]["name"]
        key = (obj["metadata"].get("resourceVersion", ""), id(self.front_proxy_client))
        cached = self._tls.get(name)
        if cached is None or cached[0] != key:
            cached = self._tls[name] = (key, aggproxy.ssl_for(obj, self.front_proxy_client))
        return cached[1]

    async def proxy(self, request: Any, rc: Any, obj: Obj) -> Any:
        return await aggproxy.proxy(request, rc, self.ctx, obj, self.available(obj), self.tls_for(obj))

    @staticmethod
    def available(obj: Obj) -> bool:
        cond = available_condition(obj)
        return cond is not None and cond.get("status") == "True"

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Register the local APIServices (before serving: a new cluster answers with them
        at once), then follow the APIServices and run the checks in the background."""
        revision = await self._relist()
        await self._register_local()
        await self._publish_authentication()
        loop = asyncio.get_running_loop()
        self.ctx.on_registry_change.append(self._wake.set)
        for coro in (self._follow(revision), self._run()):
            task = loop.create_task(coro)
            self._tasks.append(task)
            self.ctx.watch_tasks.add(task)
            task.add_done_callback(self.ctx.watch_tasks.discard)

    async def _publish_authentication(self) -> None:
        """``kube-system/extension-apiserver-authentication``, as kube-apiserver writes it:
        how an aggregated server (k8s.io/apiserver) verifies client certificates and trusts
        the front-proxy headers of this API server's proxy."""
        if self.front_proxy_client is None or not self.front_proxy_ca:
            return
        data = {"client-ca-file": (self.client_ca or self.front_proxy_ca).decode(),
                "requestheader-allowed-names": json.dumps(list(self.requestheader_allowed_names)),
                "requestheader-client-ca-file": self.front_proxy_ca.decode(),
                "requestheader-extra-headers-prefix": '["X-Remote-Extra-"]',
                "requestheader-group-headers": '["X-Remote-Group"]',
                "requestheader-username-headers": '["X-Remote-User"]'}
        storage = self.ctx.storage_for("", "ConfigMap")
        assert storage is not None

        def update(current: Obj) -> Obj:
            current.setdefault("metadata", {}).update(name=AUTH_CONFIGMAP, namespace="kube-system")
            current.update(apiVersion="v1", kind="ConfigMap", data=data)
            return current
        rc = internal_context("update", version="v1", resource="configmaps", namespace="kube-system",
                              name=AUTH_CONFIGMAP, field_manager="kube-apiserver")
        await storage.update_with(rc, "kube-system", AUTH_CONFIGMAP, update, create_if_missing=True)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()

    async def _relist(self) -> int:
        res = await self.ctx.store.range(PREFIX)
        self.objects = {}
        for kv in res.kvs:
            obj = decode(kv)
            self.objects[obj["metadata"]["name"]] = obj
        self.generation += 1
        return res.revision

    async def _follow(self, revision: int) -> None:
        while True:
            try:
                async for event in self.ctx.watch_fanout().watch(PREFIX, after_revision=revision):
                    revision = event.revision
                    obj = decode(event.kv)
                    name = obj["metadata"]["name"]
                    if event.type == "DELETED":
                        self.objects.pop(name, None)
                        self._tls.pop(name, None)
                    else:
                        self.objects[name] = obj
                    self.generation += 1
                    self._wake.set()
                return
            except Compacted:
                revision = await self._relist()
            except StoreClosed:
                return
            except StoreError:
                log.exception("APIService watch failed; re-reading them")
                await asyncio.sleep(0.5)
                revision = await self._relist()

    async def _run(self) -> None:
        """Autoregister local APIServices, then check the remote ones; again on every change
        (and periodically while remote ones exist)."""
        while True:
            self._wake.clear()
            try:
                await self._register_local()
                await self._check_remotes()
            except errors.StatusError as exc:
                log.debug("aggregator sync: %s", exc.message)
            except StoreClosed:
                return
            except StoreError:
                log.exception("aggregator sync failed")
            self._watch_backends(bool(self.remotes()))
            timeout = CHECK_INTERVAL if self.remotes() else None
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)

    def _watch_backends(self, wanted: bool) -> None:
        """While remote APIServices exist, changes of Services, Endpoints and EndpointSlices in
        their services' namespaces trigger a check at once (kube-aggregator's event handlers);
        without any, nothing is watched (an idle cluster pays no task)."""
        task = self._backends
        if wanted and (task is None or task.done()):
            self._backends = asyncio.get_running_loop().create_task(self._follow_backends())
            self._tasks.append(self._backends)
        elif not wanted and task is not None:
            task.cancel()
            self._tasks.remove(task)
            self._backends = None

    async def _follow_backends(self) -> None:
        revision = await self.ctx.store.current_revision()

        async def follow(prefix: str) -> None:
            async for event in self.ctx.watch_fanout().watch(prefix, after_revision=revision):
                namespace = event.kv.key[len(prefix):].split("/", 1)[0]
                if any(((o.get("spec") or {}).get("service") or {}).get("namespace") == namespace
                       for o in self.remotes()):
                    self._wake.set()
        try:
            await asyncio.gather(*(follow(p) for p in ("/core/services/", "/core/endpoints/",
                                                       "/discovery.k8s.io/endpointslices/")))
        except (StoreError, StoreClosed):
            return  # the periodic check still runs

    # -- local APIServices --------------------------------------------------------------------

    def _storage(self) -> Any:
        storage = self.ctx.storage_for(GROUP, "APIService")
        assert storage is not None
        return storage

    async def _register_local(self) -> None:
        """Creates (and status writes) run concurrently: the store commits them together."""
        storage = self._storage()
        wanted: dict[str, tuple[str, str]] = {}
        for group, versions in self.ctx.registry.groups().items():
            for version in versions:
                wanted[_name(group, version)] = (group, version)
        builtin = {(s.group, s.version) for s in self.ctx.registry.all() if s.strategy is not None
                   and type(s.strategy).__module__ != "vkube.api.crd"}

        async def create(name: str, group: str, version: str) -> None:
            gpm, vp = PRIORITIES.get(group, (1000, 100))
            obj = {"apiVersion": f"{GROUP}/v1", "kind": "APIService", "metadata": {
                "name": name, "labels": {AUTOMANAGED: "onstart" if (group, version) in builtin else "true"}},
                "spec": {"group": group, "version": version, "groupPriorityMinimum": gpm, "versionPriority": vp}}
            rc = internal_context("create", group=GROUP, version="v1", resource="apiservices",
                                  field_manager="kube-apiserver")
            with contextlib.suppress(errors.AlreadyExists):
                self.objects[name] = await storage.create(rc, None, obj)

        async def delete(name: str) -> None:
            rc = internal_context("delete", group=GROUP, version="v1", resource="apiservices", name=name)
            with contextlib.suppress(errors.NotFound, errors.Conflict):
                await storage.delete(rc, None, name)

        jobs = [create(name, *gv) for name, gv in wanted.items() if name not in self.objects]
        for name, obj in list(self.objects.items()):  # a CRD version that is no longer served
            labels = (obj.get("metadata") or {}).get("labels") or {}
            if name not in wanted and labels.get(AUTOMANAGED) == "true" and not (obj.get("spec") or {}).get("service"):
                jobs.append(delete(name))
        await _all(jobs)
        await _all([self._set_available(obj, "True", "Local", "Local APIServices are always available")
                    for obj in list(self.objects.values())
                    if not (obj.get("spec") or {}).get("service") and available_condition(obj) is None])

    # -- remote APIServices -------------------------------------------------------------------

    async def _check_remotes(self) -> None:
        remotes = sorted(self.remotes(), key=lambda o: o["metadata"]["name"])
        if not remotes:
            return
        over = remotes[MAX_REMOTE_APISERVICES:]
        remotes = remotes[:MAX_REMOTE_APISERVICES]
        for obj in over:
            spec = obj["spec"]
            self.discovered.pop((spec.get("group", ""), spec.get("version", "")), None)
            await self._set_available(obj, "False", "TooManyAPIServices",
                                      f"not checked: this cluster has more than {MAX_REMOTE_APISERVICES} "
                                      "APIServices with a service (vkube's limit per cluster) — delete "
                                      "the ones not used")
        slots = asyncio.Semaphore(CHECK_CONCURRENCY)

        async def bounded(obj: Obj) -> tuple[str, str, str, Obj | None]:
            async with slots:
                return await aggproxy.check(self.ctx, obj, self.tls_for(obj))

        results = await asyncio.gather(*(bounded(obj) for obj in remotes), return_exceptions=True)
        for obj, result in zip(remotes, results):
            spec = obj["spec"]
            gv = (spec.get("group", ""), spec.get("version", ""))
            if isinstance(result, BaseException):
                if isinstance(result, asyncio.CancelledError):
                    raise result
                log.warning("availability check of %s failed: %s", obj["metadata"]["name"], result)
                continue
            status, reason, message, doc = result
            if doc is not None:
                if self.discovered.get(gv) != doc:
                    self.discovered[gv] = doc
                    self.generation += 1
            await self._set_available(obj, status, reason, message)

    async def _set_available(self, obj: Obj, status: str, reason: str, message: str) -> None:
        cond = available_condition(obj)
        if cond is not None and (cond.get("status"), cond.get("reason"), cond.get("message")) == (status, reason, message):
            return
        now = rfc3339(self.ctx.clock())
        new_cond = {"type": "Available", "status": status,
                    "lastTransitionTime": cond.get("lastTransitionTime", now) if cond and cond.get("status") == status else now,
                    "reason": reason, "message": message}
        name = obj["metadata"]["name"]

        def update(current: Obj) -> Obj:
            conds = [c for c in (current.get("status") or {}).get("conditions") or () if c.get("type") != "Available"]
            current["status"] = {**(current.get("status") or {}), "conditions": [*conds, new_cond]}
            return current
        rc = internal_context("update", group=GROUP, version="v1", resource="apiservices", name=name,
                              subresource="status", field_manager="kube-apiserver")
        try:
            updated, _ = await self._storage().update_with(rc, None, name, update, subresource="status")
        except errors.NotFound:
            return
        self.objects[name] = updated
        self.generation += 1
        if status != "True":
            log.info("APIService %s unavailable: %s: %s", name, reason, message)

    # -- discovery ----------------------------------------------------------------------------

    def remote_groups(self) -> dict[str, list[tuple[str, Obj]]]:
        """group -> [(version, apiservice)], versions by priority (highest first)."""
        out: dict[str, list[tuple[str, Obj]]] = {}
        for obj in self.remotes():
            spec = obj["spec"]
            out.setdefault(spec.get("group", ""), []).append((spec.get("version", ""), obj))
        for versions in out.values():
            versions.sort(key=lambda v: -int(v[1]["spec"].get("versionPriority") or 0))
        return out

    def merge_group_list(self, doc: Obj) -> Obj:
        """``/apis`` (APIGroupList) with the remote groups added (available or not, as
        kube-aggregator lists them)."""
        remote = self.remote_groups()
        if not remote:
            return doc
        groups = [g for g in doc.get("groups") or [] if g["name"] not in remote]
        local = {g["name"]: g for g in doc.get("groups") or []}
        for group, versions in remote.items():
            vs = [{"groupVersion": f"{group}/{v}", "version": v} for v, _ in versions]
            for extra in (local.get(group) or {}).get("versions") or []:
                if extra not in vs:
                    vs.append(extra)
            groups.append({"name": group, "versions": vs, "preferredVersion": vs[0]})
        return {**doc, "groups": groups}

    def merge_openapi_index(self, doc: Obj) -> Obj:
        """``/openapi/v3`` with an entry per available remote group-version (its document is
        proxied from the aggregated server, as kube-aggregator's OpenAPI v3 aggregation)."""
        extra = {}
        for obj in self.remotes():
            if not self.available(obj):
                continue
            spec = obj["spec"]
            path = f"apis/{spec.get('group')}/{spec.get('version')}"
            version = obj["metadata"].get("resourceVersion", "")
            extra[path] = {"serverRelativeURL": f"/openapi/v3/{path}?hash=apiservice-{version}"}
        if not extra:
            return doc
        return {**doc, "paths": {**doc.get("paths", {}), **extra}}

    def api_group(self, group: str) -> Obj | None:
        versions = self.remote_groups().get(group)
        if not versions:
            return None
        vs = [{"groupVersion": f"{group}/{v}", "version": v} for v, _ in versions]
        return {"kind": "APIGroup", "apiVersion": "v1", "name": group, "versions": vs, "preferredVersion": vs[0]}

    def merge_aggregated(self, doc: Obj) -> Obj:
        """Aggregated discovery (``apidiscovery.k8s.io``) with every remote group-version: its
        resources from the last passing check, ``freshness: Stale`` while unavailable (kubectl
        then reports that group-version as failed and goes on with the rest)."""
        remote = self.remote_groups()
        if not remote:
            return doc
        items = [dict(i) for i in doc.get("items") or []]
        by_name = {i["metadata"]["name"]: i for i in items}
        for group, versions in remote.items():
            entries = []
            for version, obj in versions:
                listed = self.discovered.get((group, version))
                fresh = self.available(obj) and listed is not None
                entries.append({"version": version,
                                "resources": aggproxy.aggregated_resources(group, version, listed) if listed else [],
                                "freshness": "Current" if fresh else "Stale"})
            item = by_name.get(group)
            if item is None:
                items.append({"metadata": {"name": group, "creationTimestamp": None}, "versions": entries})
            else:
                names = {e["version"] for e in entries}
                item["versions"] = entries + [v for v in item.get("versions") or [] if v["version"] not in names]
        return {**doc, "items": items}
