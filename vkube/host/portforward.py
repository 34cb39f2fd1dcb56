"""Port forwarding of the simulated kubelet, the way KWOK's PortForward configuration does it:
a simulated pod has no network namespace, so a container port is forwarded to the real address
its pod names in the annotation ``vkube.io/port-forward-PORT: HOST:PORT``; without one, a port
a container of the pod declares is answered by the pod's simulated listener
(``vkube.host.simlistener``: HTTP gets a 200, anything else is echoed), as ``kubectl exec … curl``
is; any other port is refused on the error stream ("connection refused"), as a kubelet refuses
a port nothing listens on.

Protocol: kubectl's ``SPDY/3.1+portforward.k8s.io`` tunnelled over a WebSocket (a pair of SPDY
streams per connection, joined by their ``requestID`` header: ``error`` and ``data``, as
kubelet's pkg/kubelet/cri/streaming/portforward/httpstream.go pairs them)."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from vkube.api.meta import Obj
from vkube.api.portforward import ANN_PREFIX, parse_target
from vkube.host.simlistener import SimulatedConnection, declares_port, describe
from vkube.netio.spdy import ProtocolError, SpdySession, SpdyStream

log = logging.getLogger(__name__)

SPDY_TUNNEL_PROTOCOL = "SPDY/3.1+portforward.k8s.io"


def forward_target(pod: Obj, port: int) -> tuple[str, int] | None:
    """The real address a pod's port is forwarded to, from its annotation."""
    value = ((pod.get("metadata") or {}).get("annotations") or {}).get(f"{ANN_PREFIX}{port}")
    return parse_target(value) if value else None


def refused(pod: Obj, port: int) -> str:
    """The error of a port nothing listens on, worded as a kubelet's (its dial's error)."""
    meta = pod.get("metadata") or {}
    return (f"error forwarding port {port} to pod {meta.get('namespace')}/{meta.get('name')}: "
            f"failed to connect to localhost:{port} inside the pod: dial tcp4 127.0.0.1:{port}: "
            f"connect: connection refused (vkube: no container of the pod declares "
            f"containerPort {port}, and no annotation {ANN_PREFIX}{port} names an address)")


class PortForwardSession:
    """One client connection: SPDY streams in, TCP connections out."""

    def __init__(self, pod: Obj, send) -> None:  # noqa: ANN001 - an async bytes sender
        self.pod = pod
        self.session = SpdySession(send, self._on_stream)
        self._pairs: dict[str, dict[str, SpdyStream]] = {}
        self._ready: dict[str, asyncio.Event] = {}

    async def feed(self, data: bytes) -> None:
        await self.session.feed(data)

    async def aclose(self) -> None:
        await self.session.aclose()

    async def _on_stream(self, stream: SpdyStream) -> None:
        """Waits for the other stream of its pair; the data stream's task does the forwarding."""
        kind = stream.headers.get("streamtype", "")
        rid = stream.headers.get("requestid") or stream.headers.get("port", "")
        pair = self._pairs.setdefault(rid, {})
        pair[kind] = stream
        ready = self._ready.setdefault(rid, asyncio.Event())
        if "data" in pair and "error" in pair:
            ready.set()
        if kind != "data":
            return
        try:
            await asyncio.wait_for(ready.wait(), timeout=30)
        except TimeoutError:
            await stream.close()
            return
        try:
            await self._forward(pair["data"], pair["error"])
        finally:
            self._pairs.pop(rid, None)
            self._ready.pop(rid, None)

    async def _forward(self, data: SpdyStream, error: SpdyStream) -> None:
        meta = self.pod.get("metadata") or {}
        where = f"pod {meta.get('namespace')}/{meta.get('name')}"
        try:
            port = int(data.headers.get("port", ""))
            if not 0 < port < 65536:
                raise ValueError
        except ValueError:
            await _fail(data, error, f"invalid port {data.headers.get('port')!r}")
            return
        target = forward_target(self.pod, port)
        if target is None and declares_port(self.pod, port):
            await _simulate(data, error, SimulatedConnection(describe(self.pod), port))
            return
        if target is None:
            await _fail(data, error, refused(self.pod, port))
            return
        try:
            reader, writer = await asyncio.open_connection(*target)
        except OSError as e:
            await _fail(data, error, f"error forwarding port {port} to {where} "
                                     f"({target[0]}:{target[1]}): {e}")
            return

        async def up() -> None:  # client → target; the client's FIN half-closes the target
            while chunk := await data.read():
                writer.write(chunk)
                await writer.drain()
            if not data.reset and writer.can_write_eof():
                writer.write_eof()

        async def down() -> None:  # target → client, then FIN
            while chunk := await reader.read(64 * 1024):
                await data.write(chunk)
            await data.close()

        tasks = {asyncio.create_task(up()), asyncio.create_task(down())}
        try:
            pending = tasks
            while pending:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                if data.reset or any(t.exception() for t in done if not t.cancelled()):
                    break
        except (ConnectionError, OSError):
            pass
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
            with contextlib.suppress(Exception):
                await error.close()


async def _simulate(data: SpdyStream, error: SpdyStream, conn: SimulatedConnection) -> None:
    """Serves one connection from the simulated listener until either side closes."""
    with contextlib.suppress(ConnectionError, OSError):
        while True:
            chunk = await data.read()
            reply, close = conn.receive(chunk)
            if reply:
                await data.write(reply)
            if close or data.reset:
                break
    with contextlib.suppress(Exception):
        await data.close()
    with contextlib.suppress(Exception):
        await error.close()


async def _fail(data: SpdyStream, error: SpdyStream, message: str) -> None:
    log.info("port-forward: %s", message)
    with contextlib.suppress(Exception):
        await error.write(message.encode())
        await error.close()
    with contextlib.suppress(Exception):
        await data.close()


#: the WebSocket port-forward protocols (kubelet's portforward/websocket.go): per requested
#: port i, channel 2i carries data and 2i+1 errors; the first frame on each is the port
#: (2 bytes, little endian). What the official Python client speaks.
CHANNEL_PROTOCOLS = ("v4.channel.k8s.io", "channel.k8s.io")


async def serve_channels(ws, pod: Obj, ports: list[int]) -> None:  # noqa: ANN001 - aiohttp ws
    """Forward each of ``ports`` over its channel pair until the client closes."""
    from aiohttp import WSMsgType

    lock = asyncio.Lock()

    async def send(channel: int, data: bytes) -> None:
        async with lock:
            await ws.send_bytes(bytes([channel]) + data)

    writers: dict[int, asyncio.StreamWriter] = {}
    simulated: dict[int, SimulatedConnection] = {}
    tasks: list[asyncio.Task[None]] = []
    for i, port in enumerate(ports):
        head = port.to_bytes(2, "little")
        await send(2 * i, head)
        await send(2 * i + 1, head)
        target = forward_target(pod, port)
        if target is None and declares_port(pod, port):
            simulated[2 * i] = SimulatedConnection(describe(pod), port)
            continue
        if target is None:
            await send(2 * i + 1, refused(pod, port).encode())
            continue
        try:
            reader, writer = await asyncio.open_connection(*target)
        except OSError as e:
            await send(2 * i + 1, f"error forwarding port {port}: {e}".encode())
            continue
        writers[2 * i] = writer

        async def down(reader: asyncio.StreamReader = reader, channel: int = 2 * i) -> None:
            with contextlib.suppress(ConnectionError, OSError, RuntimeError):
                while chunk := await reader.read(64 * 1024):
                    await send(channel, chunk)

        tasks.append(asyncio.create_task(down()))
    try:
        async for msg in ws:
            if msg.type != WSMsgType.BINARY:
                break
            if not msg.data:
                continue
            if (conn := simulated.get(msg.data[0])) is not None and len(msg.data) > 1:
                reply, close = conn.receive(msg.data[1:])
                if reply:
                    await send(msg.data[0], reply)
                if close:  # the listener closed: this port's channel answers no more
                    simulated.pop(msg.data[0])
                continue
            writer = writers.get(msg.data[0])
            if writer is not None and len(msg.data) > 1:
                writer.write(msg.data[1:])
                await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for w in writers.values():
            w.close()


class _Message:
    """What an aiohttp WebSocket yields (``type``, ``data``), for relay_websockets."""

    __slots__ = ("data", "extra", "type")

    def __init__(self, data: bytes) -> None:
        from aiohttp import WSMsgType

        self.type = WSMsgType.BINARY
        self.data = data
        self.extra = None


class LocalPortForward:
    """The kubelet's port-forward as an in-process "WebSocket" (``send_bytes``, iteration,
    ``close``, ``protocol``): the API server of the same process relays its client's socket to
    it, so a frame costs no second WebSocket encoding and no loopback hop. Frames from the
    client go straight into the SPDY session; the session's frames are queued for the relay."""

    protocol = SPDY_TUNNEL_PROTOCOL

    def __init__(self, pod: Obj) -> None:
        # bounded: a fast target waits for the client, as with a real socket
        self._out: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=64)
        self.session = PortForwardSession(pod, self._send)
        self.closed = False

    async def _send(self, frame: bytes) -> None:
        if self.closed:
            raise ConnectionResetError("port-forward session closed")
        await self._out.put(frame)

    async def send_bytes(self, data: bytes) -> None:
        if self.closed:
            raise ConnectionResetError("port-forward session closed")
        try:
            await self.session.feed(data)
        except ProtocolError as e:
            log.info("port-forward: %s", e)
            await self.close()
            return
        if self.session.session.closed.is_set():
            await self.close()

    async def send_str(self, data: str) -> None:
        await self.close()  # the tunnel speaks binary frames only

    async def close(self, **_: object) -> bool:
        if not self.closed:
            self.closed = True
            await self.session.aclose()
            with contextlib.suppress(asyncio.QueueFull):
                self._out.put_nowait(None)  # wakes a waiting reader; a full queue is drained first
        return True

    def __aiter__(self) -> "LocalPortForward":
        return self

    async def __anext__(self) -> _Message:
        if self.closed and self._out.empty():
            raise StopAsyncIteration
        frame = await self._out.get()
        if frame is None:
            raise StopAsyncIteration
        return _Message(frame)

    async def __aenter__(self) -> "LocalPortForward":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
