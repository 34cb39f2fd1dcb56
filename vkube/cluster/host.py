"""``EmbeddedHostCluster``: the embedded host as one object — its control plane, its controller
manager and the simulated data plane (``vkube.host.runner.EmbeddedHost``: nodes, scheduler,
kubelets, node lifecycle) — run under one task group. ``vkube host start`` runs one in its own
process; tests and benchmarks start one in theirs. Same failure policy as ``VirtualCluster``:
if a part fails, all of it stops and ``error`` says why."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vkube.apiserver.admission.tenantingress import TenantIngress
from vkube.apiserver.server import ControlPlane

if TYPE_CHECKING:
    from vkube.client import Client
    from vkube.pki.cluster import Identity
    from vkube.host.runner import EmbeddedHost
    from vkube.host.stages import KubeletConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HostConfig:
    data_dir: Path
    port: int = 0
    address: str = "127.0.0.1"
    nodes: int = 3
    node_cpu: str = "4"
    node_memory: str = "8Gi"
    #: simulated DRA devices on every node: (driver, count) pairs
    node_devices: tuple[tuple[str, int], ...] = ()
    #: simulation timings; None: the defaults
    kubelet: "KubeletConfig | None" = None
    name: str = "vkube-host"
    #: dual-stack ClusterIPs (IPv4 first), so IPv6 and dual-stack Services work on a laptop
    service_cidr: str = "10.96.0.0/12,fd00:10:96::/112"
    #: the host's controllers, scheduler and kubelets call its API server in process
    #: (``vkube.cluster.inprocess``); False: over loopback HTTPS with their certificates
    in_process_components: bool = True


class EmbeddedHostCluster:
    """``h = EmbeddedHostCluster(HostConfig(data_dir=...))``; ``await h.start()`` returns once
    the nodes exist and every loop runs; ``h.kubeconfig`` is a file for any client (the
    syncers of virtual clusters included); ``await h.stop()``."""

    def __init__(self, config: HostConfig) -> None:
        self.config = config
        # namespace tenants write Ingresses here with no syncer: the syncer's checks apply
        self.control_plane = ControlPlane(data_dir=config.data_dir, port=config.port,
                                          host=config.address, name=config.name,
                                          service_cidr=config.service_cidr,
                                          extra_admission=[TenantIngress()])
        self.ready = asyncio.Event()
        self.stopped = asyncio.Event()
        self.error: BaseException | None = None
        self.data_plane: EmbeddedHost | None = None
        self._client: Client | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return self.control_plane.url

    @property
    def port(self) -> int:
        return self.control_plane.port

    @property
    def kubeconfig(self) -> Path:
        """Written by the control plane once it serves."""
        return self.config.data_dir / "kubeconfig"

    @property
    def kubelet_port(self) -> int:
        return self.data_plane.kubelet_port if self.data_plane is not None else 0

    async def start(self) -> None:
        """Serve the API, start controllers and nodes; returns when all run (raises, with
        everything stopped, if they cannot)."""
        if self._task is not None:
            raise RuntimeError("the embedded host was already started")
        await self.control_plane.start()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="vkube embedded host")
        ready = asyncio.ensure_future(self.ready.wait())
        try:
            await asyncio.wait({ready, self._task}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            ready.cancel()
        if not self.ready.is_set():
            await self.stop()
            raise RuntimeError("the embedded host stopped during start-up") from self.error

    async def _run(self) -> None:
        from vkube.controllers.registry import default_controllers
        from vkube.controllers.runtime import ControllerManager
        from vkube.host.nodes import NodeTemplate
        from vkube.host.runner import EmbeddedHost
        from vkube.pki.cluster import CONTROLLER_MANAGER

        cfg = self.config
        try:
            self._client = self._connect(CONTROLLER_MANAGER, "vkube-host-controller-manager")
            assert self.control_plane.pki is not None
            mgr = ControllerManager(self._client, identity=f"vkube-host-{os.getpid()}",
                                    leader_election=False,
                                    root_ca_pem=self.control_plane.pki.ca_pem.decode(),
                                    token_issuer=self.control_plane.token_issuer,
                                    options={"csrsigning": {"ca": self.control_plane.pki.ca}})
            for ctrl in default_controllers():
                mgr.add(ctrl)
            self.data_plane = EmbeddedHost(
                self.url, pki=self.control_plane.pki, nodes=cfg.nodes, kubelet=cfg.kubelet,
                connect=self._connect, informers=mgr.informer,
                template=NodeTemplate(cpu=cfg.node_cpu, memory=cfg.node_memory, devices=cfg.node_devices))
            async with asyncio.TaskGroup() as tg:
                tg.create_task(mgr.run(), name="host controllers")
                tg.create_task(self._run_data_plane(self.data_plane), name="host nodes")
        except asyncio.CancelledError:
            raise
        except Exception as e:
            self.error = e.exceptions[0] if isinstance(e, BaseExceptionGroup) and len(e.exceptions) == 1 else e
            log.error("the embedded host stopped: a component failed", exc_info=self.error)
        finally:
            try:
                if self._client is not None:
                    with contextlib.suppress(Exception):
                        await self._client.close()
                await self.control_plane.stop()
            finally:
                self.ready.clear()
                self.stopped.set()

    def _connect(self, identity: "Identity", agent: str) -> "Client":
        """A client of the host's own API as ``identity``: in process (the same handler
        chain, the identity its certificate would give) unless ``in_process_components``
        is off, then HTTPS with that certificate."""
        from vkube.client import Client

        server = self.control_plane.server
        if self.config.in_process_components and server is not None:
            from vkube.cluster.inprocess import in_process_client

            return in_process_client(server, identity, url=self.url, user_agent=agent)
        return Client(self.url, user_agent=agent, ssl=self.control_plane.client_ssl(*identity))

    async def _run_data_plane(self, dp: "EmbeddedHost") -> None:
        await dp.start()
        try:
            if self.control_plane.ctx is not None:  # port-forward to its kubelet in process
                self.control_plane.ctx.kubelet_connector = dp.kubelet_connector
            self.ready.set()
            await dp.wait()
        finally:
            await dp.stop()

    async def stop(self) -> None:
        task = self._task
        if task is None:
            return
        if not task.done():
            task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise
        await self.stopped.wait()

    async def __aenter__(self) -> "EmbeddedHostCluster":
        await self.start()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.stop()
