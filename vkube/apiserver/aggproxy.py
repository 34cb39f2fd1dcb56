"""Reaching an aggregated API server: resolving its Service, the availability check, and the
proxy (kube-aggregator's ``handler_proxy.go`` and ``remote_available_controller.go``).

**Service → address** (``resolve``), made explicit because ClusterIPs route nowhere on the
embedded host or from a local virtual cluster's API server:
- ``type: ExternalName``: ``externalName:spec.service.port`` (upstream's ``ResolveEndpoint``);
- otherwise the service port whose ``port`` equals ``spec.service.port`` and a ready endpoint
  of the service (EndpointSlices, then Endpoints) on that port's target port, as
  ``--enable-aggregator-routing`` resolves. When the endpoint is a pod carrying the embedded
  host's ``vkube.io/port-forward-PORT: HOST:PORT`` annotation, that real address is used.

Every address goes through the cluster's dial policy (``dialpolicy``) before it is dialled
(``dial``): a virtual cluster never reaches this machine's own addresses but the ones its owner
published. Discovery answers are read up to ``dialpolicy.MAX_BODY``; proxied answers stream.

**TLS**: the service's certificate is verified against ``spec.caBundle`` for the name
``NAME.NAMESPACE.svc`` (as upstream), or not at all with ``insecureSkipTLSVerify``.

**Identity**: the caller's credentials are dropped and replaced with the front-proxy headers
``X-Remote-User``, ``X-Remote-Group`` (one per group) and ``X-Remote-Extra-KEY``; headers of
that name sent by the client are removed first, so nobody can claim another identity.
"""

from __future__ import annotations

import asyncio
import ssl
import tempfile
import urllib.parse
from pathlib import Path
import aiohttp
from aiohttp import web

from vkube.api import errors
from vkube.api.kinds_apiregistration import ca_bundle_pem
from vkube.api.meta import Obj
from vkube.api.portforward import parse_target
from vkube.apiserver.context import Context
from vkube.apiserver.dialpolicy import Refused, TooLarge, read_capped
from vkube.apiserver.request import RequestContext, internal_context
from vkube.pki.certs import KeyPair, write_private, write_public
from vkube.api.user import UserInfo

__all__ = ["Unreachable", "aggregated_resources", "check", "dial", "proxy", "resolve"]

PORT_FORWARD = "vkube.io/port-forward-"
CHECK_TIMEOUT = 5.0
#: the most of a discovery answer read (a group-version's APIResourceList is a few KiB)
DISCOVERY_MAX = 1024 * 1024
_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
        "transfer-encoding", "upgrade", "host", "authorization", "content-length"}
_STRIPPED_PREFIXES = ("x-remote-", "impersonate-")


class Unreachable(Exception):
    """The service cannot be resolved: ``reason`` and ``message`` as kube-aggregator's
    availability controller words them."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason, self.message = reason, message


async def _get(ctx: Context, kind: str, namespace: str, name: str) -> Obj | None:
    group = "discovery.k8s.io" if kind == "EndpointSlice" else ""
    storage = ctx.storage_for(group, kind)
    if storage is None:
        return None
    return await storage.get_or_none(internal_context("get", namespace=namespace, name=name), namespace, name)


async def _slices(ctx: Context, namespace: str, name: str) -> list[Obj]:
    from vkube.api import selectors

    storage = ctx.storage_for("discovery.k8s.io", "EndpointSlice")
    if storage is None:
        return []
    sel = selectors.parse_label_selector(f"kubernetes.io/service-name={name}")
    rc = internal_context("list", namespace=namespace, group="discovery.k8s.io", version="v1")
    return (await storage.list(rc, namespace, label_selector=sel)).items


async def _forwarded(ctx: Context, target: Obj | None, port: int) -> tuple[str, int] | None:
    if not target or target.get("kind") != "Pod":
        return None
    pod = await _get(ctx, "Pod", target.get("namespace", ""), target.get("name", ""))
    value = (((pod or {}).get("metadata") or {}).get("annotations") or {}).get(f"{PORT_FORWARD}{port}")
    return parse_target(value) if value else None


async def resolve(ctx: Context, service: Obj) -> tuple[str, int]:
    """``spec.service`` of an APIService → (host, port) to dial; raises Unreachable."""
    ns, name, port = service.get("namespace", ""), service.get("name", ""), int(service.get("port") or 443)
    svc = await _get(ctx, "Service", ns, name)
    if svc is None:
        raise Unreachable("ServiceNotFound", f'service/{name} in "{ns}" is not present')
    spec = svc.get("spec") or {}
    if spec.get("type") == "ExternalName":
        return spec.get("externalName", ""), port
    svc_port = next((p for p in spec.get("ports") or () if p.get("port") == port), None)
    if svc_port is None:
        raise Unreachable("ServicePortError", f'service/{name} in "{ns}" is not listening on port {port}')
    port_name = svc_port.get("name") or ""
    slices = await _slices(ctx, ns, name)
    for es in slices:
        for ep_port in es.get("ports") or ():
            if (ep_port.get("name") or "") != port_name:
                continue
            for ep in es.get("endpoints") or ():
                if (ep.get("conditions") or {}).get("ready") is False or not ep.get("addresses"):
                    continue
                forwarded = await _forwarded(ctx, ep.get("targetRef"), int(ep_port.get("port") or 0))
                return forwarded or (ep["addresses"][0], int(ep_port.get("port") or 0))
    endpoints = await _get(ctx, "Endpoints", ns, name)
    for subset in (endpoints or {}).get("subsets") or ():
        for ep_port in subset.get("ports") or ():
            if (ep_port.get("name") or "") != port_name:
                continue
            for addr in subset.get("addresses") or ():
                forwarded = await _forwarded(ctx, addr.get("targetRef"), int(ep_port.get("port") or 0))
                return forwarded or (addr.get("ip", ""), int(ep_port.get("port") or 0))
    if not slices and endpoints is None:
        raise Unreachable("EndpointsNotFound", f'cannot find endpointslices for service/{name} in "{ns}"')
    raise Unreachable("MissingEndpoints",
                      f'endpointslices for service/{name} in "{ns}" have no addresses with port name "{port_name}"')


async def dial(ctx: Context, service: Obj) -> tuple[str, int]:
    """``resolve``, then the cluster's dial policy: the checked IP and port to connect to;
    raises Unreachable or dialpolicy.Refused."""
    host, port = await resolve(ctx, service)
    return await ctx.dial_policy.resolve(host, port), port


def ssl_for(apiservice: Obj, client: KeyPair | None = None) -> ssl.SSLContext | bool:
    """The TLS settings to reach the APIService's server: verified against ``caBundle`` (the
    system roots without one) or not at all with ``insecureSkipTLSVerify``; presenting the
    front-proxy client certificate when the control plane has one."""
    spec = apiservice.get("spec") or {}
    if spec.get("insecureSkipTLSVerify"):
        if client is None:
            return False
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    else:
        pem = ca_bundle_pem(spec)
        context = ssl.create_default_context(cadata=pem.decode("ascii", "replace") if pem else None)
    if client is not None:
        with tempfile.TemporaryDirectory(prefix="vkube-proxy-") as tmp:
            cert, key = Path(tmp) / "tls.crt", Path(tmp) / "tls.key"
            write_public(cert, client.cert_pem)
            write_private(key, client.key_pem)
            context.load_cert_chain(cert, key)
    return context


def server_name(apiservice: Obj) -> str:
    svc = (apiservice.get("spec") or {}).get("service") or {}
    return f"{svc.get('name', '')}.{svc.get('namespace', '')}.svc"


def _url(host: str, port: int, path: str, query: str = "") -> str:
    host = f"[{host}]" if ":" in host and not host.startswith("[") else host
    return f"https://{host}:{port}{path}" + (f"?{query}" if query else "")


def identity_headers(user: UserInfo) -> list[tuple[str, str]]:
    headers = [("X-Remote-User", user.name)]
    headers += [("X-Remote-Group", g) for g in user.groups]
    for key, values in (user.extra or {}).items():
        for value in values:
            headers.append((f"X-Remote-Extra-{urllib.parse.quote(key, safe='')}", value))
    return headers


async def check(ctx: Context, apiservice: Obj, tls: ssl.SSLContext | bool) -> tuple[str, str, str, Obj | None]:
    """One availability check: (status, reason, message, the group-version's discovery
    document or None)."""
    spec = apiservice["spec"]
    try:
        host, port = await resolve(ctx, spec["service"])
    except Unreachable as exc:
        return "False", exc.reason, exc.message, None
    group, version = spec.get("group", ""), spec.get("version", "")
    path = f"/apis/{group}/{version}" if group else f"/api/{version}"
    url = _url(host, port, path)
    try:
        address = await ctx.dial_policy.resolve(host, port)
    except Refused as exc:
        return "False", "FailedDiscoveryCheck", f"failing or missing response from {url}: {exc}", None
    headers = [("X-Remote-User", "system:kube-aggregator"), ("X-Remote-Group", "system:masters"),
               ("Accept", "application/json")]
    try:
        async with ctx.http_session().get(_url(address, port, path), headers=headers, ssl=tls,
                                          server_hostname=server_name(apiservice), allow_redirects=False,
                                          timeout=aiohttp.ClientTimeout(total=CHECK_TIMEOUT)) as resp:
            if not 200 <= resp.status < 300:
                return "False", "FailedDiscoveryCheck", f"failing or missing response from {url}: bad status from {url}: {resp.status}", None
            body = await read_capped(resp.content, DISCOVERY_MAX)
    except TooLarge as exc:
        return "False", "FailedDiscoveryCheck", f"failing or missing response from {url}: {exc}", None
    except asyncio.TimeoutError:
        return "False", "FailedDiscoveryCheck", f"timed out waiting for {url}", None
    except (aiohttp.ClientError, OSError, ssl.SSLError, ValueError) as exc:
        return "False", "FailedDiscoveryCheck", f"failing or missing response from {url}: {_go_error(exc)}", None
    try:
        import orjson

        doc = orjson.loads(body)
    except ValueError:
        doc = None
    return "True", "Passed", "all checks passed", doc if isinstance(doc, dict) else None


def _go_error(exc: BaseException) -> str:
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return f"Get: tls: failed to verify certificate: {exc.certificate_error}"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return f"dial tcp {exc.host}:{exc.port}: connect: {exc.strerror or 'connection refused'}"
    return str(exc) or type(exc).__name__


def _unavailable(text: str = "service unavailable") -> web.Response:
    """kube-aggregator's ``proxyError``: ``http.Error`` — plain text, 503."""
    return web.Response(status=503, text=text + "\n", headers={"X-Content-Type-Options": "nosniff"},
                        content_type="text/plain")


async def proxy(request: web.Request, rc: RequestContext, ctx: Context, apiservice: Obj,
                available: bool, tls: ssl.SSLContext | bool) -> web.StreamResponse:
    """Forward ``request`` to the APIService's service and stream the answer back."""
    if not available:
        return _unavailable()
    try:
        host, port = await dial(ctx, apiservice["spec"]["service"])
    except Unreachable:
        return _unavailable()
    except Refused as exc:
        return _unavailable(f"error trying to reach service: {exc}")
    headers = [(k, v) for k, v in request.headers.items()
               if k.lower() not in _HOP and not k.lower().startswith(_STRIPPED_PREFIXES)]
    headers += identity_headers(rc.user)
    url = _url(host, port, request.path, request.query_string)
    body = await request.read() if request.can_read_body else None
    try:
        upstream = await ctx.http_session().request(
            request.method, url, headers=headers, data=body, ssl=tls,
            server_hostname=server_name(apiservice), allow_redirects=False,
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=10))
    except (aiohttp.ClientError, OSError, ssl.SSLError, asyncio.TimeoutError) as exc:
        return _unavailable(f"error trying to reach service: {_go_error(exc)}")
    try:
        resp = web.StreamResponse(status=upstream.status)
        for key, value in upstream.headers.items():
            if key.lower() not in _HOP and key.lower() != "content-encoding":
                resp.headers.add(key, value)
        await resp.prepare(request)
        async for chunk in upstream.content.iter_any():
            await resp.write(chunk)
        await resp.write_eof()
        return resp
    finally:
        upstream.release()


def aggregated_resources(group: str, version: str, listed: Obj) -> list[Obj]:
    """A legacy APIResourceList as the ``resources`` of an aggregated-discovery version."""
    out: list[Obj] = []
    subs: dict[str, list[Obj]] = {}
    for r in listed.get("resources") or ():
        name = r.get("name", "")
        if "/" in name:
            parent, _, sub = name.partition("/")
            subs.setdefault(parent, []).append({
                "subresource": sub, "verbs": list(r.get("verbs") or ()),
                "responseKind": {"group": r.get("group", group), "version": r.get("version", version),
                                 "kind": r.get("kind", "")}})
            continue
        entry: Obj = {"resource": name,
                      "responseKind": {"group": group, "version": version, "kind": r.get("kind", "")},
                      "scope": "Namespaced" if r.get("namespaced") else "Cluster",
                      "singularResource": r.get("singularName") or r.get("kind", "").lower(),
                      "verbs": list(r.get("verbs") or ())}
        for key in ("shortNames", "categories"):
            if r.get(key):
                entry[key] = list(r[key])
        out.append(entry)
    for entry in out:
        if entry["resource"] in subs:
            entry["subresources"] = subs[entry["resource"]]
    return out

