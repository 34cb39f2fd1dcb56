"""``python -S -P .../vkube/cli/front.py --listen PORT --data-dir DATA REPLICA_DIR...``: the
one loopback address of a virtual cluster whose API server runs as several local replicas
(``enableHA``). kubectl takes one server URL, so this forwards each TCP connection to a
replica that is serving (its ``ready`` file names it), trying the next one when a replica
does not answer. It forwards bytes, it does not terminate TLS: the client talks TLS with
the replica itself, whose serving certificate covers 127.0.0.1.

Once a replica serves, it writes ``DATA/kubeconfig`` (that replica's, with the front's
address) and ``DATA/ready``, the files the CLI reads for a single-process cluster; ``ready``
goes away while no replica serves. Standard library only, like the supervisor that runs it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from pathlib import Path

CONNECT_TIMEOUT = 3.0
PUBLISH_EVERY = 0.2
BUFFER = 1 << 16


def _address(url: str) -> tuple[str, str, int] | None:
    """``scheme://host:port`` → (scheme, host, port)."""
    scheme, sep, rest = url.strip().partition("://")
    host, _, port = rest.split("/", 1)[0].rpartition(":")
    if not sep or not host or not port.isdigit():
        return None
    return scheme, host.strip("[]"), int(port)


class Front:
    def __init__(self, port: int, data_dir: Path, replicas: list[Path]) -> None:
        self.port = port
        self.data_dir = data_dir
        self.replicas = replicas
        self.next = 0  # round robin over the serving replicas
        self.connections: set[asyncio.Task[None]] = set()

    def serving(self) -> list[tuple[Path, tuple[str, str, int]]]:
        out = []
        for d in self.replicas:
            try:
                addr = _address((d / "ready").read_text())
            except OSError:
                continue
            if addr is not None:
                out.append((d, addr))
        return out

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.connections.add(task)
        try:
            backends = self.serving()
            if backends:
                start = self.next % len(backends)
                self.next += 1
                backends = backends[start:] + backends[:start]
            for _, (_, host, port) in backends:
                try:
                    up_r, up_w = await asyncio.wait_for(asyncio.open_connection(host, port),
                                                        CONNECT_TIMEOUT)
                except (OSError, asyncio.TimeoutError):
                    continue  # died since it wrote ready: the next one
                await asyncio.gather(_pipe(reader, up_w), _pipe(up_r, writer))
                return
        finally:
            writer.close()
            self.connections.discard(task)

    def publish(self) -> None:
        """Write ``ready`` and the kubeconfig while a replica serves; remove ``ready`` else."""
        ready = self.data_dir / "ready"
        for d, (scheme, _, _) in self.serving():
            url = f"{scheme}://127.0.0.1:{self.port}"
            try:
                doc = json.loads((d / "kubeconfig").read_text())
                for c in doc.get("clusters") or []:
                    c.setdefault("cluster", {})["server"] = url
            except (OSError, ValueError, AttributeError):
                continue  # not written yet (or half-way): another replica, or next time
            _write(self.data_dir / "kubeconfig", json.dumps(doc, indent=2) + "\n", mode=0o600)
            if not ready.exists():
                _write(ready, url + "\n")
            return
        ready.unlink(missing_ok=True)

    async def run(self) -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        server = await self._listen()
        _say(f"forwarding 127.0.0.1:{self.port} to {len(self.replicas)} replicas")
        try:
            while not stop.is_set():
                self.publish()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(stop.wait(), PUBLISH_EVERY)
        finally:
            (self.data_dir / "ready").unlink(missing_ok=True)
            server.close()
            for t in list(self.connections):
                t.cancel()
            await asyncio.gather(*self.connections, return_exceptions=True)
        return 0

    async def _listen(self) -> asyncio.AbstractServer:
        """Bind the cluster's port, waiting a little if a previous front still holds it."""
        deadline = time.monotonic() + 10
        while True:
            try:
                return await asyncio.start_server(self.handle, "127.0.0.1", self.port,
                                                  reuse_address=True, limit=BUFFER)
            except OSError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.2)


async def _pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
    """Copy until EOF, then half-close: the other direction may still be talking."""
    try:
        while data := await src.read(BUFFER):
            dst.write(data)
            await dst.drain()
        if dst.can_write_eof():
            dst.write_eof()
    except (OSError, RuntimeError):
        dst.close()


def _write(path: Path, text: str, mode: int = 0o644) -> None:
    with contextlib.suppress(OSError):
        if path.read_text() == text:
            return
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.chmod(tmp, mode)
    tmp.replace(path)


def _say(msg: str) -> None:
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} vkube-front: {msg}", file=sys.stderr,
          flush=True)


def main(argv: list[str]) -> int:
    if len(argv) < 5 or argv[0] != "--listen" or argv[2] != "--data-dir" \
            or not argv[1].isdigit():
        print("usage: front.py --listen PORT --data-dir DIR REPLICA_DIR...", file=sys.stderr)
        return 2
    front = Front(int(argv[1]), Path(argv[3]), [Path(p) for p in argv[4:]])
    try:
        return asyncio.run(front.run())
    except OSError as e:
        _say(f"cannot listen on 127.0.0.1:{argv[1]}: {e}")
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
