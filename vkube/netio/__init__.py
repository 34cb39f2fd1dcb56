"""Small network I/O utilities shared by the API server, the client and the syncer (layers
that may not import each other): the bottom layer, importing nothing from vkube.

The package imports nothing itself: ``vkube.netio.trust`` must be importable before aiohttp
(which ``websocket`` imports), so the re-exports below load on first access."""

from __future__ import annotations

from typing import Any

__all__ = ["offered_protocols", "relay_websockets"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from vkube.netio import websocket

        return getattr(websocket, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
