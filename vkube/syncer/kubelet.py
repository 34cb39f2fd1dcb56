"""A tiny "kubelet" for the virtual cluster's nodes: ``kubectl logs`` in the virtual cluster
goes API server → node's kubelet endpoint (127.0.0.1:PORT, this server) → the host API's
``pods/log`` of the host pod, streamed back. Virtual nodes point their
``status.daemonEndpoints.kubeletEndpoint.Port`` here.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
from aiohttp import web

from vkube.api import errors
from vkube.client.client import Client
from vkube.syncer.podrewrite import host_pod_name
from vkube.syncer.translate import Translator

log = logging.getLogger(__name__)

_LOG_PARAMS = ("follow", "previous", "timestamps", "tailLines", "sinceSeconds", "sinceTime",
               "limitBytes", "insecureSkipTLSVerifyBackend")


async def stream_get(client: Client, path: str, params: dict[str, str]) -> AsyncIterator[bytes]:
    """GET ``path`` on ``client``'s server and yield the body as it arrives (for follow=true).
    Uses the client's own session so its credentials and TLS settings apply."""
    session = client._get_session()  # noqa: SLF001 - Client has no public streaming GET yet
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=client.timeout, sock_read=None)
    try:
        async with session.get(client.server + path, params=params, timeout=timeout) as resp:
            if resp.status >= 300:
                body = await resp.read()
                from vkube.client.client import _error_from_reply  # noqa: PLC0415
                raise _error_from_reply(resp.status, body)
            async for chunk in resp.content.iter_any():
                yield chunk
    except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as e:
        raise errors.ServiceUnavailable(f"GET {path}: {e}") from e


class KubeletProxy:
    """``async with KubeletProxy(host, tr, port=0) as k: k.port``."""

    def __init__(self, host: Client, tr: Translator, *, port: int = 0) -> None:
        self.host = host
        self.tr = tr
        self.port = port
        self._runner: web.AppRunner | None = None

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/containerLogs/{namespace}/{pod}/{container}", self._logs)
        app.router.add_get("/healthz", self._healthz)
        return app

    async def start(self) -> None:
        self._runner = web.AppRunner(self.app(), access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
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
            async for chunk in stream_get(self.host, path, params):
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
