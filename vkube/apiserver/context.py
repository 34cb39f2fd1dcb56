"""Everything one control plane's request handling needs, in one object (no global state)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from vkube.api.fieldset import FieldSetCache
from vkube.api.kinds import Registry, ResourceSpec
from vkube.api.meta import Obj, utcnow
from vkube.apiserver.dialpolicy import DialPolicy
from vkube.apiserver.reinvocation import Reinvocation
from vkube.apiserver.request import RequestContext, UserInfo
from vkube.store.base import Store

if TYPE_CHECKING:
    from vkube.store.fanout import Fanout
    from vkube.apiserver.storage import ResourceStorage
    from vkube.apiserver.watchcache import KindCache


@dataclass(slots=True)
class AdmissionRequest:
    """What an admission plugin sees — k8s.io/apiserver's ``admission.Attributes``: the
    operation on one object, who asks (``user``) and the request it is part of (``request``,
    whose info may name another resource: an eviction deletes a pod). ``obj`` may be mutated
    by mutating plugins; ``old`` is None on create. ``operation`` is CREATE, UPDATE, DELETE or
    CONNECT. ``kind`` is the kind of ``obj``/``old`` when it is not the resource's own: an
    ``autoscaling/v1`` Scale for ``*/scale`` (upstream's ``GetKind``)."""

    operation: str
    spec: ResourceSpec
    namespace: str | None
    name: str
    obj: Obj | None
    old: Obj | None
    subresource: str = ""
    dry_run: bool = False
    user: UserInfo = field(kw_only=True)
    request: RequestContext = field(kw_only=True)
    kind: ResourceSpec | None = field(default=None, kw_only=True)
    #: the mutating chain's second round (``AdmissionChain.mutate``)
    reinvocation: Reinvocation = field(default_factory=Reinvocation, kw_only=True)

    @property
    def object_spec(self) -> ResourceSpec:
        """The kind ``obj`` is of (its schema, apiVersion and kind)."""
        return self.kind or self.spec


class Admission(Protocol):
    async def admit(self, ctx: "Context", req: AdmissionRequest) -> None:
        """Mutate ``req.obj`` or raise a StatusError (usually Forbidden or Invalid)."""


@dataclass
class Context:
    store: Store
    registry: Registry
    admission: list[Admission] = field(default_factory=list)
    clock: Callable[[], dt.datetime] = utcnow
    #: Allocate ClusterIPs / NodePorts for services (standalone control planes and the host);
    #: a virtual cluster leaves spec.clusterIP empty for the syncer to copy from the host.
    allocate_service_ips: bool = True
    service_cidr: str = "10.96.0.0/12"
    #: Fills metadata.managedFields; set by the server once OpenAPI schemas are available.
    track_fields: Callable[..., None] | None = None
    #: Resolves a kind's OpenAPI schema (for SMP, SSA, field validation); None if unknown.
    schema_for: Callable[[ResourceSpec], dict | None] = lambda spec: None
    storages: dict[tuple[str, str, str], "ResourceStorage"] = field(default_factory=dict)
    #: decoded managedFields sets of this cluster's objects, reused across writes (ssa)
    field_sets: FieldSetCache = field(default_factory=FieldSetCache)
    on_registry_change: list[Callable[[], Awaitable[None] | None]] = field(default_factory=list)

    #: where pods' logs/exec/attach/portforward go whatever their Node says (a virtual
    #: cluster's one kubelet, its syncer's proxy): a tenant may edit its Nodes' kubelet
    #: endpoints, and must not point them at another tenant's or the host's kubelet
    kubelet_endpoint: tuple[str, int] | None = None
    #: opens the upstream WebSocket of pods/exec|attach|portforward in process, instead of
    #: dialing ``kubelet_endpoint``: (subresource, namespace, pod, container, query pairs,
    #: offered protocols) -> async context manager of a WebSocket, or None to dial; raises
    #: StatusError
    kubelet_connector: Callable[..., Any] | None = None
    #: encryption at rest (``vkube.apiserver.encryption.EncryptionConfig``); None stores plain
    encryption: Any = None
    #: TLS for the kubelet hop (logs, exec, attach, port-forward): trusts the cluster CA and
    #: presents the API server's kubelet-client certificate; None = the system defaults
    kubelet_tls: Any = None
    #: issues service-account tokens (TokenRequest) with the cluster's signing key
    token_issuer: Any = None
    #: the audiences API tokens are issued for and accepted with (``--api-audiences``)
    api_audiences: tuple[str, ...] = ()
    #: converts custom resources between versions through their CRD's conversion webhook:
    #: ``await convert(strategy, objects, desired_api_version)`` (set by the control plane)
    convert: Callable[..., Awaitable[list[Obj]]] | None = None
    _http: Any = None
    #: where metrics.k8s.io's numbers come from (``metricsapi.UsageSource``); None: local model
    usage_source: Any = None
    #: open watch handlers, cancelled on shutdown so stopping never waits for long-running streams
    watch_tasks: set[Any] = field(default_factory=set)
    #: informer-style caches admission reads (``cache_for``), by (group, kind)
    kind_caches: dict[tuple[str, str], "KindCache"] = field(default_factory=dict)
    #: seconds between BOOKMARK events of an idle watch (shared mode: upstream's minute, so
    #: an idle cluster's watches wake its process rarely)
    bookmark_interval: float = 5.0
    #: where the control plane may connect for this cluster's webhooks and aggregated APIs
    #: (a virtual cluster's is restricted: ``vkube.apiserver.dialpolicy``)
    dial_policy: DialPolicy = field(default_factory=DialPolicy)
    #: every in-process watcher of this cluster's store, served from one store subscription
    #: (``vkube.store.fanout``; made with the first watch)
    _fanout: Any = None

    def watch_fanout(self) -> "Fanout":
        """This cluster's watch fan-out: watch streams, caches and followers read it, not the
        store."""
        if self._fanout is None:
            from vkube.store.fanout import Fanout

            self._fanout = Fanout(self.store)
        return self._fanout

    def http_session(self) -> Any:
        """A shared aiohttp session for proxying (kubelet logs/exec); closed by the server."""
        if self._http is None or self._http.closed:
            import aiohttp

            connector = aiohttp.TCPConnector(ssl=self.kubelet_tls if self.kubelet_tls is not None else True)
            # a kubelet never redirects: a redirect would lead past the dial policy, which
            # checked only the first address (plain GETs and WebSocket upgrades alike)
            no_redirects = aiohttp.TraceConfig()

            async def refuse_redirect(session: Any, ctx: Any, params: Any) -> None:
                raise aiohttp.ClientResponseError(
                    params.response.request_info, (), status=params.response.status,
                    message="the kubelet answered with a redirect, which is not followed")
            no_redirects.on_request_redirect.append(refuse_redirect)
            self._http = aiohttp.ClientSession(auto_decompress=False, connector=connector,
                                               trace_configs=[no_redirects])
        return self._http

    def storage(self, spec: ResourceSpec) -> "ResourceStorage":
        from vkube.apiserver.storage import ResourceStorage

        key = (spec.group, spec.version, spec.plural)
        st = self.storages.get(key)
        if st is None or st.spec is not spec:
            st = ResourceStorage(spec, self)
            self.storages[key] = st
        return st

    def storage_for(self, group: str, kind: str) -> "ResourceStorage | None":
        spec = self.registry.by_kind(group, kind)
        return self.storage(spec) if spec else None

    def cache_for(self, group: str, kind: str) -> "KindCache | None":
        """The watch-kept cache of a small kind admission reads per write (made and started
        on first use; reads go to the store until it has listed)."""
        from vkube.apiserver.watchcache import KindCache

        storage = self.storage_for(group, kind)
        if storage is None:
            return None
        cache = self.kind_caches.get((group, kind))
        if cache is None or cache.storage is not storage:
            cache = self.kind_caches[(group, kind)] = KindCache(storage)
            cache.start(self.watch_tasks)
        return cache
