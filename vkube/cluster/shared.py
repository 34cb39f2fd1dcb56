"""Shared mode (``vkube serve --shared``): many virtual clusters in one process, on one store
and one listening port.

- **One store**, one key prefix per cluster (``/clusters/NAME``, ``PrefixedStore``): a
  cluster's API server can neither read, write nor watch another's keys.
- **One listener**: ``https://HOST:PORT/clusters/NAME/...`` is routed, with the prefix cut, to
  that cluster's own ``APIServer`` — its own registry, CRDs, RBAC, admission, watches. Any
  other path, or a cluster this process does not serve, is the API's plain 404.
- **TLS by server name**: each cluster keeps its own CA and serving certificate; the listener
  picks them by SNI (``NAME.shared.vkube``, the kubeconfig's ``tls-server-name``), so a client
  verifies the cluster it asked for; a request whose path names another cluster than its
  server name is a 404. Credentials are checked by the path's cluster against its own CA and
  token keys, so no certificate or token of one cluster is accepted by another.
- **Fairness** (``FairQueue``): per-cluster concurrency limits and round-robin queues, taken
  after the cluster's own API Priority and Fairness admitted a request; excess
  gets 429 with ``Retry-After``.
- **In-cluster API**: a cluster that syncs pods also answers on a loopback port of its own
  (``vkube.cluster.podapi``), which its pods' ``KUBERNETES_SERVICE_PORT`` and the
  ``default/kubernetes`` Endpoints name: in-cluster clients send no path and no server name.
- **Components in process**: each cluster's controllers, DNS, scheduler and the virtual side
  of its syncer call its own API server in process (``vkube.cluster.inprocess``: their own
  identities, the same APF, fairness seat, RBAC and admission); a cluster put to sleep leaves
  nothing reachable behind (tests: ``test_a_sleeping_synced_cluster_is_collected``).
- **One store subscription per cluster**: every in-process watcher of a cluster (its API
  server's watch streams, admission caches, authorizers) reads a cursor of the cluster's watch
  fan-out (``vkube.store.fanout``), not a store watch and a task of its own (tests:
  ``tests/shared/test_watch_fanout.py``). Informers with nothing to watch could park there
  until their first object (``Informer.start``), but parking is off (``Informer.PARKING``:
  a woken pods informer lost updates).
- **Watch and stream caps**: tenants' open watches, those held while asleep, and their
  exec/attach/port-forward/``logs -f`` streams are capped per cluster and per user
  (``controlPlane.watches``/``streams``, ``vkube.cluster.tenantcaps``): 429 beyond.
- **Connection limits**: per process and client address at accept, per cluster by server
  name after the handshake, with handshake and idle timeouts (``vkube.cluster.listener``).
- **Per cluster, one process**: serving certificates renewed by one loop
  (``sharedcerts``), log lines attributed by task context into each cluster's own file
  (``clusterlog``), a sleeping cluster's freed memory returned to the OS (``memory``).
- **Sleep and wake**: a cluster with ``sleep.afterInactivity`` that saw no API request from a
  tenant and no workload change for that long is stopped, its synced host objects removed and
  its in-memory state dropped; its data stays in the store. The next request with a
  credential the cluster would accept starts it again (``wakeauth``; answered once its API
  serves) and the syncer puts the host workloads back. Sleep ends
  tenants' watches as a timeout does; their re-watch from a version the cluster had reached
  is held without waking it, until it wakes or the watch's timeout passes
  (``vkube.cluster.sleepwatch``).

Membership is declared by files, so the CLI needs no client for it: ``MEMBERS/NAME.json`` (in
``DATA_DIR/members``) names a cluster; ``reconcile()`` (at start and on SIGHUP) starts the
new ones, stops the ones whose file is gone, and applies a changed ``desired``
(``Running``/``Sleeping``) when its ``generation`` moved. Per cluster the server writes, in
the cluster's own data dir: ``ready`` (its URL, while it serves or sleeps), ``sleeping``
(while asleep) and ``error`` (why it could not start)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import ssl
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web

from vkube.api import errors
from vkube.apiserver import http as api_http
from vkube.apiserver.server import audit_id_of
from vkube.apiserver.watch import WATCH_STOPPERS
from vkube.client.pool import ConnectionPool
from vkube.cluster.clusterlog import ClusterLogs, attributed
from vkube.cluster.config import ClusterConfig, ClusterConfigError, HostConnection, HostFromFile
from vkube.cluster import sharedcerts, sleepwatch, tenantcaps, wakeauth, wakestreams
from vkube.cluster.fairness import FairnessConfig, FairQueue
from vkube.cluster.listener import DEFAULT_PER_CLUSTER, ConnectionLimiter, ListenerLimits
from vkube.cluster.memory import Reclaimer
from vkube.cluster.podapi import PodAPIListeners
from vkube.cluster.virtual import VirtualCluster
from vkube.cluster.watchcaps import WatchCount, WatchLimits
from vkube.store import open_store
from vkube.store.base import KeyNotFound, Store
from vkube.store.prefixed import PrefixedStore

if TYPE_CHECKING:
    from vkube.syncer.values import Values

log = logging.getLogger(__name__)

RUNNING, SLEEPING, STARTING, FAILED = "Running", "Sleeping", "Starting", "Failed"
#: a member file asking for its cluster's data to be removed from the shared store
DELETED = "Deleted"
#: a member file asking for a snapshot to be restored under its prefix (cluster not served)
RESTORE = "Restore"
#: writes that are housekeeping, not a changing workload: node heartbeats, leases, events,
#: endpoints follow-ups (store keys are /GROUP/RESOURCE/...)
_HOUSEKEEPING = ("/core/nodes/", "/coordination.k8s.io/leases/", "/core/events/",
                 "/events.k8s.io/events/", "/core/endpoints/", "/discovery.k8s.io/endpointslices/")
#: how long sleep lets a cluster's requests in flight finish (its tenants' watches end at once)
SLEEP_GRACE = 5.0
#: the user agents of a cluster's own components (``vkube-syncer/NAME`` ...): their requests
#: are not a tenant's activity
_COMPONENT_AGENT = "vkube-"


def _set_event() -> asyncio.Event:
    event = asyncio.Event()
    event.set()
    return event


@dataclass
class Member:
    """One cluster of the shared process and what its member file asked for."""

    name: str
    config: ClusterConfig
    generation: int = 0
    desired: str = RUNNING
    state: str = STARTING
    vc: VirtualCluster | None = None
    store: PrefixedStore | None = field(default=None, repr=False)
    last_active: float = field(default_factory=time.monotonic)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock, repr=False)
    #: how long the last wake took (seconds), for ``describe`` and the benchmark
    last_wake: float | None = None
    #: when it last woke (monotonic): pod streams wait for their pods in the minutes after
    woke_at: float | None = None
    #: the TLS context the shared listener serves this cluster with (its own CA and serving
    #: certificate), chosen by SNI; kept while asleep so a request can still reach it
    ssl: ssl.SSLContext | None = field(default=None, repr=False)
    #: the certificate (PEM) ``ssl`` holds: renewal reloads it when the file differs
    ssl_cert: bytes | None = field(default=None, repr=False)
    watcher: asyncio.Task[None] | None = field(default=None, repr=False)
    #: the server's task waking the cluster (requests wait on it; their cancellation cannot
    #: leave a half-started cluster behind)
    waking: asyncio.Task[float] | None = field(default=None, repr=False)
    #: request handlers in flight (watches above all): ended when the cluster stops, as
    #: closing its own listener would end them in dedicated mode
    requests: set[asyncio.Task[Any]] = field(default_factory=set, repr=False)
    #: where this cluster's own log lines go (``vkube logs NAME``; default DATA_DIR/vkube.log)
    log_file: Path | None = None
    #: clear from a wake until its syncer has shown pods whose host pods went during the sleep
    #: as not running (``VirtualCluster.wait_shown``): tenants' requests wait for it
    shown: asyncio.Event = field(default_factory=_set_event, repr=False)
    showing: asyncio.Task[None] | None = field(default=None, repr=False)
    #: watches held while it sleeps, and the decisions that let them be (vkube.cluster.sleepwatch)
    parking: sleepwatch.Parking = field(default_factory=sleepwatch.Parking, repr=False)
    #: handlers of parked watches → their requests (not ``requests``: sleep keeps them, stop
    #: and remove end them, and so does the sleep loop once their client has gone)
    parked: dict[asyncio.Task[Any], web.Request] = field(default_factory=dict, repr=False)
    #: the store readers of tenants' watches: sleep ends those watches as a timeout does
    watches: sleepwatch.TenantWatches = field(default_factory=sleepwatch.TenantWatches, repr=False)
    #: tenants' watches open at its server, and held while it sleeps (vkube.cluster.watchcaps)
    open_watches: WatchCount = field(default_factory=lambda: WatchCount("open watches"), repr=False)
    held_watches: WatchCount = field(default_factory=lambda: WatchCount("held watches"), repr=False)
    #: tenants' exec/attach/port-forward/log -f streams (vkube.cluster.tenantcaps), and their
    #: handlers → requests (one whose client left is ended, as a watch is)
    streams: WatchCount = field(default_factory=lambda: WatchCount("streams"), repr=False)
    open_streams: dict[asyncio.Task[Any], web.Request] = field(default_factory=dict, repr=False)
    #: set by the shared server: reads a key of this cluster's store while it sleeps
    read_key: wakeauth.Reader | None = field(default=None, repr=False)

    def end_requests(self) -> None:
        current = asyncio.current_task()
        for task in list(self.requests):
            if task is not current:
                task.cancel()
        self.requests.clear()

    def end_parked(self, *, only_gone: bool = False) -> None:
        for task, request in list(self.parked.items()):
            if not only_gone or sleepwatch.gone(request):
                task.cancel()
                self.parked.pop(task, None)

    def end_gone_watches(self) -> None:
        """End tenants' open watches whose client went away: aiohttp does not cancel their
        handlers, and a quiet watch would otherwise hold its place (and memory) until its
        timeout, half an hour or more."""
        for task, (inner, _, _) in list(self.watches.open.items()):
            if sleepwatch.gone(inner):
                task.cancel()
        for task, request in list(self.open_streams.items()):  # `logs -f` of a quiet pod, too
            if sleepwatch.gone(request):
                task.cancel()

    @property
    def sleep_after(self) -> float | None:
        values = self.config.values
        return values.sleep_after if values is not None else None

    def touch(self) -> None:
        self.last_active = time.monotonic()

    @property
    def watch_limits(self) -> WatchLimits:
        """``controlPlane.watches`` of its values."""
        values = self.config.values
        if values is None:
            return WatchLimits()
        caps = values.control_plane.watches
        return WatchLimits(per_cluster=caps.max_per_cluster, per_credential=caps.max_per_credential)

    @property
    def stream_limits(self) -> WatchLimits:
        """``controlPlane.streams`` of its values (per user as ``per_credential``)."""
        values = self.config.values
        if values is None:
            from vkube.syncer.values import Streams

            caps = Streams()
        else:
            caps = values.control_plane.streams
        return WatchLimits(per_cluster=caps.max_per_cluster, per_credential=caps.max_per_user)

    @functools.cached_property
    def wake_credentials(self) -> wakeauth.WakeCredentials:
        from vkube.apiserver.encryption import CONFIG_FILE

        data = self.config.data_dir
        encryption = self.config.encryption_config or (data / CONFIG_FILE if data is not None else None)
        return wakeauth.WakeCredentials(data / "pki" if data is not None else None, read=self.read_key,
                                        encryption_config=encryption,
                                        token_file=self.config.token_auth_file)


class SharedServer:
    """``SharedServer(data_dir)``; ``await start()``; ``await reconcile()`` after member files
    change; ``await stop()``. ``add``/``remove``/``sleep``/``wake`` drive it directly (tests,
    benchmarks)."""

    def __init__(self, data_dir: Path, *, address: str = "127.0.0.1", port: int = 0,
                 store_url: str | None = None, fairness: FairnessConfig | None = None,
                 sleep_check: float = 5.0, bookmark_interval: float = 60.0,
                 renew_interval: float = 3600.0, limits: ListenerLimits | None = None) -> None:
        self.data_dir = Path(data_dir)
        self.address, self.port = address, port
        self.store_url = store_url
        self.fair = FairQueue(fairness)
        self.members: dict[str, Member] = {}
        #: one pool of host connections for every cluster's syncer (each its own credentials)
        self.host_pool: ConnectionPool | None = ConnectionPool()
        self.store: Store | None = None
        self._runner: web.AppRunner | None = None
        self._sleeper: asyncio.Task[None] | None = None
        self._sleep_check = sleep_check
        #: idle watches get a BOOKMARK this often (kube-apiserver: about a minute)
        self.bookmark_interval = bookmark_interval
        self._reconciling = asyncio.Lock()
        self._default_ssl: ssl.SSLContext | None = None
        #: id(a cluster's TLS context) → its name: which cluster a connection's SNI chose
        self._sni_names: dict[int, str] = {}
        #: paused clusters (removed, not purged) → their TLS context: a client of one gets its
        #: own certificate and a 503 naming ``vkube resume``, not a certificate error
        self._paused: dict[str, ssl.SSLContext] = {}
        self._dirty = asyncio.Event()
        self._reconciler: asyncio.Task[None] | None = None
        #: how often every cluster's serving certificate is checked (vkube.cluster.sharedcerts)
        self.renew_interval = renew_interval
        self._renewer: asyncio.Task[None] | None = None
        #: each cluster's in-cluster API port (what its pods' KUBERNETES_SERVICE_PORT names)
        self.pod_api = PodAPIListeners(address)
        #: each cluster's records also go to its own log file (vkube.cluster.clusterlog)
        self.logs = ClusterLogs()
        #: a sleeping cluster's freed memory goes back to the OS (vkube.cluster.memory)
        self.reclaimer = Reclaimer()
        #: connections to the process, per client address and per cluster (vkube.cluster.listener)
        self.connections = ConnectionLimiter(limits or ListenerLimits(), cluster_of=self._cluster_of,
                                             per_cluster=self._connections_per_cluster)

    # -- addresses -------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        host = "127.0.0.1" if self.address in ("", "0.0.0.0") else self.address
        return f"https://{host}:{self.port}"

    def url_of(self, name: str) -> str:
        return f"{self.base_url}/clusters/{name}"

    @property
    def members_dir(self) -> Path:
        return self.data_dir / "members"

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        from vkube.apiserver.server import MAX_HEADER_FIELD, _free_port_socket

        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.members_dir.mkdir(exist_ok=True)
        url = self.store_url if self.store_url and self.store_url != "sqlite" else \
            str(self.data_dir / "state.db")
        self.store = open_store(url)
        await self.store.start()
        self.store.start_auto_compaction(300.0)
        self.logs.attach()
        app = web.Application(client_max_size=api_http.MAX_BODY * 4)
        app.router.add_route("*", "/{tail:.*}", self.dispatch)
        app.on_response_prepare.append(_echo_audit_id)
        app.on_response_prepare.append(sleepwatch.record_grant)
        app.on_response_prepare.append(_count_activity)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False,
                                     shutdown_timeout=1.0, max_field_size=MAX_HEADER_FIELD,
                                     keepalive_timeout=self.connections.limits.idle_timeout)
        await self._runner.setup()
        assert self._runner.server is not None
        self.connections.attach(self._runner.server)
        sock = _free_port_socket(self.address, self.port)
        self.port = sock.getsockname()[1]
        await self.connections.serve(sock, self._tls_context())
        self._sleeper = asyncio.get_running_loop().create_task(self._sleep_idle(),
                                                               name="shared: sleep idle")
        self._renewer = asyncio.get_running_loop().create_task(self._renew_certificates(),
                                                               name="shared: certificates")

    def _tls_context(self) -> ssl.SSLContext:
        """The listener's context: the shared server's own certificate (health checks, clients
        without a server name), switched per connection to a cluster's by SNI."""
        from vkube.pki.cluster import ClusterPKI
        from vkube.pki.tls import ServingCertificate

        pki_dir = self.data_dir / "pki"
        pki = ClusterPKI(pki_dir, name="vkube-shared")
        serving = ServingCertificate(pki.ca, pki_dir)
        serving.ensure(["127.0.0.1", "localhost", "::1"])
        assert serving.context is not None
        self._default_ssl = serving.context
        self._default_ssl.sni_callback = self._sni
        return self._default_ssl

    def _cluster_of(self, sslobj: ssl.SSLObject | None) -> str:
        """The cluster a connection's server name chose ("": none, or a paused one)."""
        return self._sni_names.get(id(sslobj.context), "") if sslobj is not None else ""

    def _connections_per_cluster(self, name: str) -> int:
        """``controlPlane.connections.maxPerCluster`` of ``name`` (connections without a
        server name share the default)."""
        member = self.members.get(name)
        values = member.config.values if member is not None else None
        return values.control_plane.connections.max_per_cluster if values is not None \
            else DEFAULT_PER_CLUSTER

    def _sni(self, sslobj: ssl.SSLObject, server_name: str | None, _ctx: ssl.SSLContext) -> None:
        if not server_name or not server_name.endswith(SNI_SUFFIX):
            return None
        member = self.members.get(server_name[:-len(SNI_SUFFIX)])
        if member is None:
            paused = self._paused.get(server_name[:-len(SNI_SUFFIX)])
            if paused is not None:
                sslobj.context = paused  # answered 503 "paused" by dispatch
            return None  # else the default certificate: the client's own CA refuses it
        ctx = member.ssl or _context_from_files(member)
        if ctx is not None:
            if member.ssl is None:
                member.ssl = ctx
                sharedcerts.reload(member)  # records the certificate it holds
            self._sni_names[id(ctx)] = member.name
            sslobj.context = ctx
        return None

    async def stop(self) -> None:
        for task in (self._sleeper, self._reconciler, self._renewer):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await self.reclaimer.close()
        # a cluster asleep stays asleep across a restart (its ``sleeping`` marker is kept)
        results = await asyncio.gather(*(self._stop_member(m, unready=True, keep_sleeping=True)
                                         for m in list(self.members.values())),
                                       return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                log.error("shared: a cluster did not stop cleanly", exc_info=result)
        self.members.clear()
        await self.connections.close()
        await self.pod_api.close_all()
        if self.host_pool is not None:
            await self.host_pool.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self.store is not None:
            await self.store.close()
            self.store = None
        self.logs.detach()

    # -- membership --------------------------------------------------------------------------

    def request_reconcile(self) -> None:
        """Re-read the member files soon (SIGHUP): requests that come while a pass runs are
        folded into one more pass."""
        self._dirty.set()
        if self._reconciler is None or self._reconciler.done():
            self._reconciler = asyncio.get_running_loop().create_task(
                self._reconcile_loop(), name="shared: reconcile")

    async def _reconcile_loop(self) -> None:
        while self._dirty.is_set():
            self._dirty.clear()
            try:
                await self.reconcile()
            except Exception:
                log.exception("shared: reconcile failed")

    async def reconcile(self) -> None:
        """Make the running set match the member files (level-based: run it any time)."""
        async with self._reconciling:
            wanted: dict[str, dict[str, Any]] = {}
            for path in sorted(self.members_dir.glob("*.json")):
                try:
                    wanted[path.stem] = json.loads(path.read_text())
                except (OSError, ValueError) as exc:
                    log.error("shared: member file %s unreadable: %s", path, exc)
            for name in [n for n in self.members if n not in wanted]:
                await self.remove(name)
            for name, doc in wanted.items():
                if doc.get("desired") == DELETED:
                    await self.purge(name)
                    (self.members_dir / f"{name}.json").unlink(missing_ok=True)
                    continue
                if doc.get("desired") == RESTORE:
                    await self._restore_member(name, doc)
                    continue
                member = self.members.get(name)
                generation = int(doc.get("generation") or 0)
                desired = SLEEPING if doc.get("desired") == SLEEPING else RUNNING
                if member is None:
                    try:
                        config = config_from_member(doc)
                    except (ValueError, KeyError) as exc:
                        _write(Path(doc.get("dataDir") or self.data_dir / name) / "error", str(exc))
                        log.error("shared: member %s refused: %s", name, exc)
                        continue
                    # asleep when asked, or when it slept on its own before a restart
                    asleep = desired == SLEEPING or (config.data_dir is not None and (
                        config.data_dir / "sleeping").exists())
                    await self._add_safely(config, generation=generation, desired=desired,
                                           asleep=asleep, log_file=doc.get("logFile"))
                elif generation != member.generation:
                    member.generation = generation
                    member.desired = desired
                    if desired == SLEEPING:
                        await self.sleep(name)
                    else:
                        await self.wake(name)

    async def _add_safely(self, config: ClusterConfig, *, generation: int, desired: str,
                          asleep: bool, log_file: str | None = None) -> None:
        try:
            member = await self.add(config, asleep=asleep,
                                    log_file=Path(log_file) if log_file else None)
            member.generation, member.desired = generation, desired
        except Exception as exc:  # one cluster that cannot start must not stop the others
            log.exception("shared: cluster %s failed to start", config.name)
            if config.data_dir is not None:
                _write(config.data_dir / "error", f"{type(exc).__name__}: {exc}")

    async def add(self, config: ClusterConfig, *, asleep: bool = False,
                  log_file: Path | None = None) -> Member:
        """Serve one more cluster (returns once its API answers, or at once when ``asleep``)."""
        if config.name in self.members:
            raise ValueError(f"cluster {config.name!r} is already served here")
        assert self.store is not None, "start() first"
        member = Member(config.name, config)
        member.read_key = functools.partial(self._read_key, config.name)
        member.log_file = log_file or (config.data_dir / "vkube.log" if config.data_dir else None)
        if member.log_file is not None:
            self.logs.route(config.name, member.log_file)
        self.members[config.name] = member
        self._paused.pop(config.name, None)
        if config.data_dir is not None:
            (config.data_dir / "error").unlink(missing_ok=True)
        if asleep:
            member.parking.slept(await self.store.current_revision())
            self._mark_sleeping(member)
            return member
        try:
            async with member.lock:
                await self._start_member(member)
        except BaseException:
            self.members.pop(config.name, None)
            raise
        return member

    async def _read_key(self, name: str, key: str) -> bytes | None:
        """A value of cluster ``name``'s store (its key as its API server names it)."""
        if self.store is None:
            return None
        kv = await self.store.get(f"/clusters/{name}{key}")
        return kv.value if kv is not None else None

    async def remove(self, name: str) -> None:
        """Stop serving ``name`` (its data stays in the store; the CLI cleans the host)."""
        member = self.members.pop(name, None)
        if member is not None:
            await self._stop_member(member, unready=True)
            await self.pod_api.close(name)
            self.logs.unroute(name)
            self.reclaimer.soon()
            if member.ssl is not None:
                self._sni_names.pop(id(member.ssl), None)
                self._paused[name] = member.ssl

    async def purge(self, name: str) -> int:
        """Stop ``name`` if served and delete every key under its prefix (``vkube delete``);
        returns how many keys went."""
        await self.remove(name)  # its view is closed: nothing of it writes any more
        self._paused.pop(name, None)
        assert self.store is not None
        view = PrefixedStore(self.store, f"/clusters/{name}")
        n = 0
        while True:  # until a pass finds nothing (a write already under way lands first)
            page = await view.range("", limit=500)
            for kv in page.kvs:
                with contextlib.suppress(KeyNotFound):
                    await view.delete(kv.key)
                    n += 1
            if not page.kvs:
                break
            await asyncio.sleep(0.05)
        log.info("shared: %s deleted (%d keys)", name, n)
        return n

    async def _restore_member(self, name: str, doc: dict[str, Any]) -> None:
        """``vkube snapshot restore`` of a paused shared cluster: this process is the only
        writer of the shared store, so it restores; the answer goes to ``DATA/restored`` (or
        ``DATA/error``) and the member file is removed (the cluster stays paused)."""
        from vkube.store import snapshot

        data = Path(doc.get("dataDir") or self.data_dir / name)
        try:
            if name in self.members:
                raise ValueError(f"cluster {name!r} is being served: pause it first")
            assert self.store is not None
            from vkube.cluster.config import shared_encryption_config
            from vkube.cluster.stores import cluster_origin, encrypter, snapshot_check

            data.mkdir(parents=True, exist_ok=True)  # Secrets: encrypted with this cluster's key
            keys = shared_encryption_config(data)
            allow = frozenset(g for g in str(doc.get("allow") or "").split(",") if g)
            # the installation's snapshot key: a file it signed from this very cluster (its
            # name: ``cluster_origin``) may grant what it holds
            key = (bytes.fromhex(Path(doc["keyFile"]).read_text().strip())
                   if doc.get("keyFile") else None)
            info = await snapshot.restore(PrefixedStore(self.store, f"/clusters/{name}"),
                                          doc["snapshot"], transform=encrypter(keys),
                                          check=snapshot_check(doc["snapshot"], keys, allow),
                                          key=key, origin=cluster_origin(name, data))
            _write(data / "restored", json.dumps({
                "revision": info.revision, "keys": info.keys, "created": info.created,
                "updated": info.updated, "deleted": info.deleted, "signed": info.signed}))
        except snapshot.SnapshotError as exc:  # refused before anything was written
            _write(data / "error", str(exc))
        except Exception as exc:
            log.exception("shared: restore of %s failed", name)
            _write(data / "error", f"{type(exc).__name__}: {exc} (nothing was written: one "
                                   "transaction)")
        finally:
            (self.members_dir / f"{name}.json").unlink(missing_ok=True)

    async def _start_member(self, member: Member) -> None:
        assert self.store is not None
        # a fresh view each start: stopping closes the old one to writes
        member.store = PrefixedStore(self.store, f"/clusters/{member.name}",
                                     on_write=lambda key, m=member: _on_write(m, key))
        # pods reach their API at a port of their own (no path, no SNI: vkube.cluster.podapi)
        pod_api_port = self.pod_api.bind(member.name, member.config.data_dir) \
            if member.config.virtual else None
        vc = VirtualCluster(_shared_config(member.config, self.port), store=member.store,
                            public_url=self.url_of(member.name),
                            tls_server_name=sni_name(member.name), pod_api_port=pod_api_port,
                            host_pool=self.host_pool)
        try:
            with attributed(member.name):  # every task of the cluster logs as its own
                await vc.start()
        except BaseException:
            await vc.stop()
            raise
        if vc.control_plane.ctx is not None:  # before any component watches
            vc.control_plane.ctx.bookmark_interval = self.bookmark_interval
        server = vc.control_plane.server
        if server is not None and server.flowcontrol is not None:
            # before its components' first in-process request: they take seats as tenants do
            server.flowcontrol.outer_seat = functools.partial(self.fair.seat, member.name)
        member.vc = vc
        member.state = RUNNING
        member.touch()
        member.parking.woke()  # parked watches go to the woken server
        serving = vc.control_plane.serving
        if member.ssl is None and serving is not None and serving.context is not None:
            # one context per cluster for the process's life: connections made while it
            # slept keep working after it wakes (same CA and certificate files)
            member.ssl = serving.context
            self._sni_names[id(member.ssl)] = member.name
        # the first start records the context's certificate; a wake that re-issued it
        # (expired, or a name added) loads the new one into the context handshakes use
        sharedcerts.reload(member)
        if pod_api_port is not None and member.ssl is not None and self._runner is not None:
            await self.pod_api.serve(self._runner, member.name, member.ssl, limiter=self.connections)
        data = member.config.data_dir
        if data is not None:
            _with_server_name(data / "kubeconfig", sni_name(member.name))
            (data / "sleeping").unlink(missing_ok=True)
            _write(data / "ready", vc.url)
        member.watcher = asyncio.get_running_loop().create_task(
            self._watch_member(member, vc), name=f"shared: {member.name} watcher")

    async def _watch_member(self, member: Member, vc: VirtualCluster) -> None:
        """A cluster whose component failed stops whole (VirtualCluster's policy); in shared
        mode it is started again after a pause, as a supervisor restarts ``vkube serve``."""
        await vc.stopped.wait()
        if vc.error is None or member.vc is not vc:
            return
        with attributed(member.name):
            log.error("shared: cluster %s stopped (%s); restarting in 2s", member.name, vc.error)
        member.vc, member.state = None, FAILED
        await asyncio.sleep(2.0)
        async with member.lock:
            if member.vc is None and member.state == FAILED and member.name in self.members:
                with contextlib.suppress(Exception):
                    await self._start_member(member)

    async def _stop_member(self, member: Member, *, unready: bool,
                           keep_sleeping: bool = False) -> None:
        async with member.lock:
            vc, member.vc = member.vc, None
            if member.watcher is not None:
                member.watcher.cancel()
                member.watcher = None
            if vc is not None:
                await vc.stop()
            member.end_requests()
            member.end_parked()
            data = member.config.data_dir
            if unready and data is not None:
                (data / "ready").unlink(missing_ok=True)
                if not keep_sleeping:
                    (data / "sleeping").unlink(missing_ok=True)

    # -- sleep and wake ----------------------------------------------------------------------

    def _mark_sleeping(self, member: Member) -> None:
        member.state = SLEEPING
        data = member.config.data_dir
        if data is not None:
            _write(data / "sleeping", "")
            _write(data / "ready", self.url_of(member.name))  # it answers: the request wakes it

    async def sleep(self, name: str) -> bool:
        """Stop the cluster's components, remove its synced host objects, free its memory.
        Returns False if it was asleep already."""
        member = self.members[name]
        assert self.store is not None
        async with member.lock:
            vc = member.vc
            if vc is None:
                return False
            revision = await self.store.current_revision()
            # requests now park (a watch the awake server authorized, from a version reached)
            # or wait on the lock, then wake it
            member.vc = None
            member.state = SLEEPING
            member.parking.slept(revision)
            if member.watcher is not None:
                member.watcher.cancel()
                member.watcher = None
            # tenants' watches end as at a timeout (their clients re-watch, and park); the
            # requests in flight finish before the server stops
            current = asyncio.current_task()
            pending = {t for t in member.requests if t is not current and not t.done()}
            server = vc.control_plane.server
            if server is not None:  # what its server admits now may park when they re-watch
                await member.watches.authorize_open(server, member.parking.grants)
            member.watches.end()
            if pending:
                await asyncio.wait(pending, timeout=SLEEP_GRACE)
            await vc.stop()
            member.end_requests()
            try:
                n = await _remove_workloads(vc)
            except Exception as exc:  # the host may be away: the cluster sleeps all the same
                log.warning("shared: %s asleep, but its host objects stay: %s", name, exc)
                n = -1
            self._mark_sleeping(member)
            with attributed(name):
                log.info("shared: %s asleep (%d host objects removed)", name, n)
            self.logs.close_file(name)
            self.reclaimer.soon()  # its caches, informers and controllers are garbage now
            return True

    async def wake(self, name: str) -> float:
        """Start a sleeping cluster; returns the seconds it took (0.0 if it was awake)."""
        member = self.members[name]
        async with member.lock:
            if member.vc is not None:
                return 0.0
            t0 = time.perf_counter()
            await self._start_member(member)
            member.last_wake = time.perf_counter() - t0
            member.woke_at = time.monotonic()
            log.info("shared: %s awake in %.0f ms", name, member.last_wake * 1000)
            vc = member.vc
            if vc is not None and vc.host_named:
                member.shown.clear()

                async def shown() -> None:
                    try:
                        await vc.wait_shown()
                    finally:
                        member.shown.set()

                member.showing = asyncio.get_running_loop().create_task(shown(), name=f"shared: {name} shown")
            return member.last_wake

    async def _sleep_idle(self) -> None:
        """One loop for the whole process (no per-cluster timers): sleep every cluster idle for
        longer than its ``sleep.afterInactivity``."""
        while True:
            await asyncio.sleep(self._sleep_check)
            now = time.monotonic()
            for member in list(self.members.values()):
                if member.parked:  # a held watch whose client went away ends here
                    member.end_parked(only_gone=True)
                if member.watches.open or member.open_streams:  # and so does an open one
                    member.end_gone_watches()
                after = member.sleep_after
                if after is None or member.vc is None or member.lock.locked():
                    continue
                if now - member.last_active >= after:
                    try:
                        await self.sleep(member.name)
                    except Exception:
                        log.exception("shared: %s could not be put to sleep", member.name)

    async def _renew_certificates(self) -> None:
        """One loop for the whole process: every cluster's serving certificate, awake or
        asleep, renewed before it lapses (vkube.cluster.sharedcerts)."""
        while True:
            await asyncio.sleep(self.renew_interval)
            for member in list(self.members.values()):
                if member.lock.locked():  # starting or stopping: the next pass sees it
                    continue
                try:
                    with attributed(member.name):
                        reason = sharedcerts.renew(member)
                        if reason:
                            log.info("shared: serving certificate of %s renewed: %s",
                                     member.name, reason)
                except Exception:  # keep serving the current certificate; retry next pass
                    log.exception("shared: renewing the certificate of %s failed", member.name)

    # -- requests ----------------------------------------------------------------------------

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        pod_cluster = self.pod_api.cluster_of(request)
        if pod_cluster is not None:  # a cluster's in-cluster port: that cluster, whatever path
            member = self.members.get(pod_cluster)
            if member is None:
                return api_http.status_response(errors.no_such_path())
            with attributed(member.name):  # its records (and a wake it starts) are its own
                return await self._serve(member, request, request.raw_path)
        raw = request.raw_path
        path = request.path
        if path in ("/healthz", "/livez", "/readyz"):
            return web.Response(text="ok")
        if not path.startswith("/clusters/"):
            return api_http.status_response(errors.no_such_path())
        name = path[len("/clusters/"):].split("/", 1)[0]
        member = self.members.get(name)
        prefix = f"/clusters/{name}"
        if member is None and raw.startswith(prefix) and self._paused_sni(request, name):
            return api_http.status_response(errors.ServiceUnavailable(
                f"virtual cluster {name} is paused: `vkube resume {name}` starts it"))
        if member is None or not raw.startswith(prefix) or raw[len(prefix):][:1] not in ("", "/", "?"):
            return api_http.status_response(errors.no_such_path())
        if not self._sni_allows(request, name):
            return api_http.status_response(errors.no_such_path())
        tail = raw[len(prefix):]
        with attributed(name):
            return await self._serve(member, request, tail if tail.startswith("/") else "/" + tail)

    async def _serve(self, member: Member, request: web.Request, tail: str) -> web.StreamResponse:
        """One request to ``member``'s API server (``tail``: its path and query there): wake
        it if asleep; its APF, then this process's fairness seat, admit it."""
        name = member.name
        component = request.headers.get("User-Agent", "").startswith(_COMPONENT_AGENT)
        vc = member.vc
        if vc is None and component:
            # a stopping cluster's own components do not wake it (only tenants do)
            return api_http.status_response(errors.ServiceUnavailable(
                "the virtual cluster is asleep", retry_after=1))
        # only a request that would authenticate wakes a sleeping cluster (wakeauth)
        if vc is None and not await member.wake_credentials.may_authenticate(request):
            return wakeauth.refusal(tail, name)
        if vc is None:
            compacted = member.store.compacted_revision if member.store is not None else 0
            ticket = member.parking.ticket(request, tail, compacted=compacted)
            if ticket is not None:  # held until the cluster wakes or its timeout passes
                limits = member.watch_limits
                # counted as the user its credential was while awake (tenantcaps)
                held_by = member.parking.grants.user_of(sleepwatch.credential_of(request))
                if not member.held_watches.take(held_by, limits):
                    return _watch_refused(limits)
                me = asyncio.current_task()
                if me is not None:
                    member.parked[me] = request
                try:
                    woke = await member.parking.wait(ticket)
                finally:
                    member.parked.pop(me, None)  # type: ignore[arg-type]
                    member.held_watches.give(held_by)
                if not woke:
                    return await sleepwatch.timed_out(request)
                tail = ticket.tail_now()
                vc = member.vc
        if vc is None:
            if member.waking is None or member.waking.done():
                member.waking = asyncio.get_running_loop().create_task(
                    self.wake(name), name=f"shared: wake {name}")
            try:
                await asyncio.shield(member.waking)
            except Exception as exc:
                log.exception("shared: %s could not wake", name)
                return api_http.status_response(errors.internal_error(f"cluster could not start: {exc}"))
            vc = member.vc
            if vc is None:  # removed or put to sleep meanwhile
                return api_http.status_response(errors.no_such_path())
        if not component and not member.shown.is_set():
            await member.shown.wait()  # just woken: pods are read as they are now, not as before
        server = vc.control_plane.server
        if server is None:
            return api_http.status_response(errors.no_such_path())
        watch = sleepwatch.watch_key(request.method, tail) \
            if request.method == "GET" and "watch" in tail else None
        credential = sleepwatch.credential_of(request) if watch is not None and not component else None
        if not component:  # its answer, unless 401/403, is the tenant's activity
            request[ACTIVITY] = member
        inner = request.clone(rel_url=tail)
        if not component:  # its watches and streams count under its user (tenantcaps)
            inner[tenantcaps.TENANT] = member
        task = asyncio.current_task()
        if task is not None:
            member.requests.add(task)
        tenant_watch = watch is not None and credential is not None
        if tenant_watch:
            # a tenant's watch: its stop function is known (sleep ends it cleanly), and a 200
            # records that its credential may watch this while the cluster sleeps
            grants = member.parking.grants
            inner[sleepwatch.GRANT] = (grants, credential, watch, grants.epoch)
            inner[WATCH_STOPPERS] = member.watches.stoppers
            if task is not None:
                member.watches.open[task] = (inner, credential, watch)
        try:
            if member.woke_at is not None and not component and \
                    time.monotonic() - member.woke_at < wakestreams.WAKE_WINDOW:
                target = wakestreams.pod_stream(request.method, tail)
                # its pod comes back to the host after a wake; only a client the server lets
                # through waits (no one else learns from the delay that the pod exists)
                if target is not None and await sleepwatch.admitted(server, inner):
                    await wakestreams.until_pod_streams(vc, target)
            # the cluster's own priority and fairness first; this process's seat only once
            # APF admitted the request (a request queued there holds none; long-running
            # requests take neither); a refusal here is APF's 429
            if server.flowcontrol is not None and server.flowcontrol.outer_seat is None:
                server.flowcontrol.outer_seat = functools.partial(self.fair.seat, name)
            if server.request_gate is None:
                server.request_gate = functools.partial(tenantcaps.gate, member)
            resp = await server.dispatch(inner)  # type: ignore[arg-type]
        finally:
            if tenant_watch:
                member.watches.open.pop(task, None)  # type: ignore[arg-type]
            if task is not None:
                member.requests.discard(task)
        audit_id = audit_id_of(inner)
        if audit_id and not resp.prepared and "Audit-Id" not in resp.headers:
            resp.headers["Audit-Id"] = audit_id
        return resp

    def _paused_sni(self, request: web.Request, name: str) -> bool:
        """The connection's server name chose paused ``name`` (only its own clients are told)."""
        transport = request.transport
        sslobj = transport.get_extra_info("ssl_object") if transport is not None else None
        return sslobj is not None and sslobj.context is self._paused.get(name)

    def _sni_allows(self, request: web.Request, name: str) -> bool:
        """A connection whose server name chose one cluster reaches only that cluster."""
        transport = request.transport
        sslobj = transport.get_extra_info("ssl_object") if transport is not None else None
        if sslobj is None or sslobj.context is self._default_ssl:
            return True  # no server name: the path's cluster checks the credentials alone
        return self._sni_names.get(id(sslobj.context)) == name

    def state_of(self, name: str) -> str:
        member = self.members.get(name)
        return member.state if member is not None else ""


async def _remove_workloads(vc: VirtualCluster) -> int:
    """Host workloads to zero for a sleep: the synced pods go, PVCs, Services and the rest
    stay (volumes and ClusterIPs survive the sleep; ``vkube pause`` removes them all). On wake
    the syncer makes the host pods again with their UIDs (a Job's pods: new ones),
    ``PodSyncer._recreate_bare``."""
    from vkube.syncer.syncer import cleanup_host

    if vc.host is None:
        return 0
    async with vc.host_client() as hc:
        return await cleanup_host(hc, vc.host_namespace, vc.name, grace_period_seconds=0,
                                  workloads_only=True)


def _on_write(member: Member, key: str) -> None:
    if not key.startswith(_HOUSEKEEPING):
        member.touch()
    if key.startswith(sleepwatch.AUTHZ_KEYS):  # who may watch what may have changed
        member.parking.grants.clear()


_watch_refused = tenantcaps.refused


#: request key: the member whose tenant sent the request (its answer may be activity)
ACTIVITY = web.RequestKey("vkube_shared_activity", Member)


async def _count_activity(request: web.Request, response: web.StreamResponse) -> None:
    """``on_response_prepare``: a tenant's request the cluster did not refuse keeps it awake
    (a 401 or 403 — a stranger's token, a credential without rights — does not, nor does an
    anonymous health check)."""
    member = request.get(ACTIVITY)
    if member is not None and response.status not in (401, 403) and \
            wakeauth.presents_credential(request):
        member.touch()


async def _echo_audit_id(request: web.Request, response: web.StreamResponse) -> None:
    audit_id = audit_id_of(request)
    if audit_id and "Audit-Id" not in response.headers:
        response.headers["Audit-Id"] = audit_id


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text + ("\n" if text else ""))
    tmp.replace(path)


SNI_SUFFIX = ".shared.vkube"


def sni_name(name: str) -> str:
    """The TLS server name of cluster ``name`` in shared mode (its certificate names it)."""
    return name + SNI_SUFFIX


def _shared_config(config: ClusterConfig, port: int) -> ClusterConfig:
    """Shared-mode settings every member gets: no leader election (one process serves it),
    its server name in its certificate."""
    import dataclasses

    sans = config.tls_sans if sni_name(config.name) in config.tls_sans else (
        *config.tls_sans, sni_name(config.name))
    return dataclasses.replace(config, port=port, leader_election=False, tls_sans=sans)


def _with_server_name(kubeconfig: Path, server_name: str) -> None:
    """The cluster's kubeconfig names its TLS server name (kubectl and the official client
    send it as SNI and verify the certificate against it)."""
    try:
        doc = json.loads(kubeconfig.read_text())
    except (OSError, ValueError):
        return
    for entry in doc.get("clusters") or []:
        entry.setdefault("cluster", {})["tls-server-name"] = server_name
    tmp = kubeconfig.with_name(kubeconfig.name + ".tmp")
    tmp.write_text(json.dumps(doc, indent=2) + "\n")
    tmp.chmod(0o600)
    tmp.replace(kubeconfig)


def _context_from_files(member: Member) -> ssl.SSLContext | None:
    """A sleeping cluster's TLS context from its data dir (as its control plane made it)."""
    data = member.config.data_dir
    if data is None:
        return None
    pki = data / "pki"
    try:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(pki / "apiserver.crt", pki / "apiserver.key")
        ctx.load_verify_locations(cafile=str(pki / "ca.crt"))
        if (pki / "front-proxy-ca.crt").exists():  # request-header clients, as when awake
            ctx.load_verify_locations(cafile=str(pki / "front-proxy-ca.crt"))
        ctx.verify_mode = ssl.CERT_OPTIONAL
        return ctx
    except (OSError, ssl.SSLError) as exc:
        log.warning("shared: no TLS context for %s: %s", member.name, exc)
        return None


def config_from_member(doc: dict[str, Any]) -> ClusterConfig:
    """A member file as a ``ClusterConfig`` (``KeyError``/``ValueError`` when malformed)."""
    from vkube.syncer.values import ValuesError, load_values

    name = str(doc["name"])
    data_dir = Path(doc["dataDir"])
    host: HostConnection | HostFromFile | None = None
    if doc.get("hostFrom"):
        host = HostFromFile(Path(doc["hostFrom"]), namespace=doc.get("namespace"))
    elif doc.get("host"):
        h = doc["host"]
        host = HostConnection(h["kubeconfig"], context=h.get("context") or None,
                              namespace=h.get("namespace") or None,
                              kind=h.get("kind") or "kubeconfig")
    values: Values | None = None
    if doc.get("valuesFile"):
        try:
            values = load_values(Path(doc["valuesFile"]).read_text())
        except (OSError, ValuesError) as exc:
            raise ValueError(f"values of {name}: {exc}") from None
    return ClusterConfig(name=name, data_dir=data_dir, host=host, values=values,
                         dns_upstream=tuple(doc["dnsUpstream"]) if doc.get("dnsUpstream") else None)  # type: ignore[arg-type]


__all__ = ["ClusterConfigError", "FairnessConfig", "Member", "SharedServer", "config_from_member"]
