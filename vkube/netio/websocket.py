"""The WebSocket relay behind ``pods/exec``, ``attach`` and ``portforward``: the API server
relays a client's socket to the node's kubelet, and the syncer's kubelet endpoint relays it on
to the host cluster's API. One implementation, so both hops end a session the same way."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from typing import Any

import aiohttp

__all__ = ["offered_protocols", "relay_websockets"]

_CLOSED = (ConnectionResetError, aiohttp.ClientError, RuntimeError)


def offered_protocols(headers: Mapping[str, str]) -> list[str]:
    """The subprotocols a client offers in ``Sec-WebSocket-Protocol``, in its order."""
    return [p.strip() for p in headers.get("Sec-WebSocket-Protocol", "").split(",") if p.strip()]


async def _pump(src: Any, dst: Any) -> None:
    """Copy data frames ``src`` → ``dst`` until ``src`` closes or errs; then close ``dst``.

    When ``dst`` refuses a frame it is going away (a command that ended while its client was
    still sending stdin): closing it from here would read — and drop — the frames it still
    has for the other direction (exec's output and status). Its own reader, the other
    direction, ends the session once it has relayed them."""
    close = True
    try:
        async for msg in src:
            if msg.type not in (aiohttp.WSMsgType.BINARY, aiohttp.WSMsgType.TEXT):
                break
            try:
                if msg.type == aiohttp.WSMsgType.BINARY:
                    await dst.send_bytes(msg.data)
                else:
                    await dst.send_str(msg.data)
            except _CLOSED:
                close = False
                return
    except (ConnectionResetError, aiohttp.ClientError):
        pass  # the peer went away: the other direction ends with the close below
    finally:
        if close:
            with contextlib.suppress(*_CLOSED):
                await dst.close()


async def relay_websockets(a: Any, b: Any, *, drain_timeout: float = 5.0) -> None:
    """Relay frames both ways between two open WebSockets (aiohttp server or client side).
    When one side closes, the frames already read still reach the other (the status channel
    of exec comes last), then both are closed; at most ``drain_timeout`` seconds are spent
    on that. Cancelling the caller cancels both directions."""
    tasks = [asyncio.create_task(_pump(a, b)), asyncio.create_task(_pump(b, a))]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        await asyncio.wait(tasks, timeout=drain_timeout)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
