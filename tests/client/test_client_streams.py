"""Client.stream and Client.websocket against a small aiohttp server: credentials, repeated
query parameters, subprotocol negotiation, frames both ways, and refusals as StatusErrors."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from vkube.api import errors
from vkube.client import Client


@pytest.fixture
async def server() -> AsyncIterator[tuple[str, list[dict]]]:
    seen: list[dict] = []

    async def exec_(req: web.Request) -> web.StreamResponse:
        seen.append({"auth": req.headers.get("Authorization"),
                     "command": req.query.getall("command", [])})
        if req.headers.get("Authorization") != "Bearer t0k":
            return web.json_response({"kind": "Status", "code": 403, "reason": "Forbidden",
                                      "message": "no"}, status=403)
        ws = web.WebSocketResponse(protocols=("v5.channel.k8s.io", "v4.channel.k8s.io"))
        await ws.prepare(req)
        async for msg in ws:
            await ws.send_bytes(b"\x01" + msg.data[1:])
            break
        await ws.close()
        return ws

    async def log(req: web.Request) -> web.StreamResponse:
        if req.query.get("container") != "c":
            return web.json_response({"kind": "Status", "code": 400, "reason": "BadRequest",
                                      "message": "which container?"}, status=400)
        resp = web.StreamResponse()
        await resp.prepare(req)
        for part in (b"one\n", b"two\n"):
            await resp.write(part)
        await resp.write_eof()
        return resp

    app = web.Application()
    app.router.add_get("/exec", exec_)
    app.router.add_get("/log", log)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]  # noqa: SLF001
    try:
        yield f"http://127.0.0.1:{port}", seen
    finally:
        await runner.cleanup()


async def test_websocket_negotiates_and_relays(server) -> None:
    url, seen = server
    async with Client(url, token="t0k") as c:
        async with c.websocket("/exec", params=[("command", "echo"), ("command", "hi")],
                               protocols=["v5.channel.k8s.io", "channel.k8s.io"]) as ws:
            assert ws.protocol == "v5.channel.k8s.io"
            await ws.send_bytes(b"\x00hi\n")
            msg = await ws.receive()
            assert msg.type == aiohttp.WSMsgType.BINARY and msg.data == b"\x01hi\n"
    assert seen[-1] == {"auth": "Bearer t0k", "command": ["echo", "hi"]}


async def test_websocket_refused_is_a_status_error(server) -> None:
    url, _ = server
    async with Client(url, token="wrong") as c:
        with pytest.raises(errors.Forbidden):
            async with c.websocket("/exec", protocols=["v5.channel.k8s.io"]):
                pass
    async with Client("http://127.0.0.1:9", timeout=2) as c:
        with pytest.raises(errors.ServiceUnavailable):
            async with c.websocket("/exec"):
                pass


async def test_stream_yields_the_body_and_maps_errors(server) -> None:
    url, _ = server
    async with Client(url) as c:
        body = b"".join([chunk async for chunk in c.stream("/log", params={"container": "c"})])
        assert body == b"one\ntwo\n"
        with pytest.raises(errors.BadRequest, match="which container"):
            async for _ in c.stream("/log"):
                pass
