"""``Syncer``: one virtual cluster's syncer — shared informers on both sides, one work queue
and worker pool per synced kind, and the kubelet proxy for logs.

Start-up is the same as any restart: list both sides, then reconcile every key seen on either
side, which creates what is missing, repairs drift and deletes host objects labelled as ours
whose virtual object is gone. Host objects without our label are never touched.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from vkube.api import errors
from vkube.api.meta import Obj
from vkube.client.client import Client, Resource
from vkube.client.retry import until_done
from vkube.client.resources import (CONFIGMAPS, ENDPOINTS, INGRESSES, NAMESPACES,
                                    NETWORKPOLICIES, PODS, PRIORITYCLASSES, PVCS, PVS, SECRETS,
                                    RESOURCEQUOTAS, LIMITRANGES, SERVICEACCOUNTS,
                                    SERVICES, STORAGECLASSES, RESOURCECLAIMS)
from vkube.controllers.events import EventRecorder
from vkube.pki.cluster import ClusterPKI, KubeletTLS
from vkube.controllers.informer import Informer
from vkube.syncer.base import Informers, KindSyncer, SyncContext
from vkube.syncer.claims import device_syncers
from vkube.syncer.configmaps_secrets import ConfigMapSyncer, SecretSyncer
from vkube.syncer.customresources import CustomResourceSyncer
from vkube.syncer.customresources_fromhost import HostCustomResourceSyncer
from vkube.syncer.endpoints import EndpointsSyncer
from vkube.syncer.endpointslices import EndpointSliceSyncer
from vkube.syncer.events import EventSyncer
from vkube.syncer.ingresses import IngressSyncer
from vkube.syncer.ingressclasses import IngressClassSyncer
from vkube.syncer.isolation import IsolationSyncer
from vkube.syncer.kubelet import KubeletProxy
from vkube.syncer.networkpolicies import NetworkPolicySyncer
from vkube.syncer.nodes import NodeSyncer
from vkube.syncer.pods import PodSyncer
from vkube.syncer.priorityclasses import PriorityClassSyncer
from vkube.syncer.pvcs import PVCSyncer
from vkube.syncer.refusals import HostAdmissionWatch, retry_refused
from vkube.syncer.serviceaccounts import ServiceAccountSyncer
from vkube.syncer.servicemap import ServiceMapSyncer
from vkube.syncer.services import ServiceSyncer
from vkube.syncer.storage import PersistentVolumeSyncer, StorageClassSyncer
from vkube.syncer.translate import LABEL_MANAGED_BY, Translator
from vkube.syncer.values import Values

log = logging.getLogger(__name__)


def build_syncers(ctx: SyncContext) -> dict[str, KindSyncer]:
    """The kind syncers the values enable, in dependency order (pods use the others)."""
    s = ctx.values.sync
    table: list[tuple[bool, type[KindSyncer]]] = [
        (s.configmaps.enabled, ConfigMapSyncer),
        (s.secrets.enabled, SecretSyncer),
        (s.persistentvolumeclaims.enabled, PVCSyncer),
        (s.services.enabled, ServiceSyncer),
        (s.endpoints.enabled and s.services.enabled, EndpointsSyncer),
        (s.endpoints.enabled and s.services.enabled, EndpointSliceSyncer),
        (s.ingresses.enabled, IngressSyncer),
        (s.ingressclasses.enabled, IngressClassSyncer),
        (s.networkpolicies.enabled, NetworkPolicySyncer),
        (s.serviceaccounts.enabled, ServiceAccountSyncer),
        (s.storageclasses.enabled, StorageClassSyncer),
        (s.priorityclasses.enabled, PriorityClassSyncer),
        # always: with isolation off it removes the guard rails earlier values made
        (True, IsolationSyncer),
        (s.persistentvolumes.enabled, PersistentVolumeSyncer),
        (True, NodeSyncer),
        (s.pods.enabled, PodSyncer),
        (s.events.enabled, EventSyncer),
        # always: with no mappings left it removes what earlier values mapped
        (s.services.enabled or bool(ctx.values.map_services.from_host or
                                    ctx.values.map_services.from_virtual), ServiceMapSyncer),
    ]
    syncers: dict[str, KindSyncer] = {cls.kind: cls(ctx) for on, cls in table if on}
    if s.resourceclaims.enabled:
        syncers.update({syncer.kind: syncer for syncer in device_syncers(ctx)})
    for kind_group, toggle in s.to_host.custom_resources.items():
        if toggle.enabled:
            syncers[kind_group] = CustomResourceSyncer(ctx, kind_group)
    for kind_group, toggle in s.from_host.custom_resources.items():
        if toggle.enabled:
            syncer = HostCustomResourceSyncer(ctx, kind_group)
            syncers[syncer.kind] = syncer
    return syncers


class Syncer:
    """``await Syncer(...).run()`` until cancelled (or ``stop()``); ``wait_ready()`` returns
    once both sides are listed and the first reconcile of every key is queued."""

    def __init__(self, *, name: str, virtual: Client, host: Client, host_namespace: str,
                 values: Values | None = None, kubelet_port: int = 0,
                 kube_service_host: str = "", kube_service_port: int = 443,
                 virtual_pki: ClusterPKI, in_cluster_api: bool = False,
                 cluster_dns: bool = False,
                 virtual_informers: Callable[[Resource], Informer] | None = None,
                 control_plane_endpoints: Callable[[str, str], list[Obj] | None] | None = None,
                 lookup: Callable[[str], Awaitable[list[Any]]] | None = None,
                 ) -> None:
        """``kube_service_host``/``port``: the virtual API server as host pods reach it (the
        KUBERNETES_SERVICE_* env of synced pods); empty: the ClusterIP of the virtual
        ``default/kubernetes`` when ``in_cluster_api``, else unset. ``cluster_dns``: ClusterFirst
        pods resolve through the ClusterIP of the virtual ``kube-system/kube-dns``.
        ``virtual_pki``: the virtual cluster's CA — the kubelet proxy serves with a certificate
        of it and admits only that cluster's API server; host pods trust it.
        ``control_plane_endpoints``: what the control plane writes into the Endpoints of
        ``default/kubernetes`` and ``kube-system/kube-dns`` (their host copies name only that).
        ``lookup``: resolves ExternalName targets (default: this machine's resolver)."""
        values = values or Values()
        tr = Translator(name, host_namespace)
        self.kubelet = KubeletProxy(host, tr, port=kubelet_port, tls=KubeletTLS(virtual_pki))
        virtual_ca = virtual_pki.ca_pem.decode()
        self.ctx = SyncContext(
            name=name, virtual=virtual, host=host, host_namespace=host_namespace,
            values=values, tr=tr, informers=Informers(virtual, host, host_namespace, name,
                                                     virtual_source=virtual_informers),
            recorder=EventRecorder(virtual, "vkube-syncer"),
            kube_service_host=kube_service_host, kube_service_port=kube_service_port,
            in_cluster_api=in_cluster_api, cluster_dns=cluster_dns,
            control_plane_endpoints=control_plane_endpoints, lookup=lookup)
        self.syncers = build_syncers(self.ctx)
        self.ctx.syncers = self.syncers
        pods = self.syncers.get("pods")
        if isinstance(pods, PodSyncer):
            pods.tokens.virtual_ca = virtual_ca
        for syncer in self.syncers.values():
            syncer.setup()
        self.admission_watch = HostAdmissionWatch(host, host_namespace,
                                                  lambda: retry_refused(self.syncers.values()))
        for syncer in self.syncers.values():
            syncer.refusals.on_refused = self.admission_watch.start
        self._ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def kubelet_port(self) -> int:
        return self.kubelet.port

    async def wait_ready(self) -> None:
        await self._ready.wait()

    async def run(self) -> None:
        self._task = asyncio.current_task()
        await self._ensure_host_namespace()
        await self.kubelet.start()
        self.ctx.kubelet_port = self.kubelet.port
        try:
            async with asyncio.TaskGroup() as tg:
                informers = self.ctx.informers.all()
                for inf in self.ctx.informers.owned():
                    # lazy: one with nothing to watch parks (no task) until its first object
                    inf.start(functools.partial(tg.create_task, name=f"informer {inf.res.plural}"))
                await asyncio.gather(*(inf.wait_synced() for inf in informers))
                # a 429 (its cluster's fairness queue full) or a 503 delays start-up, never
                # ends the cluster: each step is idempotent and tried again after Retry-After
                await asyncio.gather(*(until_done(s.prepare, f"syncer {self.ctx.name}: prepare {s.kind}")
                                       for s in self.syncers.values()))
                for syncer in self.syncers.values():
                    tg.create_task(syncer.run(), name=f"syncer {syncer.kind}")
                self._ready.set()
        finally:
            for inf in self.ctx.informers.owned():
                inf.stop()  # parked ones: nothing wakes them into a finished group
            await self.admission_watch.stop()
            await self.ctx.recorder.close()
            for syncer in self.syncers.values():
                syncer.queue.shutdown()
            await self.kubelet.stop()

    async def stop(self) -> None:
        task = self._task
        if task is not None and not task.done():
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                if asyncio.current_task() is task:
                    raise

    async def _ensure_host_namespace(self) -> None:
        ns = {"apiVersion": "v1", "kind": "Namespace",
              "metadata": {"name": self.ctx.host_namespace,
                           "labels": {LABEL_MANAGED_BY: self.ctx.name}}}

        async def create() -> None:
            try:
                await self.ctx.host.create(NAMESPACES, ns)
            except (errors.AlreadyExists, errors.Forbidden):
                pass

        await until_done(create, f"syncer {self.ctx.name}: host namespace {self.ctx.host_namespace}")

    def processed(self) -> dict[str, int]:
        """Reconciles done per kind (benchmarks)."""
        return {k: s.processed for k, s in self.syncers.items()}


_NAMESPACED: tuple[Resource, ...] = (PODS, SERVICES, ENDPOINTS, CONFIGMAPS, SECRETS, PVCS,
                                     INGRESSES, NETWORKPOLICIES, SERVICEACCOUNTS,
                                     RESOURCEQUOTAS, LIMITRANGES, RESOURCECLAIMS)
_CLUSTER: tuple[Resource, ...] = (STORAGECLASSES, PVS, PRIORITYCLASSES)


async def cleanup_host(host: Client, host_namespace: str, name: str, *,
                       grace_period_seconds: int | None = None,
                       workloads_only: bool = False, keep_volumes: bool = False) -> int:
    """Delete every host object the syncer of virtual cluster ``name`` created; returns how
    many. Unlabelled objects stay. ``vkube delete`` deletes them all; ``keep_volumes``
    (``vkube pause``) all but the PVCs and PVs — the tenant's data, which a claim's deletion
    would reclaim — and a resumed syncer makes the rest again; ``workloads_only`` (a shared
    cluster's sleep) deletes only the pods: PVCs, Services and the rest stay for the wake.
    Stop the Syncer first, or it recreates what this deletes."""
    selector = f"{LABEL_MANAGED_BY}={name}"
    count = 0

    async def drop(res: Resource, ns: str | None) -> int:
        try:
            items = (await host.list_all(res, namespace=ns, label_selector=selector))["items"]
        except (errors.NotFound, errors.Forbidden):
            return 0  # kind not served / namespace gone
        n = 0
        for obj in items:
            kw: dict[str, Any] = {}
            if res is PODS and grace_period_seconds is not None:
                kw["grace_period_seconds"] = grace_period_seconds
            try:
                await host.delete(res, obj["metadata"]["name"], namespace=ns, **kw)
                n += 1
            except errors.NotFound:
                pass
        return n

    if workloads_only:
        return await drop(PODS, host_namespace)
    kept = (PVCS, PVS) if keep_volumes else ()
    for res in _NAMESPACED:
        if res not in kept:
            count += await drop(res, host_namespace)
    for res in _CLUSTER:
        if res not in kept:
            count += await drop(res, None)
    return count
