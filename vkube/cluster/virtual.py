"""``VirtualCluster``: one virtual cluster — control plane, controller manager, syncer and (with
``sync.nodes.enableScheduler``) a virtual scheduler — built from one ``ClusterConfig`` and run
under one ``asyncio.TaskGroup``. Everything it holds hangs off the instance, so any number run
in one process on one event loop, each with its own registry, store, metrics and queues.

Failure policy: the components are one cluster, so they live and die together. When any
component raises, the task group cancels the others, the API server stops, ``error`` holds
the cause and ``stopped`` is set: no half-cluster keeps answering requests whose effects
nothing reconciles. The owner decides what next — ``vkube serve`` exits non-zero and its
supervisor restarts it; reconciliation is level-based, so a restart loses nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
from typing import TYPE_CHECKING, Any

from vkube.apiserver.admission.hostowned import HostOwned
from vkube.apiserver.admission.syncerowned import SyncerAnnotations
from vkube.apiserver.server import ControlPlane
from vkube.cluster.config import ClusterConfig, ClusterConfigError, HostConnection, HostFromFile
from vkube.pki.cluster import (APISERVER, CONTROLLER_MANAGER, DNS, LEADER_ELECTION, SCHEDULER, SYNCER,
                               Identity)

if TYPE_CHECKING:
    from vkube.api.meta import Obj
    from vkube.client import Client
    from vkube.client.pool import ConnectionPool
    from vkube.cluster.incluster import InClusterServices
    from vkube.controllers.runtime import ControllerManager
    from vkube.dns.server import ClusterDNS
    from vkube.host.scheduler import Scheduler
    from vkube.syncer.syncer import Syncer
    from vkube.store.base import Store
    from vkube.syncer.values import Values

log = logging.getLogger(__name__)

#: at most this long a cluster whose host is named is reported back only after its syncer's
#: first pass (``VirtualCluster.wait_shown``)
SHOWN_TIMEOUT = 45.0


class VirtualCluster:
    """``vc = VirtualCluster(config)``; ``await vc.start()`` (returns once the API answers);
    ``await vc.ready.wait()`` (every component runs with synced caches); ``await vc.stop()``.

    Also an async context manager (start on enter, stop on exit)."""

    def __init__(self, config: ClusterConfig, *, store: "Store | None" = None,
                 public_url: str | None = None, tls_server_name: str | None = None,
                 pod_api_port: int | None = None, host_pool: "ConnectionPool | None" = None) -> None:
        """``store`` and ``public_url``: shared mode (``vkube.cluster.shared``) — the cluster
        lives under its own prefix of the process's one store and is served by the shared
        listener at ``public_url`` instead of a port of its own; ``pod_api_port``: the port its
        pods reach it at (``default/kubernetes``; vkube.cluster.podapi); ``host_pool``: the
        process's host connections, shared with other clusters (each with its own
        credentials; ``vkube.client.pool``)."""
        self.config = config
        self.host_pool = host_pool
        self.pod_api_port = pod_api_port
        #: shared mode: the TLS server name the shared listener picks this cluster by
        self.tls_server_name = tls_server_name
        self.control_plane = ControlPlane(
            data_dir=config.data_dir, store_url=config.store_url, port=config.port,
            store_options=config.store_options, store=store, public_url=public_url,
            host=config.address, name=config.name, extra_sans=config.tls_sans,
            # a virtual cluster's Service IPs come from the host, copied back by the syncer
            allocate_service_ips=not config.virtual,
            encryption_config=config.encryption_config, audit_policy=config.audit_policy,
            audit_rotation=config.audit_rotation, token_auth_file=config.token_auth_file,
            admission_config=config.admission_config,
            pod_security_config=_pod_security(config),
            # replicas of one cluster (enableHA) share its CA, token key and encryption key
            share_keys=config.ha, max_requests_inflight=config.max_requests_inflight,
            max_mutating_requests_inflight=config.max_mutating_requests_inflight,
            host_owned=_host_owned(config),
            extra_admission=[syncer_annotations()] if config.virtual else [],
            **({} if config.requestheader_allowed_names is None
               else {"requestheader_allowed_names": config.requestheader_allowed_names}))
        self.control_plane.dial_policy = _dial_policy(config, shared=store is not None or public_url is not None)
        #: set once the API server answers (kubeconfig written, system namespaces there)
        self.serving = asyncio.Event()
        #: set once every component runs with synced caches
        self.ready = asyncio.Event()
        #: set once everything has stopped (after stop(), or after a component failed)
        self.stopped = asyncio.Event()
        #: why the cluster stopped on its own (None after a clean stop())
        self.error: BaseException | None = None
        self.controller_manager: ControllerManager | None = None
        self.syncer: Syncer | None = None
        self.scheduler: Scheduler | None = None
        #: the cluster DNS (virtual clusters only), bound once ``dns_address`` is set
        self.dns: ClusterDNS | None = None
        self.dns_address: str | None = None
        #: what the control plane writes into its own Services' Endpoints (this term's)
        self._in_cluster: InClusterServices | None = None
        #: the host as the syncer reaches it, once known
        self.host: HostConnection | None = config.host if isinstance(config.host, HostConnection) else None
        self._clients: list[Client] = []
        self._cm_client: Client | None = None
        self._task: asyncio.Task[None] | None = None
        #: HA: set while this replica leads (runs controllers, syncer, scheduler)
        self.leading = asyncio.Event()
        #: HA: how many leadership terms this replica has begun
        self.terms = 0
        self.elector: Any = None

    # -- what callers read -----------------------------------------------------------------

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def url(self) -> str:
        """The API server's address (``https://127.0.0.1:PORT``), valid once serving."""
        return self.control_plane.url

    @property
    def port(self) -> int:
        return self.control_plane.port

    @property
    def host_namespace(self) -> str:
        ns = self.host.namespace if self.host is not None else None
        if ns is None and isinstance(self.config.host, HostFromFile):
            ns = self.config.host.namespace
        return ns or self.config.default_host_namespace

    @property
    def values(self) -> "Values":
        from vkube.syncer.values import Values

        return self.config.values or Values()

    @property
    def scheduler_enabled(self) -> bool:
        """``sync.nodes.enableScheduler``: pods are placed here, on the synced nodes."""
        return self.config.virtual and self.values.sync.nodes.enable_scheduler

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Serve the API, then start the other components in the background. Returns as soon
        as the API answers: they are level-based, so starting them a moment later misses
        nothing (and ``vkube create`` returns sooner)."""
        if self._task is not None:
            raise RuntimeError(f"virtual cluster {self.name!r} was already started")
        from vkube.apiserver.admission.config import AdmissionConfigError
        from vkube.apiserver.audit import PolicyError
        from vkube.apiserver.encryption import ConfigError
        from vkube.apiserver.tokenauth import TokenFileError

        try:
            await self.control_plane.start()
        except (ConfigError, PolicyError, AdmissionConfigError, TokenFileError) as exc:
            await self.control_plane.stop()  # closes the store it had opened
            raise ClusterConfigError(str(exc)) from None
        self.serving.set()
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"vcluster {self.name}")

    async def wait_ready(self, timeout: float | None = None) -> None:
        """Until every component runs; raises the failure if the cluster stopped instead."""
        ready = asyncio.ensure_future(self.ready.wait())
        stopped = asyncio.ensure_future(self.stopped.wait())
        try:
            done, _ = await asyncio.wait({ready, stopped}, timeout=timeout,
                                         return_when=asyncio.FIRST_COMPLETED)
        finally:
            ready.cancel()
            stopped.cancel()
        if self.ready.is_set():
            return
        if self.stopped.is_set():
            raise RuntimeError(f"virtual cluster {self.name!r} stopped before it was ready") from self.error
        raise TimeoutError(f"virtual cluster {self.name!r} not ready within {timeout}s")

    @property
    def host_named(self) -> bool:
        """Is the host known as the API starts (resume, restart, wake; not named later by
        ``vkube create``)? Then the syncer starts at once. HA replicas run it only while they
        lead."""
        host = self.config.host
        if not self.config.virtual or self.config.ha or host is None:
            return False
        return isinstance(host, HostConnection) or (isinstance(host, HostFromFile) and host.path.exists())

    async def wait_shown(self, timeout: float = SHOWN_TIMEOUT) -> None:
        """With its host named from the start, until every component runs: the syncer first
        shows pods whose host pods went meanwhile as not running (``vkube.syncer.podgone``),
        so whoever is told the cluster is back reads that, never the status from before.
        Bounded: a host that stopped answering leaves it to later (logged)."""
        if not self.host_named:
            return
        try:
            await self.wait_ready(timeout=timeout)
        except TimeoutError:
            log.warning("virtual cluster %s: components not ready within %.0f s; reported back as "
                        "the API serves (pod statuses may lag until the syncer runs)", self.name, timeout)
        except RuntimeError:
            pass  # stopped: its failure is the caller's to see (``wait``)

    async def stop(self) -> None:
        """Stop every component and the API server; idempotent. Waits until all is closed:
        tasks, client sessions, the store's thread."""
        task = self._task
        if task is None:
            if self.control_plane.ctx is not None and not self.stopped.is_set():
                await self.control_plane.stop()  # started, but _run never began
                self.stopped.set()
            return
        if not task.done():
            task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise  # we are being cancelled ourselves
        if not self.stopped.is_set():  # cancelled before _run began: its finally never ran
            await self._close()
        await self.stopped.wait()

    async def wait(self) -> None:
        """Until the cluster stops (by stop() or a failure); re-raises a failure."""
        await self.stopped.wait()
        if self.error is not None:
            raise self.error

    async def __aenter__(self) -> "VirtualCluster":
        await self.start()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.stop()

    async def _run(self) -> None:
        try:
            async with asyncio.TaskGroup() as tg:
                started: list[asyncio.Event] = []  # one per component, set once it runs
                if self.config.ha:
                    # a replica: it is ready once it serves; the rest runs while it leads
                    tg.create_task(self._campaign(), name=f"{self.name}: leader election")
                elif self.config.controllers:
                    mgr = self._controller_manager()
                    tg.create_task(mgr.run(), name=f"{self.name}: controllers")
                    started.append(mgr.started)
                if self.config.virtual and not self.config.ha:
                    started.append(dns_ready := asyncio.Event())
                    tg.create_task(self._run_dns(dns_ready), name=f"{self.name}: dns")
                if self.config.virtual and not self.config.ha:
                    started.append(syncer_ready := asyncio.Event())
                    tg.create_task(self._run_syncer(syncer_ready), name=f"{self.name}: syncer")
                    if self.scheduler_enabled:
                        started.append(sched_ready := asyncio.Event())
                        tg.create_task(self._run_scheduler(sched_ready), name=f"{self.name}: scheduler")
                tg.create_task(self._mark_ready(started), name=f"{self.name}: ready")
                tg.create_task(self._serve_api(), name=f"{self.name}: api")
        except asyncio.CancelledError:
            raise
        except Exception as e:  # a component failed: the whole cluster stops (module docstring)
            self.error = e.exceptions[0] if isinstance(e, BaseExceptionGroup) and len(e.exceptions) == 1 else e
            log.error("virtual cluster %s stopped: a component failed", self.name, exc_info=self.error)
        finally:
            await self._close()

    @property
    def service_ip(self) -> str:
        """The address the control plane's listeners are reached at: the advertised address,
        else its bind address (loopback when it binds every address)."""
        if self.config.advertise_address:
            return self.config.advertise_address
        addr = self.config.address
        return "127.0.0.1" if addr in ("", "0.0.0.0") else "::1" if addr == "::" else addr

    async def _run_dns(self, ready: asyncio.Event) -> None:
        """The cluster DNS and the Services pods find it and the API by (``default/kubernetes``,
        ``kube-system/kube-dns``: vkube.cluster.incluster). Its address is written to
        ``DATA_DIR/dns`` for ``vkube describe``."""
        from vkube.cluster.incluster import InClusterServices, api_backend, dns_backend
        from vkube.dns.server import ClusterDNS

        self.dns = dns = ClusterDNS(self._client("vkube-dns", DNS), host=self.service_ip,
                                    port=self.config.dns_port, upstream=self.config.dns_upstream,
                                    informer_source=self._shared_informers())
        bound = asyncio.Event()
        async with asyncio.TaskGroup() as tg:
            tg.create_task(dns.run(bound.set), name=f"{self.name}: dns serve")
            await bound.wait()
            self.dns_address = dns.address
            if self.config.data_dir is not None:
                tmp = self.config.data_dir / "dns.tmp"
                tmp.write_text(dns.address + "\n")
                tmp.replace(self.config.data_dir / "dns")
            services = InClusterServices(self._client("vkube-apiserver", APISERVER), [
                api_backend(self.service_ip, self.pod_api_port or self.port), dns_backend(self.service_ip, dns.port)],
                informers=self._shared_informers())  # read and watched there: no polling
            self._in_cluster = services  # known to the syncer before the Endpoints are written
            tg.create_task(self._in_cluster_services(services), name=f"{self.name}: in-cluster services")
            await services.synced.wait()
            ready.set()

    async def _in_cluster_services(self, services: InClusterServices) -> None:
        try:
            await services.run()
        finally:  # the term ended: the next one's DNS listens on another port
            if self._in_cluster is services:
                self._in_cluster = None

    def _own_endpoints(self, namespace: str, name: str) -> list[Obj] | None:
        """The subsets this term's control plane writes for ``default/kubernetes`` or
        ``kube-system/kube-dns``; None before its DNS is bound (the syncer waits for them)."""
        from vkube.cluster.incluster import desired_subsets

        services = self._in_cluster
        for b in services.backends if services is not None else ():
            if (b.namespace, b.name) == (namespace, name):
                return desired_subsets(b)
        return None

    async def _campaign(self) -> None:
        """HA (``enableHA``): every replica serves the API from the shared store, but the
        controllers, the syncer, the cluster DNS and the scheduler run on one replica at a
        time — the holder of the ``vkube-leader`` Lease, renewed every 2 s; when it dies, another replica takes the
        lease once it expires (10 s) and starts them. A leader that cannot renew within 7 s
        stops them, 3 s before the lease can pass on (as client-go's leaderelection; a process
        frozen longer than that can overlap a new leader briefly, and then their writes are
        still guarded by resourceVersion). Level-based components pick up where the old leader
        left off."""
        from vkube.controllers.leader import LeaderElector

        elector = LeaderElector(self._client("vkube-leader-election", LEADER_ELECTION), namespace="kube-system",
                                name="vkube-leader", identity=self.identity,
                                lease_duration=10.0, renew_deadline=7.0, retry_period=2.0)
        self.elector = elector
        while True:
            await elector.lead(self._lead)

    async def _lead(self) -> None:
        """One leadership term: every component, fresh, until cancelled or one fails."""
        self.terms += 1
        self.leading.set()
        if self.config.controllers and self._cm_client is None:
            self._cm_client = self._client("vkube-controller-manager", CONTROLLER_MANAGER)  # kept across terms
        mark = len(self._clients)  # clients made for this term are closed when it ends
        try:
            async with asyncio.TaskGroup() as tg:
                if self.config.controllers:
                    mgr = self._controller_manager(leader_election=False)
                    tg.create_task(mgr.run(), name=f"{self.name}: controllers")
                if self.config.virtual:
                    # the cluster DNS publishes the API's Endpoints: one replica at a time
                    tg.create_task(self._run_dns(asyncio.Event()), name=f"{self.name}: dns")
                    tg.create_task(self._run_syncer(asyncio.Event()), name=f"{self.name}: syncer")
                    if self.scheduler_enabled:
                        tg.create_task(self._run_scheduler(asyncio.Event()),
                                       name=f"{self.name}: scheduler")
        finally:
            self.leading.clear()
            term_clients, self._clients[mark:] = self._clients[mark:], []
            for c in term_clients:
                with contextlib.suppress(Exception):
                    await c.close()
            log.warning("virtual cluster %s: %s no longer leads", self.name, self.identity)

    async def _serve_api(self) -> None:
        """The API server serves until ``stop()`` cancels the group: this keeps the group open
        when nothing else runs (``--no-controllers`` without a host), so ``stopped`` means
        stopped."""
        await asyncio.get_running_loop().create_future()

    async def _mark_ready(self, started: list[asyncio.Event]) -> None:
        for event in started:
            await event.wait()
        self.ready.set()
        log.info("virtual cluster %s ready at %s", self.name, self.url)

    async def _close(self) -> None:
        try:
            for c in self._clients:
                with contextlib.suppress(Exception):
                    await c.close()
            self._clients.clear()
            await self.control_plane.stop()
        finally:
            if self.config.data_dir is not None and self.dns_address is not None:
                with contextlib.suppress(OSError):
                    (self.config.data_dir / "dns").unlink()
            self.ready.clear()
            self.stopped.set()

    # -- components --------------------------------------------------------------------------

    def _client(self, component: str, identity: "Identity") -> "Client":
        """A client of this cluster's API with the component's own identity: in process
        (the same handler chain, the identity its certificate would give), or over HTTPS
        with that certificate when ``in_process_components`` is off."""
        from vkube.client import Client

        agent = f"{component}/{self.name}"
        server = self.control_plane.server
        c: Client
        if self.config.in_process_components and server is not None:
            from vkube.cluster.inprocess import in_process_client

            # APF (and shared mode's seat inside it) runs in the handler chain: the same here
            c = in_process_client(server, identity, url=self.url, user_agent=agent)
        else:
            c = Client(self.url, user_agent=agent, ssl=self.control_plane.client_ssl(*identity),
                       server_hostname=self.tls_server_name)
        self._clients.append(c)
        return c

    @property
    def identity(self) -> str:
        """This replica's leader-election identity."""
        return self.config.identity or f"{socket.gethostname()}-{os.getpid()}-{self.name}"

    def _controller_manager(self, leader_election: bool | None = None) -> "ControllerManager":
        from vkube.controllers.registry import default_controllers
        from vkube.controllers.runtime import ControllerManager

        if leader_election is None:
            leader_election = self.config.leader_election
        if self._cm_client is None:
            self._cm_client = self._client("vkube-controller-manager", CONTROLLER_MANAGER)
        assert self.control_plane.pki is not None
        mgr = ControllerManager(self._cm_client, identity=self.identity,
                                leader_election=leader_election,
                                # the kube-root-ca.crt every namespace gets (pods verify the API)
                                root_ca_pem=self.control_plane.pki.ca_pem.decode(),
                                token_issuer=self.control_plane.token_issuer,
                                # CertificateSigningRequests are signed by this cluster's CA
                                options={"csrsigning": {"ca": self.control_plane.pki.ca}})
        for ctrl in default_controllers():
            mgr.add(ctrl)
        self._add_no_host(mgr)
        self.controller_manager = mgr
        return mgr

    def _add_no_host(self, mgr: "ControllerManager") -> None:
        """Without a host (yet), pods say why they stay Pending (``controllers.nohost``)."""
        from vkube.controllers.nohost import NoHostController

        source = self.config.host
        if isinstance(source, HostConnection):
            return
        ctrl = mgr.add(NoHostController)
        assert isinstance(ctrl, NoHostController)
        if isinstance(source, HostFromFile):
            ctrl.why = f"the host cluster this virtual cluster runs pods on is not named yet (waiting for {source.path})"
        else:
            ctrl.why = ("this control plane has no host cluster to run them (`vkube serve` without "
                        "--host-kubeconfig); serve it with --host-kubeconfig, or run `vkube create NAME`")
        ctrl.active = lambda: self.host is None

    def host_client(self) -> Client:
        """A client of the host as the syncer reaches it (over the shared pool if any)."""
        from vkube.client import load_kubeconfig

        assert self.host is not None
        if self.host_pool is not None:
            return self.host_pool.client(self.host.kubeconfig, self.host.context)
        return load_kubeconfig(self.host.kubeconfig, self.host.context)

    async def _run_syncer(self, ready: asyncio.Event) -> None:
        from vkube.syncer.syncer import Syncer

        if isinstance(self.config.host, HostFromFile):
            self.host = await wait_for_host_file(self.config.host, self.name)
        assert self.host is not None
        host = self.host_client()
        self._clients.append(host)
        # pods reach the API at the ClusterIP of default/kubernetes; the embedded host routes
        # no ClusterIPs, so there they get the control plane's own (loopback) address
        loopback = self.host.kind == "embedded"
        assert self.control_plane.pki is not None
        self.syncer = Syncer(name=self.name, virtual=self._client("vkube-syncer", SYNCER), host=host,
                             virtual_pki=self.control_plane.pki,
                             host_namespace=self.host_namespace, values=self.values,
                             kubelet_port=self.config.kubelet_port,
                             kube_service_host=self.service_ip if loopback else "",
                             kube_service_port=(self.pod_api_port or self.port) if loopback else 443,
                             in_cluster_api=True, cluster_dns=True,
                             virtual_informers=self._shared_informers(),
                             control_plane_endpoints=self._own_endpoints)
        syncer = self.syncer
        if self.control_plane.ctx is not None:  # metrics.k8s.io answers from the host's metrics
            from vkube.syncer.metrics import HostUsage

            self.control_plane.ctx.usage_source = HostUsage(syncer.ctx)

        async def mark() -> None:
            await syncer.wait_ready()
            # the API server reaches pods through this syncer's kubelet proxy only
            if self.control_plane.ctx is not None:
                self.control_plane.ctx.kubelet_endpoint = ("127.0.0.1", syncer.kubelet_port)
                self.control_plane.ctx.kubelet_connector = syncer.kubelet.connect
            ready.set()

        async with asyncio.TaskGroup() as tg:
            tg.create_task(syncer.run(), name=f"{self.name}: syncer run")
            tg.create_task(mark())
            if self.values.expose:
                from vkube.cluster.expose import Exposer

                exposer = Exposer(host, namespace=self.host_namespace, vc=self.name,
                                  api_ip=self.service_ip, api_port=self.port,
                                  scheme=self.url.split("://", 1)[0], embedded=loopback,
                                  data_dir=self.config.data_dir,
                                  on_address=self.control_plane.add_serving_names)
                await syncer.wait_ready()  # the host namespace exists
                tg.create_task(exposer.run(asyncio.Event()), name=f"{self.name}: expose")
            else:  # what an earlier `expose: true` made goes (read from the synced cache)
                from vkube.api import errors
                from vkube.client.resources import SERVICES as _SERVICES
                from vkube.cluster.expose import SERVICE_NAME, unexpose

                await syncer.wait_ready()
                cache = syncer.ctx.informers.existing_host(_SERVICES)
                if cache is not None:
                    with contextlib.suppress(errors.StatusError, OSError):
                        await unexpose(host, namespace=self.host_namespace, vc=self.name,
                                       known=cache.get(SERVICE_NAME, self.host_namespace))

    def _shared_informers(self) -> Any:
        """One cache per resource per cluster: the syncer, scheduler and cluster DNS read the
        controller manager's virtual-side informers, which run from the manager's start
        whether or not it leads (only its controllers wait for leadership)."""
        mgr = self.controller_manager
        if mgr is None:
            return None
        return mgr.informer

    async def _run_scheduler(self, ready: asyncio.Event) -> None:
        """The virtual cluster's own scheduler (``enableScheduler``): the embedded host's
        scheduler over this cluster's pods and synced nodes. The syncer creates a host pod
        only once this has bound the virtual one, and keeps its node."""
        from vkube.client.resources import NODES, PODS
        from vkube.controllers.informer import Informer
        from vkube.host.scheduler import Scheduler

        client = self._client("vkube-scheduler", SCHEDULER)
        shared = self._shared_informers()  # the manager's caches: one per resource per cluster
        if shared is not None:
            pods, nodes = shared(PODS), shared(NODES)
        else:
            pods, nodes = Informer(client, PODS), Informer(client, NODES)
        self.scheduler = Scheduler(client, pods, nodes, name="default-scheduler")
        async with asyncio.TaskGroup() as tg:
            if shared is None:  # else the controller manager runs them
                tg.create_task(pods.run(), name=f"{self.name}: scheduler pods")
                tg.create_task(nodes.run(), name=f"{self.name}: scheduler nodes")
            await pods.wait_synced()
            await nodes.wait_synced()
            tg.create_task(self.scheduler.run(), name=f"{self.name}: scheduler run")
            ready.set()

    # -- removal -------------------------------------------------------------------------------

    async def remove_from_host(self, *, delete_namespace: bool = True) -> int:
        """What ``vkube delete`` does on the host, for a stopped cluster: delete every object
        the syncer created there and, if the syncer created the host namespace, the
        namespace. Returns how many objects were deleted. Stop first, or the syncer
        recreates what this deletes."""
        from vkube.api import errors
        from vkube.client.resources import NAMESPACES
        from vkube.syncer.syncer import cleanup_host
        from vkube.syncer.translate import LABEL_MANAGED_BY

        if not self.stopped.is_set() and self._task is not None:
            raise RuntimeError(f"stop virtual cluster {self.name!r} before removing it from its host")
        if self.host is None:
            return 0
        async with self.host_client() as hc:
            n = await cleanup_host(hc, self.host_namespace, self.name, grace_period_seconds=0)
            if delete_namespace:
                try:
                    ns = await hc.get(NAMESPACES, self.host_namespace)
                except errors.NotFound:
                    return n
                if (ns["metadata"].get("labels") or {}).get(LABEL_MANAGED_BY) == self.name:
                    with contextlib.suppress(errors.NotFound):
                        await hc.delete(NAMESPACES, self.host_namespace,
                                        propagation_policy="Background")
        return n


async def wait_for_host_file(source: HostFromFile, name: str) -> HostConnection:
    """Poll until ``source.path`` exists and return the host it names (its namespace wins
    over ``source.namespace``)."""
    told = False
    while True:
        try:
            doc = json.loads(source.path.read_text())
            break
        except FileNotFoundError:
            pass
        if not told:
            log.info("%s: syncer waiting for the host to be named in %s", name, source.path)
            told = True
        await asyncio.sleep(source.poll_seconds)
    host = HostConnection(kubeconfig=doc["kubeconfig"], context=doc.get("context") or None,
                          namespace=doc.get("namespace") or source.namespace,
                          kind=doc.get("kind") or "kubeconfig")
    log.info("%s: syncer host %s (context %s), namespace %s", name, host.kubeconfig,
             host.context or "current", host.namespace or f"vkube-{name}")
    return host


def _pod_security(config: ClusterConfig) -> dict[str, Any] | None:
    """The API server's PodSecurityConfiguration: the values' ``controlPlane.podSecurity`` if
    set; otherwise, with isolation, the isolation level enforced (and warned, audited) by
    default, so a violating pod is refused when it is created, with PodSecurity's own message,
    as vcluster's ``podSecurityStandard`` does — not accepted and then left unsynced. A
    namespace labelled otherwise by the tenant still meets the syncer's check."""
    values = config.values
    if values is None:
        return None
    doc = values.control_plane.pod_security.document()
    level = values.isolation.pod_security_standard
    if doc is not None or not values.isolation.enabled or level == "privileged":
        return doc
    return {"apiVersion": "pod-security.admission.config.k8s.io/v1",
            "kind": "PodSecurityConfiguration",
            "defaults": {"enforce": level, "enforce-version": "latest", "audit": level,
                         "audit-version": "latest", "warn": level, "warn-version": "latest"},
            "exemptions": {}}


def syncer_annotations() -> SyncerAnnotations:
    """A virtual cluster's annotations only its syncer writes (tenants' writes refused)."""
    from vkube.syncer.storage import ANN_HOST_PV

    return SyncerAnnotations({("", "persistentvolumes"): (ANN_HOST_PV,)}, writer=SYNCER[0])


def _host_owned(config: ClusterConfig) -> HostOwned | None:
    """With sync.resourceclaims the host's scheduler allocates devices, only from the host's
    DeviceClasses and ResourceSlices: inside they are the syncer's copies, and a tenant's own
    would be accepted and then silently replaced — so tenants' writes are refused."""
    if not config.virtual or config.values is None or not config.values.sync.resourceclaims.enabled:
        return None
    return HostOwned(
        (("resource.k8s.io", "deviceclasses"), ("resource.k8s.io", "resourceslices")), writer=SYNCER[0],
        why="this virtual cluster's DeviceClasses and ResourceSlices are copies of the host cluster's "
            "(sync.resourceclaims): the host's scheduler allocates devices only from those; "
            "ask the host's admin to create it on the host")


def _dial_policy(config: ClusterConfig, *, shared: bool) -> Any:
    """A tenant's webhooks and aggregated APIs never reach this machine's own addresses, but
    for the targets its owner published (``sync.pods.portForwardTargets``; none in shared mode
    nor with isolation — the values refuse them there too). A standalone control plane
    (``vkube serve`` without a host: its user is this machine's) keeps the open policy."""
    from vkube.apiserver.dialpolicy import DialPolicy
    from vkube.syncer.values import port_forward_targets

    values = config.values
    if not config.virtual and not shared:
        return DialPolicy()
    if values is None or shared or values.isolation.enabled or values.control_plane.mode == "shared":
        return DialPolicy(restricted=True)
    return DialPolicy(restricted=True, published=port_forward_targets(values))
