"""A tiny "kubelet" for the virtual cluster's nodes: ``kubectl logs`` in the virtual cluster
goes API server → node's kubelet endpoint (127.0.0.1:PORT, this server) → the host API's
``pods/log`` of the host pod, streamed back. ``exec``, ``attach`` and ``portForward`` arrive
as WebSockets (channel.k8s.io protocols) and are relayed frame by frame to a WebSocket on the
host API's ``pods/NAME/exec|attach|portforward``, so the host's own kubelet does the work.
Virtual nodes point their ``status.daemonEndpoints.kubeletEndpoint.Port`` here.
"""

from __future__ import annotations

import logging
from contextlib import AbstractAsyncContextManager
from typing import Any

from aiohttp import web

from vkube.api import errors
from vkube.client.client import Client
from vkube.netio import offered_protocols, relay_websockets
from vkube.pki.cluster import KubeletTLS
from vkube.syncer.podrewrite import host_pod_name
from vkube.syncer.translate import Translator

log = logging.getLogger(__name__)

_LOG_PARAMS = ("follow", "previous", "timestamps", "tailLines", "sinceSeconds", "sinceTime",
               "limitBytes", "insecureSkipTLSVerifyBackend")


class KubeletProxy:
    """``async with KubeletProxy(host, tr, port=0) as k: k.port``."""

    def __init__(self, host: Client, tr: Translator, *, tls: KubeletTLS, port: int = 0) -> None:
        self.host = host
        self.tr = tr
        self.port = port
        self.tls = tls  # the virtual cluster's CA: only its API server may call
        self._runner: web.AppRunner | None = None

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self.tls.middleware()])
        app.router.add_get("/containerLogs/{namespace}/{pod}/{container}", self._logs)
        for verb in ("exec", "attach"):
            app.router.add_get(f"/{verb}/{{namespace}}/{{pod}}/{{container}}", self._stream)
        app.router.add_get("/portForward/{namespace}/{pod}", self._stream)
        app.router.add_get("/healthz", self._healthz)
        return app

    async def start(self) -> None:
        # a stream whose caller (the virtual API server) left ends at once, and stop does not
        # wait aiohttp's default minute for streams still open (a followed log of a quiet pod)
        self._runner = web.AppRunner(self.app(), access_log=None, handle_signals=False,
                                     handler_cancellation=True, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port, ssl_context=self.tls.context)
        await site.start()
        sock = site._server.sockets[0]  # type: ignore[union-attr]  # noqa: SLF001
        self.port = sock.getsockname()[1]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> "KubeletProxy":
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _healthz(self, req: web.Request) -> web.Response:
        return web.Response(text="ok")

    def host_log_path(self, namespace: str, pod: str) -> str:
        hpod = host_pod_name(self.tr, pod, namespace)
        return f"/api/v1/namespaces/{self.tr.host_namespace}/pods/{hpod}/log"

    async def _logs(self, req: web.Request) -> web.StreamResponse:
        ns, pod, container = (req.match_info[k] for k in ("namespace", "pod", "container"))
        params: dict[str, Any] = {"container": container}
        params.update({k: req.query[k] for k in _LOG_PARAMS if k in req.query})
        path = self.host_log_path(ns, pod)
        follow = req.query.get("follow") in ("1", "true")
        try:
            if not follow:
                body = await self.host.request("GET", path, params=params, raw=True)
                return web.Response(body=body, content_type="text/plain")
            resp: web.StreamResponse | None = None
            async for chunk in self.host.stream(path, params=params):
                if resp is None:
                    resp = web.StreamResponse(headers={"Content-Type": "text/plain"})
                    await resp.prepare(req)
                await resp.write(chunk)
            if resp is None:
                return web.Response(body=b"", content_type="text/plain")
            await resp.write_eof()
            return resp
        except errors.StatusError as e:
            if req.transport is None or req.transport.is_closing():
                raise
            return web.json_response(e.to_status(), status=e.code)

    def connect(self, sub: str, namespace: str, pod: str, container: str | None,
                query: list[tuple[str, str]], protocols: list[str]
                ) -> AbstractAsyncContextManager[Any]:
        """The WebSocket to the host API's ``pods/HOSTPOD/SUB`` for a virtual pod: what this
        endpoint relays to, and what the virtual API server opens itself when it runs in the
        same process (one relay less on every frame). Raises StatusError before the upgrade."""
        hpod = host_pod_name(self.tr, pod, namespace)
        path = f"/api/v1/namespaces/{self.tr.host_namespace}/pods/{hpod}/{sub}"
        params = [(k, v) for k, v in query if k != "container"]
        if container:
            params.append(("container", container))
        return self.host.websocket(path, params=params, protocols=protocols)

    async def _stream(self, req: web.Request) -> web.StreamResponse:
        """exec / attach / portForward: one WebSocket to the host API per client WebSocket,
        same query and offered protocols; frames relayed both ways until either side ends."""
        ns, pod = req.match_info["namespace"], req.match_info["pod"]
        verb = req.path.split("/", 2)[1]
        sub = "portforward" if verb == "portForward" else verb
        offered = offered_protocols(req.headers)
        if not web.WebSocketResponse(protocols=offered).can_prepare(req).ok:
            return web.Response(status=400, text=f"{verb} needs a WebSocket upgrade")
        try:
            async with self.connect(sub, ns, pod, req.match_info.get("container"),
                                    list(req.query.items()), offered) as upstream:
                ws = web.WebSocketResponse(
                    protocols=(upstream.protocol,) if upstream.protocol else offered)
                await ws.prepare(req)
                await relay_websockets(ws, upstream)
                return ws
        except errors.StatusError as e:
            # before the upgrade: the virtual API server turns this into the client's error
            return web.Response(status=e.code, text=e.message)

