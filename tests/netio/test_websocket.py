"""The shared WebSocket relay: frames go both ways unchanged (binary and text, the chosen
subprotocol kept), the last frames before a close still arrive, and a close on either side
ends the session on both. Real aiohttp servers on loopback port 0."""

from __future__ import annotations

import asyncio

import aiohttp
from aiohttp import web

from vkube.netio import offered_protocols, relay_websockets

PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io")


async def _serve(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]  # noqa: SLF001
    return runner, f"http://127.0.0.1:{port}"


async def test_relay_both_ways_keeps_last_frames_and_closes() -> None:
    async def backend(req: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(protocols=PROTOCOLS)
        await ws.prepare(req)
        async for msg in ws:
            if msg.type == aiohttp.WSMsgType.TEXT and msg.data == "exit":
                await ws.send_bytes(b"\x03{\"status\":\"Success\"}")  # exec's status channel
                break
            if msg.type == aiohttp.WSMsgType.BINARY:
                await ws.send_bytes(b"\x01" + msg.data[1:].upper())
            else:
                await ws.send_str("echo:" + msg.data)
        await ws.close()
        return ws

    async def relay(req: web.Request) -> web.WebSocketResponse:
        offered = offered_protocols(req.headers)
        async with aiohttp.ClientSession() as s, s.ws_connect(
                upstream_url, protocols=offered) as upstream:
            ws = web.WebSocketResponse(protocols=(upstream.protocol,) if upstream.protocol else ())
            await ws.prepare(req)
            await relay_websockets(ws, upstream)
            return ws

    back_app = web.Application()
    back_app.router.add_get("/", backend)
    back, upstream_url = await _serve(back_app)
    front_app = web.Application()
    front_app.router.add_get("/", relay)
    front, front_url = await _serve(front_app)
    try:
        async with aiohttp.ClientSession() as s, s.ws_connect(
                front_url, protocols=PROTOCOLS) as ws:
            assert ws.protocol == "v5.channel.k8s.io"
            await ws.send_bytes(b"\x00hello")
            assert (await ws.receive(timeout=30)).data == b"\x01HELLO"
            await ws.send_str("text")
            assert (await ws.receive(timeout=30)).data == "echo:text"
            await ws.send_str("exit")
            last = await ws.receive(timeout=30)
            assert last.data == b"\x03{\"status\":\"Success\"}"
            end = await ws.receive(timeout=30)
            assert end.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED,
                                aiohttp.WSMsgType.CLOSING)
    finally:
        await front.cleanup()
        await back.cleanup()


async def test_client_close_ends_the_upstream_session() -> None:
    ended = asyncio.Event()

    async def backend(req: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(req)
        async for _ in ws:
            pass
        ended.set()  # the relay closed us when the client left
        return ws

    async def relay(req: web.Request) -> web.WebSocketResponse:
        async with aiohttp.ClientSession() as s, s.ws_connect(upstream_url) as upstream:
            ws = web.WebSocketResponse()
            await ws.prepare(req)
            await relay_websockets(ws, upstream)
            return ws

    back_app = web.Application()
    back_app.router.add_get("/", backend)
    back, upstream_url = await _serve(back_app)
    front_app = web.Application()
    front_app.router.add_get("/", relay)
    front, front_url = await _serve(front_app)
    try:
        async with aiohttp.ClientSession() as s:
            ws = await s.ws_connect(front_url)
            await ws.send_str("x")
            await ws.close()
        await asyncio.wait_for(ended.wait(), 60)
    finally:
        await front.cleanup()
        await back.cleanup()


def test_offered_protocols() -> None:
    assert offered_protocols({"Sec-WebSocket-Protocol": " a, b ,,c"}) == ["a", "b", "c"]
    assert offered_protocols({}) == []
