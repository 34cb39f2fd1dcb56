"""etcd v3 store: etcd's own revisions, transactions and watches, used directly.

etcd already is the log: every ``Store`` call is one etcd request (guarded writes are a ``Txn``
comparing the key's mod or create revision), revisions are etcd's, and each ``watch`` is one etcd
watch stream from ``after_revision + 1`` with ``prev_kv``. A broken stream is re-created from the
last revision delivered, so a reconnect loses and repeats nothing; a compacted start revision
ends the watch with ``Compacted``. The gRPC stubs are aetcd's (a maintained asyncio client),
the channel is ours so that TLS and several endpoints work.

URL: ``etcd://HOST:PORT[,HOST:PORT...][/PREFIX]``; keys are stored under ``PREFIX`` (default
none), so several clusters can share one etcd. etcd does not say which revision it compacted
to, so the store finds it (binary search over revisions, a few dozen cheap reads) when it starts
and when a read reports compaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import unquote, urlsplit

import grpc
from aetcd import rpc

from vkube.store.base import (
    BackendError,
    Compacted,
    Event,
    FutureRevision,
    KeyExists,
    KeyNotFound,
    KeyValue,
    Op,
    PartialCommit,
    RangeResult,
    RevisionMismatch,
    Store,
    StoreClosed,
    StoreError,
)

log = logging.getLogger(__name__)

_TIMEOUT = 30.0  # seconds per request: a partitioned etcd fails requests instead of hanging
#: a watch stream that cannot be re-created for this long ends with an error (the API server
#: then ends the client's watch, which re-watches from its last resourceVersion)
_WATCH_OUTAGE = 60.0
_UNREACHABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
#: codes after which the same request may pass later (anything else, e.g. INVALID_ARGUMENT,
#: is refused whatever the state of etcd)
_TRANSIENT = (*_UNREACHABLE, grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.ABORTED,
              grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL, grpc.StatusCode.CANCELLED)
#: etcd's defaults for one Txn: ``--max-txn-ops`` 128, ``--max-request-bytes`` 1.5 MiB
_TXN_OPS = 128
_TXN_BYTES = 1024 * 1024


def _span(prefix: bytes) -> tuple[bytes, bytes]:
    """etcd's ``(key, range_end)`` for every key under a byte prefix. etcd refuses an empty
    ``key`` ("key is not provided"), so the empty prefix (a store without a key prefix, asked
    for everything) is ``("\\0", "\\0")``: every key at or after ``\\0``, i.e. all of them."""
    return (prefix, _bytes_end(prefix)) if prefix else (b"\0", b"\0")


def _bytes_end(prefix: bytes) -> bytes:
    """etcd's range end for a byte prefix (``\\0`` = to the end of the key space)."""
    end = bytearray(prefix)
    while end:
        if end[-1] < 0xFF:
            end[-1] += 1
            return bytes(end)
        end.pop()
    return b"\0"


def parse_url(url: str) -> tuple[list[tuple[str, int]], str]:
    """``etcd://h:p[,h:p][/prefix]`` -> endpoints, key prefix. Raises ``ValueError``."""
    parts = urlsplit(url)
    if parts.scheme not in ("etcd", "etcd3"):
        raise ValueError(f"not an etcd URL: {url!r}")
    netloc = parts.netloc
    if "@" in netloc:
        raise ValueError(f"etcd URL {url!r}: user/password authentication is not supported; "
                         "use TLS client certificates (--etcd-certfile/--etcd-keyfile)")
    endpoints = []
    for item in netloc.split(","):
        host, sep, port = item.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ValueError(f"etcd URL {url!r}: endpoint {item!r} is not HOST:PORT")
        endpoints.append((host.strip("[]"), int(port)))
    prefix = unquote(parts.path).rstrip("/") if parts.path not in ("", "/") else ""
    return endpoints, prefix


class EtcdStore(Store):
    """``Store`` on an etcd v3 cluster. ``ca_file``/``cert_file``/``key_file`` select TLS
    (``cert_file`` and ``key_file`` for client certificates)."""

    def __init__(self, url: str, *, ca_file: str | None = None, cert_file: str | None = None,
                 key_file: str | None = None) -> None:
        self.url = url
        self._endpoints, self._prefix_text = parse_url(url)
        self._prefix = self._prefix_text.encode()
        if bool(cert_file) != bool(key_file):
            raise ValueError("etcd TLS: --etcd-certfile and --etcd-keyfile go together")
        self._tls = (ca_file, cert_file, key_file) if (ca_file or cert_file) else None
        self._channel: grpc.aio.Channel | None = None
        self._kv: Any = None
        self._watcher: Any = None
        self._compacted = 0
        self._started = False
        self._closed = False
        self._calls: set[Any] = set()

    # -- lifecycle ---------------------------------------------------------------------------

    def _target(self) -> str:
        hosts = [h for h, _ in self._endpoints]
        try:
            for host in hosts:
                ipaddress.IPv4Address(host)
        except ValueError:
            host, port = self._endpoints[0]  # DNS names: the first endpoint
            return f"{host}:{port}"
        return "ipv4:" + ",".join(f"{h}:{p}" for h, p in self._endpoints)

    async def start(self) -> None:
        if self._started and not self._closed:
            return
        if self._closed:
            raise StoreClosed("store is closed")
        options = [("grpc.lb_policy_name", "round_robin"),
                   ("grpc.max_receive_message_length", 64 * 1024 * 1024)]
        if self._tls is not None:
            ca, cert, key = (open(p, "rb").read() if p else None for p in self._tls)
            creds = grpc.ssl_channel_credentials(root_certificates=ca, private_key=key,
                                                 certificate_chain=cert)
            self._channel = grpc.aio.secure_channel(self._target(), creds, options=options)
        else:
            self._channel = grpc.aio.insecure_channel(self._target(), options=options)
        self._kv = rpc.KVStub(self._channel)
        self._watcher = rpc.WatchStub(self._channel)
        try:
            current = (await self._rpc(self._kv.Range, rpc.RangeRequest(
                key=b"\0", count_only=True), wait=False)).header.revision  # a wrong URL fails now
            self._compacted = await self._find_compacted(current)
        except StoreError as exc:
            self._closed = True
            await self._channel.close()
            raise BackendError(f"etcd: cannot reach {self.url}: {exc}") from exc
        self._started = True

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.stop_auto_compaction()
        for call in list(self._calls):
            call.cancel()
        if self._channel is not None:
            await self._channel.close()

    def _check_open(self) -> None:
        if not self._started or self._closed:
            raise StoreClosed("store is not running")

    # -- keys and errors ---------------------------------------------------------------------

    def _k(self, key: str) -> bytes:
        return self._prefix + key.encode()

    def _unk(self, key: bytes) -> str:
        return key[len(self._prefix):].decode()

    def _kv_of(self, kv: Any) -> KeyValue:
        return KeyValue(self._unk(kv.key), bytes(kv.value), kv.create_revision, kv.mod_revision)

    async def _rpc(self, method: Any, request: Any, *, revision: int = 0,
                   wait: bool = True) -> Any:
        """One request. ``wait``: while etcd is unreachable (restarting, a leader election) the
        request waits for the connection, up to ``_TIMEOUT``, as etcd's own client does for
        kube-apiserver; a short outage then costs latency, not errors."""
        try:
            return await method(request, timeout=_TIMEOUT, wait_for_ready=wait)
        except grpc.aio.AioRpcError as exc:
            details = exc.details() or ""
            if exc.code() in _UNREACHABLE and wait:
                raise BackendError(f"etcd {self.url}: request timed out: no answer within "
                                   f"{_TIMEOUT:g}s ({exc.code().name}: {details})") from exc
            if "required revision has been compacted" in details:
                self._compacted = max(self._compacted, await self._find_compacted())
                raise Compacted(revision, self._compacted) from None
            if "future revision" in details:
                raise FutureRevision(f"revision {revision}: {details}") from None
            raise BackendError(f"etcd {self.url}: {exc.code().name}: {details}",
                               transient=exc.code() in _TRANSIENT) from exc
        except UnicodeError as exc:
            raise BackendError(f"etcd: cannot encode key: {exc}", transient=False) from exc

    async def _find_compacted(self, current: int = 0) -> int:
        """The revision etcd compacted to: the oldest revision a read still succeeds at."""
        if current == 0:
            current = await self.current_revision()
        lo, hi = 1, max(current, 1)
        while lo < hi:
            mid = (lo + hi) // 2
            try:
                await self._kv.Range(rpc.RangeRequest(key=b"\0", revision=mid, count_only=True),
                                     timeout=_TIMEOUT)
                hi = mid
            except grpc.aio.AioRpcError as exc:
                if "compacted" not in (exc.details() or ""):
                    raise BackendError(f"etcd {self.url}: {exc.details()}") from exc
                lo = mid + 1
        return 0 if lo <= 1 else lo

    # -- revisions ---------------------------------------------------------------------------

    async def current_revision(self) -> int:
        if self._kv is None or self._closed:
            raise StoreClosed("store is not running")
        response = await self._rpc(self._kv.Range, rpc.RangeRequest(key=b"\0", count_only=True))
        return response.header.revision

    @property
    def compacted_revision(self) -> int:
        return self._compacted

    # -- reads -------------------------------------------------------------------------------

    async def get(self, key: str, *, revision: int = 0) -> KeyValue | None:
        self._check_open()
        response = await self._rpc(self._kv.Range,
                                   rpc.RangeRequest(key=self._k(key), revision=revision),
                                   revision=revision)
        return self._kv_of(response.kvs[0]) if response.kvs else None

    async def range(
        self, prefix: str, *, start_after: str = "", limit: int = 0, revision: int = 0
    ) -> RangeResult:
        self._check_open()
        start, end = _span(self._k(prefix))
        if start_after:
            start = max(start, self._k(start_after) + b"\0")
        request = rpc.RangeRequest(key=start, range_end=end, limit=limit, revision=revision,
                                   sort_order=rpc.RangeRequest.ASCEND,
                                   sort_target=rpc.RangeRequest.KEY)
        response = await self._rpc(self._kv.Range, request, revision=revision)
        kvs = [self._kv_of(kv) for kv in response.kvs]
        return RangeResult(kvs=kvs, revision=revision or response.header.revision,
                           more=response.more, count=response.count)

    # -- writes ------------------------------------------------------------------------------

    def _exists(self, key: bytes, expected: int) -> Any:
        if expected:
            return rpc.Compare(key=key, target=rpc.Compare.MOD, result=rpc.Compare.EQUAL,
                               mod_revision=expected)
        return rpc.Compare(key=key, target=rpc.Compare.CREATE, result=rpc.Compare.GREATER,
                           create_revision=0)

    async def _guarded(self, key: str, expected: int, op: Any) -> Any:
        """A ``Txn``: ``op`` if the key exists (at ``expected``), else the reason why not."""
        self._check_open()
        k = self._k(key)
        txn = rpc.TxnRequest(compare=[self._exists(k, expected)], success=[op],
                             failure=[rpc.RequestOp(request_range=rpc.RangeRequest(key=k))])
        response = await self._rpc(self._kv.Txn, txn)
        if not response.succeeded:
            kvs = response.responses[0].response_range.kvs
            if not kvs:
                raise KeyNotFound(key)
            raise RevisionMismatch(key, self._kv_of(kvs[0]))
        return response

    async def create(self, key: str, value: bytes) -> KeyValue:
        self._check_open()
        if not isinstance(value, (bytes, bytearray, memoryview)):
            raise TypeError(f"value must be bytes, not {type(value).__name__}")
        k = self._k(key)
        txn = rpc.TxnRequest(
            compare=[rpc.Compare(key=k, target=rpc.Compare.CREATE, result=rpc.Compare.EQUAL,
                                 create_revision=0)],
            success=[rpc.RequestOp(request_put=rpc.PutRequest(key=k, value=bytes(value)))])
        response = await self._rpc(self._kv.Txn, txn)
        if not response.succeeded:
            raise KeyExists(key)
        revision = response.header.revision
        return KeyValue(key, bytes(value), revision, revision)

    async def update(self, key: str, value: bytes, *, expected_mod_revision: int) -> KeyValue:
        if not isinstance(value, (bytes, bytearray, memoryview)):
            raise TypeError(f"value must be bytes, not {type(value).__name__}")
        put = rpc.PutRequest(key=self._k(key), value=bytes(value), prev_kv=True)
        response = await self._guarded(key, expected_mod_revision, rpc.RequestOp(request_put=put))
        prev = response.responses[0].response_put.prev_kv
        return KeyValue(key, bytes(value), prev.create_revision, response.header.revision)

    async def delete(self, key: str, *, expected_mod_revision: int = 0) -> KeyValue:
        delete = rpc.DeleteRangeRequest(key=self._k(key), prev_kv=True)
        response = await self._guarded(key, expected_mod_revision,
                                       rpc.RequestOp(request_delete_range=delete))
        prev = response.responses[0].response_delete_range.prev_kvs[0]
        return KeyValue(key, bytes(prev.value), prev.create_revision, response.header.revision)

    async def commit_all(self, ops: list[Op]) -> None:
        """One ``Txn`` (every op's guard compared, all puts/deletes or none) when the set fits
        etcd's limits for one (128 operations, 1 MiB here); a larger set goes in several such
        transactions, in order, and a failure after the first raises ``PartialCommit``: the
        earlier transactions stay committed (etcd has no transaction spanning requests)."""
        self._check_open()
        chunks: list[list[Op]] = [[]]
        size = 0
        for op in ops:
            n = len(op.key) + len(op.value) + 64
            if chunks[-1] and (len(chunks[-1]) >= _TXN_OPS or size + n > _TXN_BYTES):
                chunks.append([])
                size = 0
            chunks[-1].append(op)
            size += n
        applied = 0
        for chunk in chunks:
            try:
                await self._commit_chunk(chunk)
            except StoreError as exc:
                if applied == 0:
                    raise
                raise PartialCommit(f"etcd {self.url}: stopped after {applied} of {len(ops)} "
                                    f"writes ({exc})", applied, len(ops)) from exc
            applied += len(chunk)

    async def _commit_chunk(self, chunk: list[Op]) -> None:
        if not chunk:
            return
        compare, success = [], []
        for op in chunk:
            k = self._k(op.key)
            if op.op == "create":
                compare.append(rpc.Compare(key=k, target=rpc.Compare.CREATE,
                                           result=rpc.Compare.EQUAL, create_revision=0))
            else:
                compare.append(self._exists(k, op.expected))
            if op.op == "delete":
                success.append(rpc.RequestOp(request_delete_range=rpc.DeleteRangeRequest(key=k)))
            else:
                success.append(rpc.RequestOp(request_put=rpc.PutRequest(key=k,
                                                                        value=bytes(op.value))))
        response = await self._rpc(self._kv.Txn, rpc.TxnRequest(compare=compare, success=success))
        if not response.succeeded:
            raise StoreError(f"a key changed meanwhile (one of {chunk[0].key} … "
                             f"{chunk[-1].key}): nothing of that transaction was written")

    # -- watch -------------------------------------------------------------------------------

    def _event(self, ev: Any) -> Event:
        prev = self._kv_of(ev.prev_kv) if ev.HasField("prev_kv") else None
        if ev.type == rpc.Event.DELETE:
            kv = KeyValue(self._unk(ev.kv.key), prev.value if prev else b"",
                          prev.create_revision if prev else 0, ev.kv.mod_revision)
            return Event("DELETED", kv, prev)
        kv = self._kv_of(ev.kv)
        if kv.create_revision == kv.mod_revision:
            return Event("ADDED", kv)
        return Event("MODIFIED", kv, prev)

    async def watch(self, prefix: str, *, after_revision: int) -> AsyncIterator[Event]:
        """One etcd watch stream; re-created from the last delivered revision if it breaks."""
        start, end = _span(self._k(prefix))
        last, failures, broken_since = after_revision, 0, 0.0
        loop = asyncio.get_running_loop()
        while not self._closed:
            self._check_open()
            call = self._watcher.Watch()
            self._calls.add(call)
            try:
                await call.write(rpc.WatchRequest(create_request=rpc.WatchCreateRequest(
                    key=start, range_end=end, start_revision=last + 1,
                    prev_kv=True)))
                while True:
                    response = await call.read()
                    if response is grpc.aio.EOF:
                        break
                    failures, broken_since = 0, 0.0
                    if response.compact_revision:
                        self._compacted = max(self._compacted, response.compact_revision)
                        raise Compacted(after_revision, response.compact_revision)
                    if response.canceled:
                        raise BackendError(f"etcd watch canceled: {response.cancel_reason}")
                    for ev in response.events:
                        yield self._event(ev)
                        last = ev.kv.mod_revision
            except asyncio.CancelledError:
                if self._closed:
                    return
                raise
            except grpc.aio.AioRpcError as exc:
                if self._closed:
                    return
                failures += 1
                broken_since = broken_since or loop.time()
                if loop.time() - broken_since > _WATCH_OUTAGE:
                    raise BackendError(f"etcd watch: {exc.code().name}: {exc.details()} "
                                       f"(for {_WATCH_OUTAGE:g}s)") from exc
                if failures == 1:
                    log.info("etcd watch broke (%s); resuming after revision %d", exc.code(),
                             last)
                await asyncio.sleep(min(0.1 * failures, 2.0))
            finally:
                self._calls.discard(call)
                call.cancel()

    # -- compaction --------------------------------------------------------------------------

    async def compact(self, revision: int) -> None:
        self._check_open()
        current = await self.current_revision()
        if revision > current:
            raise FutureRevision(f"cannot compact at {revision}: current is {current}")
        if revision <= self._compacted:
            return
        with contextlib.suppress(Compacted):  # another replica compacted further meanwhile
            await self._rpc(self._kv.Compact, rpc.CompactionRequest(revision=revision,
                                                                    physical=True),
                            revision=revision)
        self._compacted = max(self._compacted, revision)
