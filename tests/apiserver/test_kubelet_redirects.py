"""The control plane's kubelet session never follows a redirect: the dial policy checked only
the first address, and a redirect (to this machine's loopback, say) would lead past it, for
logs (a GET) and exec/attach/port-forward (a WebSocket upgrade) alike."""

from __future__ import annotations

import aiohttp
import pytest
from aiohttp import web

from vkube.apiserver.context import Context


async def _site(app: web.Application) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]


async def test_kubelet_redirects_are_not_followed() -> None:
    hits: list[str] = []

    async def secret(request: web.Request) -> web.Response:
        hits.append(request.path)
        return web.Response(text="SECRET")
    inner = web.Application()
    inner.router.add_get("/secret", secret)
    inner_runner, inner_port = await _site(inner)

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPFound(f"http://127.0.0.1:{inner_port}/secret")
    outer = web.Application()
    outer.router.add_get("/containerLogs/ns/p/c", redirect)
    outer_runner, outer_port = await _site(outer)
    ctx = Context.__new__(Context)
    ctx._http, ctx.kubelet_tls = None, None
    session = ctx.http_session()
    try:
        url = f"http://127.0.0.1:{outer_port}/containerLogs/ns/p/c"
        with pytest.raises(aiohttp.ClientResponseError, match="redirect, which is not followed"):
            await session.get(url)
        with pytest.raises(aiohttp.ClientResponseError, match="redirect, which is not followed"):
            await session.ws_connect(url)
        assert hits == []
    finally:
        await session.close()
        await outer_runner.cleanup()
        await inner_runner.cleanup()
