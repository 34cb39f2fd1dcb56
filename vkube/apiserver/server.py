"""The HTTP surface of one control plane and its lifecycle (``ControlPlane``)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import logging
import os
import socket
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

from vkube import __version__
from vkube.api import errors, selectors
from vkube.api.builtin import builtin_registry
from vkube.api.kinds import Registry
from vkube.apiserver import authreviews, http, patching, subresources
from vkube.apiserver.admission import ServiceAllocation, default_chain
from vkube.apiserver.admission import config as admission_settings
from vkube.apiserver.aggregator import Aggregator
from vkube.apiserver.apf import DEFAULT_MAX_INFLIGHT, DEFAULT_MAX_MUTATING_INFLIGHT, RESPONSE_HEADERS, FlowControl
from vkube.apiserver.admission.dynamic import DynamicAdmission
from vkube.apiserver.admission.hostowned import HostOwned
from vkube.apiserver.conversion import ConversionWebhooks
from vkube.apiserver.admission.certificates import CertificateAdmission
from vkube.apiserver.audit import AUDIT_FILE, AuditLog, Policy
from vkube.apiserver.authorization import Authorization, RBACEscalation
from vkube.apiserver.authn import Authenticator, RequestHeader, without_front_proxy_headers
from vkube.apiserver.componentstatus import is_component_status, serve_component_status
from vkube.apiserver.context import Context
from vkube.apiserver.crds import CRDController, add_deprecation_warning
from vkube.apiserver.discovery import Discovery
from vkube.apiserver.encryption import EncryptionConfig, default_config_for
from vkube.apiserver.handlers import PATCH_TYPES, Query, ResourceHandlers, default_manager
from vkube.apiserver.metricsapi import LocalUsage, is_metrics, serve_metrics
from vkube.apiserver.nodeauthz import NodeGraph
from vkube.apiserver.apibootstrap import ensure_api_defaults, ensure_flowcontrol
from vkube.apiserver.rbacbootstrap import ensure_bootstrap_policy
from vkube.apiserver.sharedkeys import share_cluster_keys
from vkube.apiserver.tokenauth import StaticTokens
from vkube.apiserver.request import (AUDIT_ID_HEADER, AUDIT_ID_RESPONSE_HEADER, RequestContext, UserInfo,
                                     cluster_admin, internal_context, new_audit_id)
from vkube.apiserver.requestinfo import RequestInfo, parse
from vkube.apiserver.reviews import is_review, serve_review
from vkube.apiserver.watch import serve_watch
from vkube.pki import ServingCertificate
from vkube.pki.cluster import ADMIN, APISERVER_KUBELET_CLIENT, FRONT_PROXY_CLIENT, ClusterPKI
from vkube.pki.tokens import JWKS_CONTENT_TYPE, JWKS_PATH, OPENID_CONFIG_PATH
from vkube.store import open_store
from vkube.store.base import Store

log = logging.getLogger("vkube.apiserver")

KUBE_VERSION = {"major": "1", "minor": "37", "gitVersion": f"v1.37.0+vkube-{__version__}",
                "gitCommit": "vkube", "gitTreeState": "clean", "buildDate": "2026-11-24T00:00:00Z",
                "goVersion": "python", "compiler": "cpython", "platform": "linux/amd64",
                "emulationMajor": "1", "emulationMinor": "37", "minCompatibilityMajor": "1",
                "minCompatibilityMinor": "36"}
SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
AGGREGATED = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
WRITE_VERBS = ("create", "update", "patch", "delete", "deletecollection")
_AUDIT_ID = web.RequestKey("audit_id", str)
#: who a request made in process by one of the cluster's own components is (set only by
#: ``vkube.cluster.inprocess``, never from the network): the user its certificate would give
IN_PROCESS_USER = web.RequestKey("vkube_in_process_user", UserInfo)
MAX_HEADER_FIELD = 128 * 1024


class APIServer:
    """Routes requests to discovery, OpenAPI, health, metrics and resource handlers."""

    def __init__(self, ctx: Context, authenticator: Authenticator | None = None) -> None:
        from vkube.api.openapi import OpenAPI
        from vkube.api.tables import to_table

        self.ctx = ctx
        self.authenticator = authenticator
        self.discovery = Discovery(ctx.registry)
        self.openapi = OpenAPI(ctx.registry)
        ctx.schema_for = lambda spec: self.openapi.schema_for(spec.group, spec.version, spec.kind)
        ctx.track_fields = patching.field_tracker(ctx)
        self.handlers = ResourceHandlers(ctx, to_table=to_table, selectors=selectors, patches=patching)
        self.authorization = Authorization(ctx)
        self.ready = False
        self.audit: AuditLog | None = None
        self.local_usage = LocalUsage()
        self.aggregator = Aggregator(ctx)
        #: API Priority and Fairness (set by the control plane; None: every request runs)
        self.flowcontrol: FlowControl | None = None
        #: set by a server in front (shared mode): ``(request, rc) -> release | refusal`` once
        #: the request is authenticated — its caps on a user's long-running requests
        self.request_gate: Callable[[web.Request, RequestContext],
                                    Callable[[], None] | web.StreamResponse | None] | None = None

    @functools.cached_property
    def metrics(self) -> Any:
        """Made on the first request: prometheus_client costs ~15 ms of start-up."""
        from vkube.apiserver.metrics import Metrics

        return Metrics()

    def app(self) -> web.Application:
        app = web.Application(client_max_size=http.MAX_BODY * 4)
        app.router.add_route("*", "/{tail:.*}", self.dispatch)
        app.on_response_prepare.append(_echo_audit_id)
        return app

    async def authenticate(self, request: web.Request) -> UserInfo:
        """Who sent ``request``: the one place authentication fills in the user (client
        certificate, bearer token, or anonymous where Kubernetes allows it; else 401). A server
        built without an authenticator (unit tests of the HTTP surface) treats everyone as the
        cluster admin. A component's in-process request carries its fixed identity."""
        user = request.get(IN_PROCESS_USER)
        if user is not None:
            return user
        if self.authenticator is None:
            return cluster_admin()
        return await self.authenticator.authenticate(request)

    async def request_context(self, request: web.Request, info: RequestInfo, audit_id: str) -> RequestContext:
        """The per-request context, built once here. dryRun and fieldManager are read (and
        refused when malformed) only for writes to served resources, as kube-apiserver's write
        handlers do (an unknown resource stays a 404); the field manager defaults to the
        User-Agent's first token except for apply, which must name one."""
        user = await self.authenticate(request)
        dry_run, manager = False, None
        if (info.is_resource and info.verb in WRITE_VERBS
                and self.ctx.registry.get(info.group, info.version, info.resource) is not None):
            q = Query(request)
            dry_run = q.dry_run()
            ctype = request.headers.get("Content-Type", "").split(";")[0].strip().lower()
            applying = info.verb == "patch" and PATCH_TYPES.get(ctype) == "apply"
            manager = q.field_manager(None if applying else default_manager(request))
        return RequestContext(user=user, info=info, audit_id=audit_id,
                              dry_run=dry_run, field_manager=manager)

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        started = time.perf_counter()
        received = dt.datetime.now(dt.timezone.utc)
        request[_AUDIT_ID] = new_audit_id(request.headers.get(AUDIT_ID_HEADER))
        info = parse(request.method, request.path, request.query)
        code = 500
        rc: RequestContext | None = None
        resp: web.StreamResponse | None = None
        gate: Callable[[], None] | web.StreamResponse | None = None
        try:
            rc = await self.request_context(request, info, request[_AUDIT_ID])
            request = without_front_proxy_headers(request)
            gate = self.request_gate(request, rc) if self.request_gate is not None else None
            if isinstance(gate, web.StreamResponse):  # over a cap of its user (shared mode)
                resp, code = gate, gate.status
                return gate
            # impersonation, priority and fairness, then RBAC — as kube-apiserver's filters
            rc = self.authorization.impersonate(rc, request.headers.items())
            if self.flowcontrol is not None:
                resp = await self.flowcontrol.serve(request, rc, functools.partial(self._authorized, request))
            else:
                resp = await self._authorized(request, rc)
            if info.is_resource:
                add_deprecation_warning(self.ctx.registry, info, resp)
            code = resp.status
            return _with_pf(_with_warnings(resp, rc), request)
        except errors.StatusError as exc:
            code = exc.code
            resp = _with_pf(_with_warnings(http.status_response(exc), rc), request)
            return resp
        except asyncio.CancelledError:
            code = 499
            raise
        except Exception as exc:  # the one place unexpected errors become a Status
            log.exception("internal error serving %s %s", request.method, request.path)
            resp = http.status_response(errors.internal_error(str(exc)))
            return resp
        finally:
            if callable(gate):
                gate()
            if info.is_resource:
                self.metrics.requests.labels(info.verb, info.group, info.resource, info.subresource, str(code)).inc()
                if info.verb != "watch":
                    self.metrics.latency.labels(info.verb, info.group, info.resource).observe(time.perf_counter() - started)
            if self.audit is not None and rc is not None:
                await self._audit(request, rc, resp, code, received)

    async def _audit(self, request: web.Request, rc: RequestContext, resp: web.StreamResponse | None,
                     code: int, received: dt.datetime) -> None:
        """One audit event per request (the hook; the log and its policy live in ``audit``)."""
        assert self.audit is not None
        level = self.audit.level(rc)
        if level == "None":
            return
        body = resp.body if isinstance(resp, web.Response) and isinstance(resp.body, bytes) else None
        status = None
        if code >= 300 and body:
            with contextlib.suppress(orjson.JSONDecodeError):
                status = orjson.loads(body)
        req_body: Any = None
        raw = request.get(http.REQUEST_BODY)
        if level in ("Request", "RequestResponse") and raw:
            try:  # the body as the handler decoded it (kubectl create sends protobuf)
                req_body = orjson.dumps(http.decode_body(raw, request.headers.get("Content-Type", "")))
            except (errors.StatusError, TypeError):
                req_body = None
        try:
            self.audit.record(rc, uri=str(request.rel_url), source_ip=request.remote,
                              user_agent=request.headers.get("User-Agent"), code=code, received=received,
                              status=status, request_body=req_body, response_body=body, level=level)
        except OSError:
            log.exception("audit log %s cannot be written", self.audit.path)

    async def _authorized(self, request: web.Request, rc: RequestContext) -> web.StreamResponse:
        self.authorization.authorize_request(rc)  # before any read
        return await self._route(request, rc)

    async def _route(self, request: web.Request, rc: RequestContext) -> web.StreamResponse:
        info = rc.info
        path = request.path.rstrip("/") or "/"
        if not info.is_resource:
            return await self._non_resource(request, path, info, rc)
        if info.group == "authentication.k8s.io" and info.resource in authreviews.REVIEWS:
            return await authreviews.serve(self, request, rc)
        remote = self.aggregator.remote_for(info.group, info.version) if info.group else None
        if remote is not None:
            return await self.aggregator.proxy(request, rc, remote)
        spec = self.ctx.registry.get(info.group, info.version, info.resource) if info.resource else None
        if spec is None:
            raise errors.no_such_path()
        if not _served_path(spec, info):
            raise errors.no_such_path()
        h = self.handlers
        if is_metrics(spec):
            return await serve_metrics(request, spec, rc, self.ctx, self.ctx.usage_source or self.local_usage,
                                       selectors)
        if info.subresource:
            return await self._subresource(request, spec, rc)
        verb = info.verb
        if verb not in spec.verbs and verb not in ("watch",):
            raise errors.method_not_allowed()
        if is_component_status(spec):
            return await serve_component_status(self.ctx, h, request, spec, rc)
        if verb == "get":
            return await h.get(request, spec, rc)
        if verb == "list":
            return await h.list(request, spec, rc)
        if verb == "watch":
            return await serve_watch(h, request, spec, rc,
                                     on_open=lambda: self.metrics.watches.labels(spec.plural).inc(),
                                     on_close=lambda: self.metrics.watches.labels(spec.plural).dec())
        if verb == "create":
            if info.name:
                raise errors.method_not_allowed()
            if is_review(spec):
                return await serve_review(request, spec, rc, self.authorization)
            return await h.create(request, spec, rc)
        if verb == "update":
            return await h.update(request, spec, rc)
        if verb == "patch":
            return await h.patch(request, spec, rc)
        if verb == "delete":
            return await h.delete(request, spec, rc)
        if verb == "deletecollection":
            return await h.deletecollection(request, spec, rc)
        raise errors.method_not_allowed()

    async def _subresource(self, request: web.Request, spec: Any, rc: RequestContext) -> web.StreamResponse:
        sub = rc.info.subresource
        if sub not in spec.subresources:
            raise errors.no_such_path()
        # approval: certificatesigningrequests' conditions; ephemeralcontainers: pods'
        if sub in ("status", "approval", "ephemeralcontainers"):
            if request.method == "GET":
                return await self.handlers.get(request, spec, rc)
            if request.method == "PUT":
                return await self.handlers.update(request, spec, rc, subresource=sub)
            if request.method == "PATCH":
                return await self.handlers.patch(request, spec, rc, subresource=sub)
            raise errors.method_not_allowed()
        if sub == "scale":
            return await self.handlers.scale(request, spec, rc)
        handler = subresources.handler_for(spec, sub)
        if handler is None:
            raise errors.NotFound(f"the server could not find the requested resource ({sub} is not served yet)", details={})
        return await handler(self.ctx, request, rc)

    async def _non_resource(self, request: web.Request, path: str, info: Any,
                            rc: RequestContext) -> web.StreamResponse:
        accept = http.parse_accept(request.headers.get("Accept"))
        if path.startswith("/debug/api_priority_and_fairness/") and self.flowcontrol is not None:
            text = self.flowcontrol.dump(path.rsplit("/", 1)[1], request.query)
            if text is not None:
                return web.Response(text=text, content_type="text/plain")
        if path == "/version":
            return http.json_response(KUBE_VERSION)
        if path in (OPENID_CONFIG_PATH, JWKS_PATH) and self.authenticator is not None:
            issuer = self.authenticator.issuer
            if path == JWKS_PATH:
                return http.json_response(issuer.jwks(), content_type=JWKS_CONTENT_TYPE)
            return http.json_response(issuer.openid_configuration())
        if path in ("/healthz", "/livez", "/readyz") or path.startswith(("/healthz/", "/livez/", "/readyz/")):
            return await self._health(request, path)
        if path == "/metrics":
            self.metrics.revision.set(await self.ctx.store.current_revision())
            if self.flowcontrol is not None:
                self.metrics.add_collector(self.flowcontrol)
            return web.Response(body=self.metrics.render(), headers={"Content-Type": "text/plain; version=0.0.4"})
        if path == "/openapi/v2":
            if any("protobuf" in m.type for m in accept) and not any(m.type in (http.JSON, "*/*") for m in accept):
                return web.Response(body=self.openapi.v2_protobuf(), headers={
                    "Content-Type": "application/octet-stream"})
            return http.json_response(self.openapi.v2_document())
        if path == "/openapi/v3":
            return http.json_response(self.aggregator.merge_openapi_index(self.openapi.v3_index()))
        if path.startswith("/openapi/v3/apis/") and (remote := self.aggregator.remote_for(
                *(path[len("/openapi/v3/apis/"):].split("/") + ["", ""])[:2])):
            return await self.aggregator.proxy(request, rc, remote)
        if path.startswith("/openapi/v3/"):
            gv = path[len("/openapi/v3/"):]
            doc = self.openapi.v3_bytes(gv)
            if doc is None:
                raise errors.no_such_path()
            return web.Response(body=doc, headers={"Content-Type": http.JSON, "Etag": f'"{self.openapi.etag(gv)}"',
                                                   "Cache-Control": "public, immutable"})
        aggregated = any(m.as_ == "APIGroupDiscoveryList" for m in accept)
        agg_version = next((m.params.get("v", "v2") for m in accept if m.as_ == "APIGroupDiscoveryList"), "v2")
        if path == "/api":
            if aggregated:
                return http.json_response(self.discovery.aggregated(core=True, version=agg_version),
                                          content_type=AGGREGATED.replace("v=v2", f"v={agg_version}"))
            return http.json_response(self.discovery.api_versions())
        if path == "/apis":
            if aggregated:
                doc = self.aggregator.merge_aggregated(self.discovery.aggregated(core=False, version=agg_version))
                return http.json_response(doc, content_type=AGGREGATED.replace("v=v2", f"v={agg_version}"))
            return http.json_response(self.aggregator.merge_group_list(self.discovery.api_group_list()))
        # /api/VERSION, /apis/GROUP[/VERSION]: too short to be resource requests (RequestInfo)
        segs = path.strip("/").split("/")
        if "" in segs:
            segs = []
        if segs[:1] == ["api"] and len(segs) == 2:
            doc = self.discovery.resource_list("", segs[1])
            if doc is not None:
                return http.json_response(doc)
        if segs[:1] == ["apis"] and len(segs) == 3 and (remote := self.aggregator.remote_for(segs[1], segs[2])):
            return await self.aggregator.proxy(request, rc, remote)
        if segs[:1] == ["apis"] and len(segs) == 2 and segs[1] not in self.ctx.registry.groups():
            doc = self.aggregator.api_group(segs[1])
            if doc is not None:
                return http.json_response(doc)
        if segs[:1] == ["apis"] and len(segs) in (2, 3):
            doc = self.discovery.resource_list(segs[1], segs[2]) if len(segs) == 3 else self.discovery.api_group(segs[1])
            if doc is not None:
                return http.json_response(doc)
        if path == "/":
            paths = sorted({"/api", "/api/v1", "/apis", "/healthz", "/livez", "/readyz", "/metrics",
                            "/openapi/v2", "/openapi/v3", "/version"}
                           | {f"/apis/{g}" for g in self.ctx.registry.groups() if g}
                           | {f"/apis/{g}/{v}" for g, vs in self.ctx.registry.groups().items() if g for v in vs})
            return http.json_response({"paths": paths})
        raise errors.no_such_path()

    async def _health(self, request: web.Request, path: str) -> web.Response:
        checks: list[tuple[str, bool]] = [("ping", True)]
        try:
            await asyncio.wait_for(self.ctx.store.current_revision(), 5)
            checks.append(("etcd", True))
        except Exception:
            checks.append(("etcd", False))
        if path.startswith("/readyz"):
            checks.append(("poststarthook/bootstrap-namespaces", self.ready))
        name = path.split("/", 2)[1]
        sub = path.split("/", 2)[2] if path.count("/") >= 2 else ""
        if sub:
            wanted = [c for c in checks if c[0] == sub]
            if not wanted:
                raise errors.no_such_path()
            checks = wanted
        ok = all(c[1] for c in checks)
        if "verbose" in request.query or not ok:
            lines = [f"[{'+' if good else '-'}]{n} {'ok' if good else 'failed'}" for n, good in checks]
            lines.append(f"{name} check {'passed' if ok else 'failed'}")
            return web.Response(text="\n".join(lines) + "\n", status=200 if ok else 500)
        return web.Response(text="ok")


def _with_pf(resp: web.StreamResponse, request: web.Request) -> web.StreamResponse:
    """The APF classification headers on any response of a classified request."""
    headers = request.get(RESPONSE_HEADERS)
    if headers and not resp.prepared:
        resp.headers.update(headers)
    return resp


def _with_warnings(resp: web.StreamResponse, rc: RequestContext | None) -> web.StreamResponse:
    """Admission's warnings as ``Warning: 299 - "..."`` headers (kubectl prints them), next to
    any the handler set; refusals carry them too, as kube-apiserver sends them."""
    if rc is None or not rc.warnings or resp.prepared:
        return resp
    text = ", ".join('299 - "' + w.replace("\\", "\\\\").replace('"', '\\"') + '"' for w in rc.warnings)
    old = resp.headers.get("Warning")
    resp.headers["Warning"] = f"{old}, {text}" if old else text
    return resp


async def _echo_audit_id(request: web.Request, response: web.StreamResponse) -> None:
    """Every response carries the request's audit ID (``Audit-Id``), errors and streams
    included, as kube-apiserver's WithAuditInit filter does."""
    audit_id = request.get(_AUDIT_ID)
    if audit_id and AUDIT_ID_RESPONSE_HEADER not in response.headers:
        response.headers[AUDIT_ID_RESPONSE_HEADER] = audit_id


def audit_id_of(request: web.Request) -> str | None:
    """The audit ID ``dispatch`` gave ``request`` (a server that routes requests to this one,
    as shared mode does, echoes it)."""
    return request.get(_AUDIT_ID)


def _served_path(spec: Any, info: RequestInfo) -> bool:
    """Whether kube-apiserver has a route for this resource path: namespaced kinds under
    ``namespaces/{ns}/`` (or cluster-wide for list/watch/deletecollection... of the collection),
    cluster-scoped kinds never under a namespace (the namespace object's own path aside), no
    empty segments and nothing after the subresource."""
    parts = info.parts
    if any(p == "" for p in parts) or (info.namespaced_path and not info.namespace):
        return False
    if len(parts) > 3 or info.verb == "proxy":  # no proxy routes are served
        return False
    if spec.namespaced:
        return info.namespaced_path or len(parts) == 1
    if info.namespaced_path:
        return False
    if info.namespace:  # /api/v1/namespaces/NAME[/status|finalize]: the namespace object itself
        return parts[0] == "namespaces" and len(parts) >= 2 and info.namespace == parts[1]
    return True


def _free_port_socket(host: str, port: int) -> socket.socket:
    """Bind now and keep the socket, so no other process can take the port between the
    choice and the listen (the httpx/aiohttp test-server habit)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(1024)
    sock.setblocking(False)
    return sock


class ControlPlane:
    """One API server on a store, served over HTTPS only. ``data_dir`` holds ``state.db``
    (unless ``store_url`` is given), ``pki/`` (the cluster's CA, service-account key and
    serving certificate) and, once serving, ``kubeconfig`` (embedded CA and admin client
    certificate). Without a data dir the key material lives in memory for the process."""

    def __init__(self, *, data_dir: str | os.PathLike[str] | None = None, store_url: str | None = None,
                 port: int = 0, host: str = "127.0.0.1", name: str = "vkube",
                 allocate_service_ips: bool = True, registry: Registry | None = None,
                 store: Store | None = None, store_options: dict[str, Any] | None = None,
                 compaction_interval: float = 300.0,
                 encryption_config: str | os.PathLike[str] | None = None,
                 audit_policy: str | os.PathLike[str] | None = None,
                 audit_log: str | os.PathLike[str] | None = None,
                 audit_rotation: tuple[int, int, int] = (0, 0, 0),
                 token_auth_file: str | os.PathLike[str] | None = None,
                 admission_config: str | os.PathLike[str] | None = None,
                 pod_security_config: dict[str, Any] | None = None,
                 extra_sans: tuple[str, ...] = (), renew_interval: float = 3600.0,
                 share_keys: bool = False, service_cidr: str | None = None,
                 public_url: str | None = None,
                 max_requests_inflight: int = DEFAULT_MAX_INFLIGHT,
                 max_mutating_requests_inflight: int = DEFAULT_MAX_MUTATING_INFLIGHT,
                 requestheader_allowed_names: Sequence[str] = (FRONT_PROXY_CLIENT,),
                 host_owned: HostOwned | None = None,
                 extra_admission: Sequence[Any] = ()) -> None:
        if data_dir is None and store_url is None and store is None:
            raise ValueError("ControlPlane needs a data_dir, a store_url or a store")
        self.data_dir = Path(data_dir) if data_dir is not None else None
        self.store_url = store_url
        #: where webhooks and aggregated APIs may be dialled (vkube.apiserver.dialpolicy); a
        #: virtual cluster sets a restricted one before start(); None: any address
        self.dial_policy: Any = None
        self.store_options = store_options or {}
        self.compaction_interval = compaction_interval  # kube-apiserver's default: 5 minutes
        self.host, self.port, self.name = host, port, name
        self.allocate_service_ips = allocate_service_ips
        #: ``CIDR[,CIDR]`` of ClusterIPs (two: dual-stack), as --service-cluster-ip-range
        self.service_cidr = service_cidr
        self.registry = registry or builtin_registry()
        self.extra_sans = tuple(extra_sans)
        self.renew_interval = renew_interval
        #: one of several replicas on a shared store: key material is shared through the store
        self.share_keys = share_keys
        self._store = store
        #: EncryptionConfiguration file (default: the data dir's own, created once); audit
        #: policy file (default: Metadata for everything) and log (default: DATA_DIR/audit.log)
        self.encryption_config = encryption_config
        self.audit_policy, self.audit_log = audit_policy, audit_log
        self.audit_rotation = audit_rotation  # (max size MB, backups, max age days)
        self.token_auth_file = token_auth_file  # --token-auth-file (static tokens)
        self.admission_config = admission_config  # AdmissionConfiguration (PodSecurity's settings)
        #: a PodSecurityConfiguration given inline (values' controlPlane.podSecurity)
        self.pod_security_config = pod_security_config
        #: a virtual cluster's kinds that are the host's copies (only the syncer writes them)
        self.host_owned = host_owned
        #: validating plugins after the default chain (the embedded host's TenantIngress)
        self.extra_admission = list(extra_admission)
        self._runner: web.AppRunner | None = None
        self._renewer: asyncio.Task[None] | None = None
        self._tmp: Any = None
        self.server: APIServer | None = None
        self.ctx: Context | None = None
        self.crds: CRDController | None = None
        self.pki: ClusterPKI | None = None
        self.serving: ServingCertificate | None = None
        self.dynamic_admission: DynamicAdmission | None = None
        #: shared mode: another server listens and routes ``public_url`` (with its
        #: ``/clusters/NAME`` path) to ``server.dispatch``; this one opens no port of its own
        self.public_url = public_url
        #: with priority and fairness their sum is the server's concurrency limit (seats)
        self.max_requests_inflight = max_requests_inflight
        self.max_mutating_requests_inflight = max_mutating_requests_inflight
        #: --requestheader-allowed-names: front-proxy certificate CNs trusted to set X-Remote-* (empty: any)
        self.requestheader_allowed_names = tuple(requestheader_allowed_names)

    @property
    def url(self) -> str:
        if self.public_url is not None:
            return self.public_url
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host  # reachable from here
        return f"https://{host}:{self.port}"

    def add_serving_names(self, *names: str) -> str | None:
        """Names the serving certificate must cover from now on (an exposed address, a load
        balancer's IP or hostname that appeared later): re-issued in place at once when one is
        missing; new handshakes get it, open connections carry on. Returns why it re-issued."""
        self.extra_sans = tuple(dict.fromkeys([*self.extra_sans, *(n for n in names if n)]))
        if self.serving is None:
            return None  # not serving yet: start() issues it with these names
        return self.serving.ensure(self.serving_names())

    def serving_names(self) -> list[str]:
        """Every name and address this server is reached by: loopback, its bind address, the
        in-cluster service names and IP, the machine's name when bound to all interfaces, and
        whatever the caller adds (an external DNS name, a host service name)."""
        names = ["127.0.0.1", "localhost", "::1", "kubernetes", "kubernetes.default",
                 "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"]
        if self.host in ("0.0.0.0", "", "::"):
            names.append(socket.gethostname())
        else:
            names.append(self.host)
        if self.ctx is not None:
            import ipaddress

            primary = (self.service_cidr or self.ctx.service_cidr).split(",")[0].strip()
            names.append(str(ipaddress.ip_network(primary).network_address + 1))
        return [*names, *self.extra_sans]

    def _pki_dir(self) -> Path:
        if self.data_dir is not None:
            return self.data_dir / "pki"
        import tempfile

        self._tmp = tempfile.TemporaryDirectory(prefix="vkube-pki-")
        return Path(self._tmp.name)

    async def start(self) -> None:
        if self.data_dir is not None:
            self.data_dir.mkdir(parents=True, exist_ok=True)
        pki_dir = self._pki_dir()
        self.pki = ClusterPKI(pki_dir if self.data_dir is not None else None, name=self.name)
        if self._store is not None:
            store = self._store
            await store.start()
        else:
            url = self.store_url
            if not url or url == "sqlite":  # the default: a SQLite file in the data dir
                if self.data_dir is None:
                    raise ValueError("the sqlite store needs a data_dir")
                url = str(self.data_dir / "state.db")
            store = open_store(url, **self.store_options)
            await store.start()
            if self.compaction_interval > 0:  # our store: we keep its history bounded
                store.start_auto_compaction(self.compaction_interval)
        self._store = store
        if self.share_keys:  # replicas on one store: one CA, one token key, one encryption key
            self.pki = await share_cluster_keys(store, pki_dir, self.data_dir, self.pki, self.name,
                                                self.encryption_config is None)
        self.ctx = Context(store=store, registry=self.registry, allocate_service_ips=self.allocate_service_ips,
                           encryption=self._encryption())
        if self.dial_policy is not None:
            self.ctx.dial_policy = self.dial_policy
        if self.service_cidr:
            self.ctx.service_cidr = self.service_cidr
        self.ctx.kubelet_tls = self.pki.client_ssl(*APISERVER_KUBELET_CLIENT)
        static = StaticTokens.load(self.token_auth_file) if self.token_auth_file is not None else None
        authenticator = Authenticator(self.pki, self.ctx, static_tokens=static, requestheader=RequestHeader(
            self.pki.front_proxy_ca, self.requestheader_allowed_names))
        self.ctx.token_issuer = authenticator.issuer
        self.ctx.api_audiences = tuple(authenticator.api_audiences)
        self.server = APIServer(self.ctx, authenticator)
        self.server.audit = self._audit_log()
        configured = admission_settings.load(self.admission_config) if self.admission_config else {}
        if self.pod_security_config is not None:
            if "PodSecurity" in configured:
                raise admission_settings.AdmissionConfigError(
                    "controlPlane.podSecurity: PodSecurity is configured by --admission-control-config-file "
                    "too: use one of them")
            configured["PodSecurity"] = admission_settings.pod_security_from(
                self.pod_security_config, "controlPlane.podSecurity")
        self.dynamic_admission = DynamicAdmission(self.ctx, authorize=self.server.authorization.authorize)
        self.ctx.convert = ConversionWebhooks(self.dynamic_admission.client).convert
        self.ctx.admission = [RBACEscalation(self.server.authorization),
                              CertificateAdmission(self.server.authorization),
                              default_chain(pod_security=configured.get("PodSecurity"),
                                            dynamic=self.dynamic_admission.plugins),
                              ServiceAllocation(self.ctx.service_cidr),
                              *([self.host_owned] if self.host_owned is not None else []),
                              *self.extra_admission]
        self.serving = ServingCertificate(self.pki.ca, pki_dir,
                                          client_ca_pem=self.pki.ca_pem + self.pki.front_proxy_ca.cert_pem)
        self.crds = CRDController(self.ctx, self.server.openapi)
        await self.crds.start()
        await self._bootstrap_namespaces()  # first: the policy has Roles in kube-system
        # issued together, so the store commits them in a few group commits (each an fsync)
        await asyncio.gather(self._bootstrap_service(), ensure_bootstrap_policy(self.ctx),
                             ensure_api_defaults(self.ctx))
        self.server.flowcontrol = FlowControl(
            self.ctx, self.max_requests_inflight + self.max_mutating_requests_inflight)
        ctx = self.ctx
        self.server.flowcontrol.ensurer = lambda: ensure_flowcontrol(ctx)
        self.server.flowcontrol.start()
        await self.server.authorization.start()
        self.server.authorization.nodes = NodeGraph(self.ctx)
        await self.server.authorization.nodes.start()
        # the aggregator's proxy presents its own certificate to aggregated servers
        # from the front-proxy CA, so that it is no credential here (kube-apiserver's layout)
        self.server.aggregator.front_proxy_client = self.pki.front_proxy_client()
        self.server.aggregator.front_proxy_ca = self.pki.front_proxy_ca.cert_pem
        self.server.aggregator.client_ca = self.pki.ca_pem
        self.server.aggregator.requestheader_allowed_names = self.requestheader_allowed_names
        await self.server.aggregator.start()
        await self.dynamic_admission.start()
        self.server.ready = True
        if self.public_url is not None:  # shared mode: the shared listener routes to us
            self.serving.ensure(self.serving_names())  # it serves this certificate by SNI
            if self.data_dir is not None:
                self.write_kubeconfig(self.data_dir / "kubeconfig")
            return
        # header fields up to 128 KiB (aiohttp's default is 8 KiB): an oversized bearer token
        # must reach the authenticator and get its 401, as with Go's 1 MiB header limit
        self._runner = web.AppRunner(self.server.app(), access_log=None, handle_signals=False,
                                     shutdown_timeout=1.0, max_field_size=MAX_HEADER_FIELD)
        await self._runner.setup()
        sock = _free_port_socket(self.host, self.port)
        self.port = sock.getsockname()[1]
        self.serving.ensure(self.serving_names())
        await web.SockSite(self._runner, sock, ssl_context=self.serving.context).start()
        self._renewer = asyncio.create_task(self._renew(), name=f"vkube-cert-renewal-{self.name}")
        if self.data_dir is not None:
            self.write_kubeconfig(self.data_dir / "kubeconfig")

    def _encryption(self) -> EncryptionConfig | None:
        """Secrets are encrypted at rest whenever there is a data dir to keep the key in."""
        if self.encryption_config is not None:
            return EncryptionConfig.load(self.encryption_config)
        if self.data_dir is None:
            return None
        return EncryptionConfig.load(default_config_for(self.data_dir))

    def _audit_log(self) -> AuditLog | None:
        path = self.audit_log or (self.data_dir / AUDIT_FILE if self.data_dir is not None else None)
        if path is None:
            return None
        size, backups, age = self.audit_rotation
        return AuditLog(path, Policy.load(self.audit_policy) if self.audit_policy else None,
                        max_size_mb=size, max_backups=backups, max_age_days=age)

    async def _renew(self) -> None:
        """Re-issue the serving certificate before it expires (or when a name is missing): new
        handshakes get the new one, open connections carry on."""
        assert self.serving is not None
        while True:
            await asyncio.sleep(self.renew_interval)
            try:
                reason = self.serving.ensure(self.serving_names())
            except Exception:  # keep serving with the current certificate; try again later
                log.exception("renewing the serving certificate of %s failed", self.name)
                continue
            if reason:
                log.info("serving certificate of %s renewed: %s", self.name, reason)

    @property
    def token_issuer(self) -> Any:
        """The cluster's service-account token issuer (vkube.pki.TokenIssuer), once started."""
        return self.ctx.token_issuer if self.ctx is not None else None

    def client_ssl(self, user: str = ADMIN[0], groups: tuple[str, ...] = ADMIN[1]) -> Any:
        """A TLS context trusting this cluster's CA and presenting a client certificate of
        ``user`` in ``groups`` (issued by the cluster's CA): how in-process components and
        tests get their own identity."""
        assert self.pki is not None, "start() the control plane first"
        return self.pki.client_ssl(user, groups)

    async def _bootstrap_namespaces(self) -> None:
        """The namespaces every cluster has (created together: one group commit)."""
        assert self.ctx is not None
        namespaces = self.ctx.storage_for("", "Namespace")
        assert namespaces is not None

        async def ensure(ns: str) -> None:
            rc = internal_context("create", resource="namespaces", version="v1", field_manager="vkube-apiserver")
            if await namespaces.get_or_none(rc, None, ns) is None:
                try:
                    await namespaces.create(rc, None, {"apiVersion": "v1", "kind": "Namespace",
                                                       "metadata": {"name": ns, "labels": {"kubernetes.io/metadata.name": ns}}})
                except errors.AlreadyExists:
                    pass

        await asyncio.gather(*(ensure(ns) for ns in SYSTEM_NAMESPACES))

    async def _bootstrap_service(self) -> None:
        """The ``kubernetes`` service (in ``default``: after the namespaces)."""
        assert self.ctx is not None
        services = self.ctx.storage_for("", "Service")
        rc = internal_context("create", resource="services", version="v1", namespace="default",
                              field_manager="vkube-apiserver")
        if services is not None and self.allocate_service_ips and await services.get_or_none(rc, "default", "kubernetes") is None:
            import ipaddress

            primary = self.ctx.service_cidr.split(",")[0].strip()  # the first family's
            first = str(ipaddress.ip_network(primary).network_address + 1)
            try:
                await services.create(rc, "default", {
                    "apiVersion": "v1", "kind": "Service",
                    "metadata": {"name": "kubernetes", "labels": {"component": "apiserver", "provider": "kubernetes"}},
                    "spec": {"clusterIP": first, "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}],
                             "type": "ClusterIP", "sessionAffinity": "None"},
                })
            except errors.AlreadyExists:
                pass

    async def stop(self) -> None:
        if self.crds is not None:
            await self.crds.stop()
        if self._renewer is not None:
            self._renewer.cancel()
            self._renewer = None
        if self.server is not None:
            await self.server.aggregator.stop()
            if self.server.flowcontrol is not None:
                await self.server.flowcontrol.stop()
        if self.ctx is not None:
            if self.ctx._fanout is not None:  # open watches end as at a timeout
                self.ctx._fanout.close()
            for task in list(self.ctx.watch_tasks):
                task.cancel()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self.server is not None and self.server.audit is not None:
            self.server.audit.close()
        if self.ctx is not None and self.ctx._http is not None:
            await self.ctx._http.close()
        if self.dynamic_admission is not None:
            await self.dynamic_admission.close()
        if self._store is not None:
            await self._store.close()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def kubeconfig(self, *, context: str | None = None, server: str | None = None,
                   user: str = ADMIN[0], groups: tuple[str, ...] = ADMIN[1]) -> dict[str, Any]:
        """A kubeconfig with everything embedded (CA, client certificate and key of ``user``,
        the cluster admin by default): it verifies the server and works from any folder."""
        assert self.pki is not None, "start() the control plane first"
        return self.pki.kubeconfig(server or self.url, context=context or self.name, user=user, groups=groups)

    def write_kubeconfig(self, path: str | os.PathLike[str], **kw: Any) -> None:
        p = Path(path)
        tmp = p.with_suffix(".tmp")
        # JSON is YAML that every kubeconfig reader accepts, and needs no PyYAML at start-up
        tmp.write_bytes(orjson.dumps(self.kubeconfig(**kw), option=orjson.OPT_INDENT_2) + b"\n")
        os.chmod(tmp, 0o600)
        tmp.replace(p)


__all__ = ["APIServer", "ControlPlane", "IN_PROCESS_USER"]
