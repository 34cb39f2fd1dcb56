"""EmbeddedHost: nodes, scheduler, kubelets, kubelet server and taint eviction against one API
server, as a single component with start()/stop(). It shares one pod and one node informer
between its parts (and, given ``informers``, the controller manager's caches: one per resource in
the host's process), and reaches the API server only through the Kubernetes API."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from typing import Any

from vkube.client import Client
from vkube.client.resources import Resource
from vkube.client.resources import (DEVICECLASSES, DEVICETAINTRULES, ENDPOINTS, NAMESPACES, NETWORKPOLICIES,
                                    NODES, PODS, PVCS, PVS, RESOURCECLAIMS, RESOURCESLICES, SERVICES,
                                    STORAGECLASSES)
from vkube.controllers.informer import Informer
from vkube.host.dra import DeviceAllocator
from vkube.host.kubelet import Kubelet
from vkube.host.kubeletserver import KubeletServer
from vkube.host.lifecycle import TaintEvictor
from vkube.host.network import PodNetwork
from vkube.host.nodes import NodeManager, NodeTemplate, node_name
from vkube.host.portforward import SPDY_TUNNEL_PROTOCOL, LocalPortForward
from vkube.host.provisioner import VolumeController
from vkube.host.scheduler import Scheduler
from vkube.host.stages import KubeletConfig
from vkube.host.volumebinding import VolumeBinder
from vkube.pki.cluster import (CONTROLLER_MANAGER, NETWORK, SCHEDULER, ClusterPKI, Identity, KubeletTLS,
                               node_identity)

#: the host's own operator for node operations (`vkube host` cordon/drain/readiness)
HOST_ADMIN = ("vkube-host-admin", ("system:masters",))

log = logging.getLogger(__name__)


class EmbeddedHost:
    """``EmbeddedHost(url, pki=cluster_pki, nodes=3)``; ``await host.start()`` … ``stop()``.

    ``pki`` is the host cluster's: the scheduler (with its volume binder), the volume controller
    (as ``system:kube-controller-manager``) and the kubelets get client certificates of
    their own identities from it (``system:kube-scheduler``; the kubelets, which share one
    connection for all simulated nodes, ``system:node:<first node>`` in ``system:nodes``), and
    the kubelet server a serving certificate admitting only the API server. ``client`` may be
    given instead of a URL (it is then used by every part and not closed by stop());
    ``connect(identity, user_agent)`` makes each part's client instead of HTTPS with a
    certificate (the host's own process calls its API server in process). ``informers(res)``,
    when given, is the controller manager's shared informer of a resource: the parts read its
    caches (each host object decoded once in the process, not once per component) and the
    manager runs them; the parts' writes still go out as their own identities."""

    def __init__(self, server: str | None = None, *, pki: ClusterPKI, client: Client | None = None,
                 connect: "Callable[[Identity, str], Client] | None" = None, nodes: int = 3,
                 template: NodeTemplate | None = None, kubelet: KubeletConfig | None = None,
                 kubelet_port: int = 0, default_toleration_seconds: float = 300.0,
                 lease_interval: float = 10.0, status_interval: float = 40.0,
                 scheduler_name: str = "default-scheduler", seed: int | None = None,
                 informers: "Callable[[Resource], Informer] | None" = None) -> None:
        if client is None and server is None:
            raise ValueError("EmbeddedHost needs a server URL or a client")
        self._clients: list[Client] = []
        #: the informers this host runs itself (the shared ones its controller manager runs)
        self._own: list[Informer] = []
        #: every informer its parts read, waited for before they start
        self._informers: list[Informer] = []

        def informer(c: Client, res: Resource) -> Informer:
            if informers is not None:
                inf = informers(res)
            else:
                inf = Informer(c, res)
                self._own.append(inf)
            self._informers.append(inf)
            return inf

        def identity(ident: Identity, agent: str) -> Client:
            if client is not None:
                return client
            if connect is not None:  # in the API server's process: no sockets (vkube.cluster)
                c = connect(ident, agent)
            else:
                c = Client(server or "", user_agent=agent, ssl=pki.client_ssl(*ident))
            self._clients.append(c)
            return c

        # each simulated node's kubelet writes as itself (system:node:NAME: the Node authorizer
        # and NodeRestriction confine it to its own node and pods); reads of every pod and
        # node, which NodeRules allow any kubelet, share the first node's connection
        node_clients: dict[str, Client] = {}

        def client_for(node: str) -> Client:
            c = node_clients.get(node)
            if c is None:
                c = node_clients[node] = identity(node_identity(node), f"vkube-host/kubelet {node}")
            return c

        self.client = client_for(node_name(1, (template or NodeTemplate()).prefix))
        scheduler_client = identity(SCHEDULER, "vkube-host/scheduler")
        volumes_client = identity(CONTROLLER_MANAGER, "vkube-host/volume-controller")
        # the taint eviction controller is kube-controller-manager's; the host's node
        # operations (cordon, drain, readiness) are its operator's
        manager_client = identity(CONTROLLER_MANAGER, "vkube-host/taint-eviction-controller")
        admin_client = identity(HOST_ADMIN, "vkube-host/node-operations")
        self.node_count = nodes
        rng = random.Random(seed)
        self.pod_informer = informer(self.client, PODS)
        self.node_informer = informer(self.client, NODES)
        # ResourceClaims: the scheduler allocates them; a kubelet starts a pod only once its
        # claims are allocated and reserved for it
        self.claim_informer = informer(scheduler_client, RESOURCECLAIMS)
        self.kubelet = Kubelet(self.client, self.pod_informer, self.node_informer,
                               owns=lambda name: self.nodes.owns(name), config=kubelet,
                               rng=random.Random(rng.random()), client_for=client_for,
                               claims=self.claim_informer)
        # the pod network: exec'd connectivity commands, with the host's NetworkPolicies
        network_client = identity(NETWORK, "vkube-host/network")
        self.network_informers = tuple(informer(network_client, r) for r in
                                       (NAMESPACES, NETWORKPOLICIES, SERVICES, ENDPOINTS))
        self.network = PodNetwork(self.pod_informer, *self.network_informers,
                                  rng=random.Random(rng.random()))
        self.server = KubeletServer(self.kubelet, port=kubelet_port, tls=KubeletTLS(pki),
                                    network=self.network)
        self.nodes = NodeManager(admin_client, template=template or NodeTemplate(), kubelet_port=0,
                                 lease_interval=lease_interval, status_interval=status_interval,
                                 client_for=client_for)
        # storage: the scheduler's volume binding and the PV controller share these caches
        # (watched as the controller manager: a node may only read the volumes of its own pods)
        self.pvc_informer = informer(volumes_client, PVCS)
        self.pv_informer = informer(volumes_client, PVS)
        self.class_informer = informer(volumes_client, STORAGECLASSES)
        self.volume_binder = VolumeBinder(scheduler_client, self.pvc_informer, self.pv_informer,
                                          self.class_informer)
        self.volumes = VolumeController(volumes_client, self.pvc_informer, self.pv_informer,
                                        self.class_informer)
        # dynamic resource allocation: the scheduler allocates claims from published devices
        self.slice_informer = informer(scheduler_client, RESOURCESLICES)
        self.device_class_informer = informer(scheduler_client, DEVICECLASSES)
        self.taint_rule_informer = informer(scheduler_client, DEVICETAINTRULES)
        self.devices = DeviceAllocator(scheduler_client, self.claim_informer, self.slice_informer,
                                       self.device_class_informer, self.taint_rule_informer)
        self.scheduler = Scheduler(scheduler_client, self.pod_informer, self.node_informer,
                                   name=scheduler_name, rng=random.Random(rng.random()),
                                   volumes=self.volume_binder, devices=self.devices)
        self.evictor = TaintEvictor(manager_client, self.pod_informer, self.node_informer,
                                    default_toleration_seconds=default_toleration_seconds)
        self._task: asyncio.Task[None] | None = None
        self._ready: asyncio.Future[None] | None = None

    @property
    def kubelet_port(self) -> int:
        return self.server.port

    async def start(self) -> None:
        """Returns once nodes exist and every loop runs with synced caches."""
        await self.server.start()
        self.nodes.kubelet_port = self.server.port
        try:
            await self.nodes.ensure(self.node_count)
        except BaseException:
            await self.server.stop()
            raise
        self._ready = asyncio.get_running_loop().create_future()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="vkube-embedded-host")
        done, _ = await asyncio.wait({self._task, self._ready}, return_when=asyncio.FIRST_COMPLETED)
        if self._task in done:
            await self.stop()
            self._task.result()  # re-raise why it failed
            raise RuntimeError("embedded host stopped during start-up")

    async def _run(self) -> None:
        async with asyncio.TaskGroup() as tg:
            for inf in self._own:
                tg.create_task(inf.run())
            for inf in self._informers:
                await inf.wait_synced()
            await self.volumes.ensure_default_class()
            tg.create_task(self.volumes.run())
            tg.create_task(self.scheduler.run())
            tg.create_task(self.kubelet.run())
            tg.create_task(self.evictor.run())
            tg.create_task(self.nodes.run_heartbeats())
            assert self._ready is not None
            if not self._ready.done():
                self._ready.set_result(None)

    async def wait(self) -> None:
        """Until the loops end: they only end by failing (re-raised here) or by stop()."""
        if self._task is not None:
            await asyncio.shield(self._task)

    async def stop(self) -> None:
        """Also from a task that is itself being cancelled: the kubelet server and the client
        are closed either way."""
        try:
            if self._task is not None:
                self._task.cancel()
                try:
                    await self._task
                except asyncio.CancelledError:
                    if asyncio.current_task() is not None and asyncio.current_task().cancelling():  # type: ignore[union-attr]
                        raise
                except Exception:
                    log.exception("embedded host stopped with an error")
                self._task = None
        finally:
            await self.server.stop()
            for c in self._clients:
                await c.close()

    def kubelet_connector(self, sub: str, namespace: str, name: str, container: str | None,
                          query: list[tuple[str, str]], protocols: list[str]) -> Any:
        """For the API server of this process: port-forward in SPDY to a pod of ours as an
        in-process session (``LocalPortForward``); None for everything else (the API server
        then dials the kubelet endpoint)."""
        if sub != "portforward" or SPDY_TUNNEL_PROTOCOL not in protocols:
            return None
        pod = self.kubelet.pods.get(name, namespace)
        if pod is None or self.kubelet.runtime(namespace, name) is None:
            return None
        return LocalPortForward(pod)

    # -- administration, as the CLI and tests use it ------------------------------------------

    async def add_node(self) -> str:
        return await self.nodes.add_node()

    async def cordon(self, name: str, on: bool = True) -> dict[str, Any]:
        return await self.nodes.cordon(name, on)

    async def drain(self, name: str, *, timeout: float = 60.0) -> list[str]:
        return await self.nodes.drain(name, timeout=timeout)

    async def set_ready(self, name: str, ready: bool) -> dict[str, Any]:
        return await self.nodes.set_ready(name, ready)
