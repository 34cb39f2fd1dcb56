"""Small network I/O utilities shared by the API server, the client and the syncer (layers
that may not import each other): the bottom layer, importing nothing from vkube."""

from vkube.netio.websocket import offered_protocols, relay_websockets

__all__ = ["offered_protocols", "relay_websockets"]
