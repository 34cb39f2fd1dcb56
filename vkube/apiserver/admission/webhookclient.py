"""Calling one admission or conversion webhook: where it is (``clientConfig.url`` or
``clientConfig.service``), how it is trusted (``caBundle``, one ``ssl.SSLContext`` per bundle)
and the POST itself, with a per-call timeout and bounded concurrency per control plane.

Failures raise :class:`CallError` carrying kube-apiserver's words after ``failed to call
webhook: `` (``Post "https://…?timeout=10s": context deadline exceeded``, ``… x509:
certificate signed by unknown authority``), so the dispatchers can build the exact Status.

``clientConfig.service`` resolves, in this order (kube-apiserver would use the ClusterIP):

1. a ready endpoint's Pod carrying ``vkube.io/port-forward-<targetPort>: HOST:PORT`` — the
   embedded host's simulated pods point a container port at a real address this way;
2. the Service's ``spec.clusterIP`` — in a virtual cluster the syncer copies the host
   Service's ClusterIP there, so this reaches the synced host Service;
3. a ready endpoint's address (headless Services); an ExternalName Service's name.

The TLS server name is always ``NAME.NAMESPACE.svc``, as upstream verifies it.

Every address, a ``url``'s host too, goes through the cluster's dial policy
(``vkube.apiserver.dialpolicy``): the connection goes to the IP it checked, and a refused one
reads the same whether anything listens there. Redirects are not followed (they would lead
past the policy); answers are read up to 3 MiB.
"""

from __future__ import annotations

import asyncio
import base64
import ssl
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import orjson

from vkube.api.portforward import parse_target
from vkube.apiserver.context import Context
from vkube.apiserver.dialpolicy import Refused, TooLarge, read_capped
from vkube.apiserver.request import internal_context

__all__ = ["CallError", "WebhookClient", "Target", "PORT_FORWARD_PREFIX"]

PORT_FORWARD_PREFIX = "vkube.io/port-forward-"
_MAX_CONCURRENT = 64  # webhook calls in flight per control plane
_MAX_RESPONSE = 3 * 1024 * 1024  # kube-apiserver reads at most 3 MiB of a webhook's answer


class CallError(Exception):
    """The webhook could not be called or answered unusably: ``str()`` is the reason."""


@dataclass(frozen=True, slots=True)
class Target:
    url: str  # what messages show: https://host:port/path?timeout=Ns
    connect_url: str  # where the connection goes (an address)
    server_name: str | None  # TLS name to verify when it differs from the connect host
    host_header: str | None = None  # the url's host:port when the connection goes to its IP


class WebhookClient:
    """One per control plane: a session, TLS contexts by caBundle, a concurrency bound."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._session: Any = None
        self._contexts: dict[str, ssl.SSLContext] = {}
        self._slots = asyncio.Semaphore(_MAX_CONCURRENT)

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()

    def _http(self) -> Any:
        if self._session is None or self._session.closed:
            import aiohttp

            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=_MAX_CONCURRENT, keepalive_timeout=30),
                json_serialize=lambda o: orjson.dumps(o).decode())
        return self._session

    def ssl_context(self, ca_bundle: str | None) -> ssl.SSLContext:
        """Trust exactly the bundle (base64 PEM as in the API); none: the system roots."""
        key = ca_bundle or ""
        sc = self._contexts.get(key)
        if sc is None:
            if key:
                try:
                    pem = base64.b64decode(key, validate=True).decode()
                    sc = ssl.create_default_context(cadata=pem)
                except (ValueError, ssl.SSLError, UnicodeDecodeError) as exc:
                    raise CallError(f"could not get REST client: unable to load root certificates: {exc}") from None
            else:
                sc = ssl.create_default_context()
            if len(self._contexts) > 256:
                self._contexts.clear()
            self._contexts[key] = sc
        return sc

    # -- where ---------------------------------------------------------------------------------

    async def target(self, client_config: dict[str, Any], timeout: int) -> Target:
        query = f"timeout={timeout}s"
        url = client_config.get("url")
        if url:
            parts = urlsplit(str(url))
            full = urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))
            try:
                host, port = parts.hostname or "", parts.port or 443
            except ValueError:
                raise CallError(f'Post "{full}": invalid port in the url') from None
            address = await self._checked(full, host, port)
            if address == host.strip("[]"):
                return Target(full, full, None)
            connect = urlunsplit((parts.scheme, _hostport(address, port), parts.path, query, ""))
            return Target(full, connect, host, parts.netloc.rpartition("@")[2])
        svc = client_config.get("service") or {}
        name, namespace = str(svc.get("name", "")), str(svc.get("namespace", ""))
        port = int(svc.get("port") or 443)
        path = str(svc.get("path") or "")
        host = f"{name}.{namespace}.svc"
        shown = f"https://{host}:{port}{path}?{query}"
        address = await self.resolve(namespace, name, port, shown)
        dial_host, _, dial_port = address.rpartition(":")
        try:
            number = int(dial_port)
        except ValueError:
            raise CallError(f'Post "{shown}": dial tcp {address}: missing port in address') from None
        checked = await self._checked(shown, dial_host, number)
        connect = f"https://{_hostport(checked, number)}{path}?{query}"
        return Target(shown, connect, host)

    async def _checked(self, shown: str, host: str, port: int) -> str:
        """The cluster's dial policy on ``host:port``: the IP to connect to; CallError if refused."""
        try:
            return await self.ctx.dial_policy.resolve(host, port)
        except Refused as exc:
            raise CallError(f'Post "{shown}": {exc}') from None

    async def resolve(self, namespace: str, name: str, port: int, shown: str) -> str:
        """``host:port`` to connect to for a Service reference (see the module docstring)."""
        rc = internal_context("get", resource="services", version="v1", namespace=namespace)
        services = self.ctx.storage_for("", "Service")
        service = await services.get_or_none(rc, namespace, name) if services else None
        if service is None:
            raise CallError(f'Post "{shown}": service "{name}" not found')
        spec = service.get("spec") or {}
        if spec.get("type") == "ExternalName":
            return f"{spec.get('externalName', '')}:{port}"
        sport = next((p for p in spec.get("ports") or () if int(p.get("port") or 0) == port), None)
        if sport is None:
            raise CallError(f'Post "{shown}": service "{name}" does not have a port {port}')
        target = sport.get("targetPort", port)
        endpoints = await self._ready_endpoints(namespace, name, sport, target)
        for address, pod_ref, ep_port in endpoints:
            forwarded = await self._forwarded(namespace, pod_ref, ep_port)
            if forwarded:
                return forwarded
        cluster_ip = spec.get("clusterIP")
        if cluster_ip and cluster_ip != "None":
            return _hostport(cluster_ip, port)
        if endpoints:
            address, _, ep_port = endpoints[0]
            return _hostport(address, ep_port)
        raise CallError(f'Post "{shown}": no endpoints available for service "{name}"')

    async def _ready_endpoints(self, namespace: str, name: str, sport: dict[str, Any],
                               target: Any) -> list[tuple[str, str | None, int]]:
        rc = internal_context("get", resource="endpoints", version="v1", namespace=namespace)
        storage = self.ctx.storage_for("", "Endpoints")
        eps = await storage.get_or_none(rc, namespace, name) if storage else None
        out: list[tuple[str, str | None, int]] = []
        for subset in (eps or {}).get("subsets") or ():
            ports = subset.get("ports") or ()
            match = next((p for p in ports if sport.get("name") and p.get("name") == sport.get("name")), None)
            if match is None and len(ports) == 1:
                match = ports[0]
            if match is None:
                match = next((p for p in ports if p.get("port") == target), None)
            if match is None:
                continue
            for addr in subset.get("addresses") or ():
                ref = addr.get("targetRef") or {}
                pod = ref.get("name") if ref.get("kind") == "Pod" else None
                out.append((str(addr.get("ip", "")), pod, int(match.get("port") or 0)))
        return out

    async def _forwarded(self, namespace: str, pod_name: str | None, port: int) -> str | None:
        if not pod_name:
            return None
        rc = internal_context("get", resource="pods", version="v1", namespace=namespace)
        pods = self.ctx.storage_for("", "Pod")
        pod = await pods.get_or_none(rc, namespace, pod_name) if pods else None
        annotations = ((pod or {}).get("metadata") or {}).get("annotations") or {}
        target = parse_target(annotations.get(f"{PORT_FORWARD_PREFIX}{port}"))
        return _hostport(*target) if target else None

    # -- the call ------------------------------------------------------------------------------

    async def post(self, client_config: dict[str, Any], body: dict[str, Any], *, timeout: int) -> dict[str, Any]:
        """POST ``body``; the decoded JSON object answered. Raises CallError."""
        target = await self.target(client_config, timeout)
        sc = self.ssl_context(client_config.get("caBundle"))
        try:  # the deadline covers waiting for a free slot too
            return await asyncio.wait_for(self._bounded(target, sc, body), timeout)
        except asyncio.TimeoutError:
            raise CallError(f'Post "{target.url}": context deadline exceeded') from None

    async def _bounded(self, target: Target, sc: ssl.SSLContext, body: dict[str, Any]) -> dict[str, Any]:
        async with self._slots:
            return await self._post(target, sc, body)

    async def _post(self, target: Target, sc: ssl.SSLContext, body: dict[str, Any]) -> dict[str, Any]:
        import aiohttp

        kw: dict[str, Any] = {"ssl": sc, "allow_redirects": False}
        if target.server_name:
            kw["server_hostname"] = target.server_name
        headers = {"Content-Type": "application/json", "Accept": "application/json, */*"}
        if target.host_header:
            headers["Host"] = target.host_header
        try:
            async with self._http().post(target.connect_url, data=orjson.dumps(body),
                                         headers=headers, **kw) as resp:
                status = resp.status
                raw = await read_capped(resp.content, _MAX_RESPONSE)
        except TooLarge:
            raise CallError(f'Post "{target.url}": the response body exceeds the limit of {_MAX_RESPONSE} bytes') from None
        except aiohttp.ClientConnectorCertificateError as exc:
            raise CallError(f'Post "{target.url}": tls: failed to verify certificate: x509: '
                            f"{_cert_reason(exc)}") from None
        except aiohttp.ClientSSLError as exc:
            raise CallError(f'Post "{target.url}": remote error: tls: {exc}') from None
        except aiohttp.ClientConnectorError as exc:
            raise CallError(f'Post "{target.url}": dial tcp {_hostport_of(target.connect_url)}: '
                            f"connect: {_os_reason(exc)}") from None
        except (aiohttp.ClientError, OSError) as exc:
            raise CallError(f'Post "{target.url}": {exc}') from None
        if not 200 <= status < 300:
            text = raw.decode(errors="replace").strip()
            try:
                doc = orjson.loads(raw)
                if isinstance(doc, dict) and doc.get("kind") == "Status" and doc.get("message"):
                    raise CallError(str(doc["message"]))
            except orjson.JSONDecodeError:
                pass
            raise CallError(f'an error on the server ("{text}") has prevented the request from succeeding')
        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise CallError(f"couldn't get version/kind; json parse error: {_go_json_error(raw)}") from None
        if not isinstance(doc, dict):
            raise CallError("couldn't get version/kind; json parse error: json: cannot unmarshal "
                            f"{_json_type(doc)} into Go value of type struct {{ APIVersion string "
                            '"json:\\"apiVersion,omitempty\\""; Kind string "json:\\"kind,omitempty\\"" }')
        if not doc.get("kind"):
            raise CallError(f"Object 'Kind' is missing in '{raw.decode(errors='replace')}'")
        return doc


def _hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _hostport_of(url: str) -> str:
    parts = urlsplit(url)
    return _hostport(parts.hostname or "", parts.port or 443)


def _cert_reason(exc: Any) -> str:
    text = str(getattr(exc, "certificate_error", exc))
    if "unable to get local issuer" in text or "self-signed" in text or "self signed" in text:
        return "certificate signed by unknown authority"
    if "Hostname mismatch" in text or "IP address mismatch" in text:
        return f"certificate is not valid for the requested name ({text})"
    if "expired" in text:
        return "certificate has expired or is not yet valid"
    return text


def _os_reason(exc: Any) -> str:
    """Go's wording: ``connection refused``, ``no route to host`` (from the errno)."""
    import os

    os_error = getattr(exc, "os_error", None)
    number = getattr(os_error, "errno", None) or getattr(exc, "errno", None)
    if number:
        return os.strerror(number).lower()
    return str(getattr(os_error, "strerror", None) or exc).lower()


def _json_type(value: Any) -> str:
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    return "null"


def _go_json_error(raw: bytes) -> str:
    """encoding/json's words for the first byte it cannot take."""
    text = raw.decode(errors="replace").lstrip()
    if not text:
        return "unexpected end of JSON input"
    return f"invalid character '{text[0]}' looking for beginning of value"
