"""The server side of a SPDY/3.1 session, as kubectl speaks it for ``port-forward`` (client-go's
spdystream, tunnelled over a WebSocket whose binary messages carry the byte stream: the
``SPDY/3.1+portforward.k8s.io`` subprotocol, KEP-4006).

Only what a kubelet's stream server needs: the client opens streams (SYN_STREAM, odd ids) that
are answered with SYN_REPLY; DATA both ways with FIN half-closes; RST_STREAM; PING echoed;
GOAWAY ends the session. Header blocks are zlib-compressed with the protocol's dictionary, one
compression context per direction for the whole session (SPDY draft 3, section 2.6.10).
No flow control is enforced: spdystream neither sends nor waits for WINDOW_UPDATE."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
import zlib
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)

VERSION = 3
SYN_STREAM, SYN_REPLY, RST_STREAM, SETTINGS, PING, GOAWAY, HEADERS, WINDOW_UPDATE = 1, 2, 3, 4, 6, 7, 8, 9
FLAG_FIN = 0x01
RST_CANCEL = 5
MAX_DATA = 32 * 1024  # bytes per DATA frame we send


def _dictionary() -> bytes:
    """The header compression dictionary of SPDY draft 3, section 2.6.10.1: length-prefixed
    header words, then common values as one run of text."""
    words = ("options head post put delete trace accept accept-charset accept-encoding "
             "accept-language accept-ranges age allow authorization cache-control connection "
             "content-base content-encoding content-language content-length content-location "
             "content-md5 content-range content-type date etag expect expires from host if-match "
             "if-modified-since if-none-match if-range if-unmodified-since last-modified location "
             "max-forwards pragma proxy-authenticate proxy-authorization range referer "
             "retry-after server te trailer transfer-encoding upgrade user-agent vary via "
             "warning www-authenticate method get status").split() + ["200 OK"] + \
        "version HTTP/1.1 url public set-cookie keep-alive origin".split()
    tail = ("100101201202205206300302303304305306307402405406407408409410411412413414415416417"
            "502504505203 Non-Authoritative Information204 No Content301 Moved Permanently"
            "400 Bad Request401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error"
            "501 Not Implemented503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct "
            "Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,"
            "image/jpg,image/gif,application/xml,application/xhtml+xml,text/plain,"
            "text/javascript,publicprivatemax-age=gzip,deflate,sdchcharset=utf-8"
            "charset=iso-8859-1,utf-,*,enq=0.")
    return b"".join(struct.pack("!I", len(w)) + w.encode() for w in words) + tail.encode()


DICTIONARY = _dictionary()


class ProtocolError(Exception):
    """The peer sent something that is not SPDY/3.1."""


class SpdyStream:
    """One stream the client opened: its headers, the data it sends (``read``), and ours."""

    def __init__(self, session: "SpdySession", stream_id: int, headers: dict[str, str]) -> None:
        self.session = session
        self.id = stream_id
        self.headers = headers
        self._incoming: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.remote_closed = False
        self.local_closed = False
        self.reset = False

    async def read(self) -> bytes:
        """The next data the client sent; b"" once it half-closed or reset the stream."""
        if self.remote_closed and self._incoming.empty():
            return b""
        data = await self._incoming.get()
        if data is None:
            self.remote_closed = True
            return b""
        return data

    async def write(self, data: bytes) -> None:
        if self.local_closed or self.reset:
            raise ConnectionResetError(f"stream {self.id} is closed")
        for i in range(0, len(data), MAX_DATA):
            await self.session.send_data(self.id, data[i:i + MAX_DATA])

    async def close(self) -> None:
        """Half-close: FIN, nothing more from us."""
        if not self.local_closed and not self.reset:
            self.local_closed = True
            await self.session.send_data(self.id, b"", fin=True)

    def _feed(self, data: bytes, fin: bool) -> None:
        if data:
            self._incoming.put_nowait(data)
        if fin:
            self._incoming.put_nowait(None)

    def _reset(self) -> None:
        self.reset = True
        self._incoming.put_nowait(None)


class SpdySession:
    """Feed it the bytes the client sends (``feed``); it answers through ``send`` and runs
    ``on_stream(stream)`` as a task for every stream the client opens. ``closed`` is set once
    the client sent GOAWAY or broke the protocol."""

    def __init__(self, send: Callable[[bytes], Awaitable[None]],
                 on_stream: Callable[[SpdyStream], Awaitable[None]]) -> None:
        self._send = send
        self._on_stream = on_stream
        self._buf = bytearray()
        self._inflate = zlib.decompressobj(zdict=DICTIONARY)
        self._deflate = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zdict=DICTIONARY)
        self._write_lock = asyncio.Lock()
        self.streams: dict[int, SpdyStream] = {}
        self.tasks: set[asyncio.Task[None]] = set()
        self.closed = asyncio.Event()

    # -- sending -----------------------------------------------------------------------------
    async def _write(self, frame: bytes) -> None:
        async with self._write_lock:
            await self._send(frame)

    async def _control(self, ftype: int, body: bytes, flags: int = 0) -> None:
        await self._write(struct.pack("!HHI", 0x8000 | VERSION, ftype, (flags << 24) | len(body)) + body)

    async def send_data(self, stream_id: int, data: bytes, *, fin: bool = False) -> None:
        flags = FLAG_FIN if fin else 0
        await self._write(struct.pack("!II", stream_id & 0x7FFFFFFF, (flags << 24) | len(data)) + data)

    async def send_reset(self, stream_id: int, status: int = RST_CANCEL) -> None:
        await self._control(RST_STREAM, struct.pack("!II", stream_id & 0x7FFFFFFF, status))

    def _header_block(self, headers: dict[str, str]) -> bytes:
        raw = struct.pack("!I", len(headers)) + b"".join(
            struct.pack("!I", len(k)) + k.encode() + struct.pack("!I", len(v)) + v.encode()
            for k, v in headers.items())
        return self._deflate.compress(raw) + self._deflate.flush(zlib.Z_SYNC_FLUSH)

    # -- receiving ---------------------------------------------------------------------------
    async def feed(self, data: bytes) -> None:
        self._buf += data
        while len(self._buf) >= 8:
            length = int.from_bytes(self._buf[5:8], "big")
            if len(self._buf) < 8 + length:
                return
            head, body = bytes(self._buf[:8]), bytes(self._buf[8:8 + length])
            del self._buf[:8 + length]
            flags = head[4]
            if head[0] & 0x80:
                version = struct.unpack("!H", head[:2])[0] & 0x7FFF
                if version != VERSION:
                    raise ProtocolError(f"SPDY version {version} (only 3 is spoken)")
                await self._on_control(struct.unpack("!H", head[2:4])[0], flags, body)
            else:
                sid = struct.unpack("!I", head[:4])[0] & 0x7FFFFFFF
                stream = self.streams.get(sid)
                if stream is None:
                    await self.send_reset(sid, 2)  # INVALID_STREAM
                    continue
                stream._feed(body, bool(flags & FLAG_FIN))

    async def _on_control(self, ftype: int, flags: int, body: bytes) -> None:
        if ftype == SYN_STREAM:
            sid = struct.unpack("!I", body[:4])[0] & 0x7FFFFFFF
            headers = self._read_headers(body[10:])
            stream = SpdyStream(self, sid, headers)
            self.streams[sid] = stream
            await self._control(SYN_REPLY, struct.pack("!I", sid) + self._header_block({}))
            if flags & FLAG_FIN:
                stream._feed(b"", True)
            task = asyncio.create_task(self._run_stream(stream))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        elif ftype == RST_STREAM:
            sid = struct.unpack("!I", body[:4])[0] & 0x7FFFFFFF
            if (stream := self.streams.get(sid)) is not None:
                stream._reset()
        elif ftype == PING:
            await self._control(PING, body[:4])
        elif ftype == GOAWAY:
            self.closed.set()
        elif ftype == HEADERS:
            self._read_headers(body[4:])  # keeps the decompression context in step
        # SETTINGS, WINDOW_UPDATE: nothing to do without flow control

    def _read_headers(self, block: bytes) -> dict[str, str]:
        try:
            raw = self._inflate.decompress(block)
        except zlib.error as e:
            raise ProtocolError(f"bad header block: {e}") from None
        out: dict[str, str] = {}
        (n,), pos = struct.unpack("!I", raw[:4]), 4
        for _ in range(n):
            (kl,) = struct.unpack("!I", raw[pos:pos + 4])
            key = raw[pos + 4:pos + 4 + kl].decode()
            pos += 4 + kl
            (vl,) = struct.unpack("!I", raw[pos:pos + 4])
            out[key.lower()] = raw[pos + 4:pos + 4 + vl].decode().split("\0")[0]
            pos += 4 + vl
        return out

    async def _run_stream(self, stream: SpdyStream) -> None:
        try:
            await self._on_stream(stream)
        except Exception:  # one stream's failure must not end the others
            log.exception("spdy stream %s failed", stream.id)
            with contextlib.suppress(Exception):
                await self.send_reset(stream.id)

    async def aclose(self) -> None:
        for t in list(self.tasks):
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        for s in self.streams.values():
            s._reset()
