"""API Priority and Fairness: the filter kube-apiserver runs between impersonation and
authorization (``k8s.io/apiserver/pkg/server/filters/priority-and-fairness.go``).

Each request is classified by the first FlowSchema (by matchingPrecedence, then name) that
matches its user and what it asks; the schema names its priority level and how flows are told
apart (ByUser, ByNamespace). The level admits it now, queues it, or refuses it with 429 — see
``apfqueue``. Every classified response carries ``X-Kubernetes-PF-FlowSchema-UID`` and
``X-Kubernetes-PF-PriorityLevel-UID``. Long-running requests (exec, attach, port-forward,
logs, proxy) bypass the filter as upstream's ``longRunningRequestCheck`` makes them; a watch is
classified and holds its seat only until its stream is set up.

The configuration comes from the FlowSchema and PriorityLevelConfiguration objects, kept by
watch caches: each change recompiles the matchers and re-divides the seats, so a request pays
only for matching and a counter. Until the caches have listed, the mandatory objects rule
(as upstream "imagines" them when they are missing).

Shared mode nests its per-cluster fairness inside: ``outer_seat`` (set by the shared listener)
is taken only after APF admitted the request, so a request queued here holds no shared seat."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AbstractAsyncContextManager
from typing import Any

from aiohttp import web

from vkube.api.kinds_flowcontrol import GROUP, mandatory_objects
from vkube.apiserver.apfalloc import ADJUSTMENT_PERIOD, adjust_borrowing, configure_limits
from vkube.apiserver.apfmatch import CompiledSchema, compile_schema, distinguisher
from vkube.apiserver.apfqueue import Demand, Level, Rejected
from vkube.apiserver.request import RequestContext

__all__ = ["FlowControl", "SeatRefused", "WATCH_STARTED", "RESPONSE_HEADERS",
           "FS_HEADER", "PL_HEADER", "DEFAULT_MAX_INFLIGHT", "DEFAULT_MAX_MUTATING_INFLIGHT"]

log = logging.getLogger(__name__)

FS_HEADER = "X-Kubernetes-PF-FlowSchema-UID"
PL_HEADER = "X-Kubernetes-PF-PriorityLevel-UID"
#: kube-apiserver's --max-requests-inflight / --max-mutating-requests-inflight defaults; with
#: APF their sum is the server's concurrency limit
DEFAULT_MAX_INFLIGHT, DEFAULT_MAX_MUTATING_INFLIGHT = 400, 200
#: --request-timeout; a request may wait a quarter of its deadline in a queue, at most 1 min
REQUEST_TIMEOUT, MAX_WAIT = 60.0, 60.0
TOO_MANY = "Too many requests, please try again later.\n"
#: ``BasicLongRunningRequestCheck(watch, proxy; attach, exec, proxy, log, portforward)``
_LONG_VERBS = frozenset(("watch", "proxy"))
_LONG_SUBRESOURCES = frozenset(("attach", "exec", "proxy", "log", "portforward"))
#: users whose candidate schemas are remembered (cleared when full and on every change)
_USER_CACHE = 4096
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")

#: set by the filter for a watch: the watch handler calls it with its response just before
#: sending the headers (upstream's initialization signal): headers added, seat released
WATCH_STARTED = web.RequestKey("vkube_apf_watch_started", Callable[[web.StreamResponse], None])
#: the PF headers for whatever response the request ends with (errors included)
RESPONSE_HEADERS = web.RequestKey("vkube_apf_headers", dict)


class SeatRefused(Exception):
    """An outer limiter (shared mode) refused the request: 429 with ``retry_after``."""

    retry_after: int = 1


def long_running(info: Any) -> bool:
    return info.verb in _LONG_VERBS or (info.is_resource and info.subresource in _LONG_SUBRESOURCES)


def too_many_requests(retry_after: int, headers: dict[str, str] | None = None) -> web.Response:
    """``tooManyRequests`` through Go's ``http.Error``: plain text, not a Status."""
    return web.Response(status=429, text=TOO_MANY, headers={
        **(headers or {}), "Retry-After": str(retry_after), "Content-Type": "text/plain; charset=utf-8",
        "X-Content-Type-Options": "nosniff"})


def _flow_hash(schema: str, dist: str) -> int:
    """``hashFlowID``: the first 8 bytes (little endian) of sha256(schema NUL distinguisher)."""
    digest = hashlib.sha256(schema.encode() + b"\x00" + dist.encode()).digest()
    return int.from_bytes(digest[:8], "little")


def _wait_limit(request: web.Request) -> float:
    """A quarter of the request's deadline (``?timeout=``, else --request-timeout), at most 1 min."""
    raw = request.query.get("timeout")
    deadline = REQUEST_TIMEOUT
    if raw:
        pos, total = 0, 0.0
        for m in _DURATION.finditer(raw):
            if m.start() != pos:
                break
            total += float(m.group(1)) * {"ms": 0.001, "h": 3600, "m": 60, "s": 1}[m.group(2)]
            pos = m.end()
        if pos == len(raw) and total > 0:
            deadline = total
    return min(deadline / 4, MAX_WAIT)


class FlowControl:
    """The APF configuration of one API server and its per-level state."""

    def __init__(self, ctx: Any, server_cl: int = DEFAULT_MAX_INFLIGHT + DEFAULT_MAX_MUTATING_INFLIGHT) -> None:
        if server_cl <= 0:
            raise ValueError("max-requests-inflight + max-mutating-requests-inflight must be positive")
        self.ctx = ctx
        self.server_cl = server_cl
        self.levels: dict[str, Level] = {}
        self.schemas: tuple[CompiledSchema, ...] = ()
        self._catch_all: CompiledSchema | None = None
        self._nominal_sum = 0
        self._next_adjust = 0.0
        self._caches: tuple[Any, Any] | None = None
        self._timer: Any = None  # asyncio.TimerHandle while requests wait
        #: requests dispatched per (flow schema, priority level), and rejected per (schema,
        #: level, reason): the counters /metrics reports under upstream's names
        self.dispatched: dict[tuple[str, str], int] = {}
        self.rejected: dict[tuple[str, str, str], int] = {}
        #: set by a server in front (shared mode): ``() -> async context manager`` taken around
        #: a request once APF admitted it; raising ``SeatRefused`` refuses it with 429
        self.outer_seat: Callable[[], AbstractAsyncContextManager[Any]] | None = None
        #: set by the control plane: writes the mandatory (and auto-updated suggested) objects
        #: back (``ensure_flowcontrol``). Run whenever the configuration changes, which is what
        #: upstream's one-minute ensurer catches; costs nothing while nothing changes.
        self.ensurer: Callable[[], Awaitable[None]] | None = None
        self._ensuring: asyncio.Task[None] | None = None
        #: requests holding a seat (insertion ordered), for dump_requests
        self._executing: dict[_Seen, None] = {}
        self._ensure_again = False
        #: (user, groups) -> the schemas (with their rules) whose subjects take the user in
        self._by_user: dict[tuple[str, tuple[str, ...]], list[tuple[CompiledSchema, tuple[Any, ...]]]] = {}
        #: (user, groups, what the rules read of the request) -> the schema it matched: a
        #: component sends the same few kinds of request thousands of times (a rollout), and
        #: walking its candidates' rules each time was ~3% of a cluster's CPU
        self._by_request: dict[tuple[Any, ...], CompiledSchema] = {}
        self._apply([o for o in mandatory_objects() if o["kind"] == "PriorityLevelConfiguration"],
                    [o for o in mandatory_objects() if o["kind"] == "FlowSchema"])

    def start(self) -> None:
        """Follow the configuration objects (watch caches; no polling)."""
        fs = self.ctx.cache_for(GROUP, "FlowSchema")
        pl = self.ctx.cache_for(GROUP, "PriorityLevelConfiguration")
        if fs is None or pl is None:
            return
        self._caches = (fs, pl)
        fs.listeners.append(self._reload)
        pl.listeners.append(self._reload)
        self._reload()

    def _reload(self) -> None:
        assert self._caches is not None
        fss, pls = (c.snapshot() for c in self._caches)
        if fss is None or pls is None:
            return
        self._apply(pls, fss)
        self._ensure_soon()

    def _ensure_soon(self) -> None:
        """Run the ensurer after a configuration change; one run at a time, once more if
        something changed meanwhile (its own writes end in a run that finds nothing to do)."""
        if self.ensurer is None:
            return
        if self._ensuring is not None and not self._ensuring.done():
            self._ensure_again = True
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._ensuring = loop.create_task(self._run_ensurer(), name="vkube-apf-config-ensurer")

    async def _run_ensurer(self) -> None:
        assert self.ensurer is not None
        while True:
            self._ensure_again = False
            try:
                await self.ensurer()
            except Exception:
                log.exception("restoring the mandatory APF configuration failed")
            if not self._ensure_again:
                return

    async def stop(self) -> None:
        """Stop following the configuration (and any ensurer run under way)."""
        self.ensurer = None
        if self._ensuring is not None and not self._ensuring.done():
            self._ensuring.cancel()
            try:
                await self._ensuring
            except (asyncio.CancelledError, Exception):
                pass  # cancelled by us; a failure was logged by the run

    def _apply(self, pls: list[dict[str, Any]], fss: list[dict[str, Any]]) -> None:
        """Recompile matchers and limits (``digestConfigObjects``): the mandatory objects stand
        in for missing ones and take effect with their defined spec whatever is stored; schemas
        naming a missing level are ignored (dangling)."""
        mandatory = {(o["kind"], o["metadata"]["name"]): o for o in mandatory_objects()}
        specs: dict[str, dict[str, Any]] = {}
        uids: dict[str, str] = {}
        for pl in pls:
            name = (pl.get("metadata") or {}).get("name", "")
            specs[name], uids[name] = pl.get("spec") or {}, (pl.get("metadata") or {}).get("uid", "")
        for name in ("exempt", "catch-all"):
            # the mandatory levels take effect with their defined spec whatever is stored (the
            # ensurer writes it back): an edit can never lock out system:masters
            specs[name], uids[name] = mandatory["PriorityLevelConfiguration", name]["spec"], uids.get(name, "")
        names = {(f.get("metadata") or {}).get("name") for f in fss}
        fss = [_mandatory_spec(f, mandatory["FlowSchema", f["metadata"]["name"]])
               if (f.get("metadata") or {}).get("name") in ("exempt", "catch-all") else f for f in fss]
        fss = [f for f in fss if ((f.get("spec") or {}).get("priorityLevelConfiguration") or {}).get("name") in specs]
        for name in ("exempt", "catch-all"):
            if name not in names:
                fss.append(mandatory["FlowSchema", name])
        compiled = sorted((compile_schema(f) for f in fss), key=lambda s: (s.precedence, s.name))
        levels: dict[str, Level] = {}
        now = self._now()
        for name, spec in specs.items():
            lv = self.levels.get(name) or Level(name, on_wait=self._keep_adjusting)
            lv.uid, lv.exempt = uids[name], spec.get("type") == "Exempt"
            queuing = (((spec.get("limited") or {}).get("limitResponse") or {}).get("queuing") or {}) \
                if not lv.exempt and ((spec.get("limited") or {}).get("limitResponse") or {}).get("type") == "Queue" \
                else {}
            lv.set_queuing(int(queuing.get("queues") or 0), int(queuing.get("handSize") or 1),
                           int(queuing.get("queueLengthLimit") or 0))
            levels[name] = lv
        self._nominal_sum = configure_limits(levels, specs, self.server_cl)
        for lv in levels.values():
            if lv.demand is None:
                lv.demand = Demand(now)
        self.levels = levels
        self.schemas = tuple(compiled)
        self._by_user = {}
        self._by_request = {}
        self._catch_all = next((s for s in compiled if s.name == "catch-all"), None)
        adjust_borrowing(self.levels, self._nominal_sum, now)
        self._next_adjust = now + ADJUSTMENT_PERIOD

    @staticmethod
    def _now() -> float:
        return time.monotonic()  # the clock the levels keep their demand by

    def _keep_adjusting(self) -> None:
        """While requests wait, adjust borrowing on time even if no request arrives (upstream
        runs it on a 10 s ticker; here a timer exists only while someone waits)."""
        if self._timer is not None:
            return
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(max(0.0, self._next_adjust - self._now()) + 0.01, self._tick)

    def _tick(self) -> None:
        self._timer = None
        now = self._now()
        if now >= self._next_adjust:
            self._next_adjust = now + ADJUSTMENT_PERIOD
            adjust_borrowing(self.levels, self._nominal_sum, now)
        if any(lv.waiting for lv in self.levels.values()):
            self._keep_adjusting()

    def classify(self, rc: RequestContext) -> tuple[CompiledSchema, Level]:
        """The first schema whose rules match. The schemas (and rules) whose subjects take in
        a user are remembered per user, so a request checks only its own candidates' rules."""
        user, info = rc.user, rc.info
        key = (user.name, user.groups)
        if info.is_resource:  # every field a resource rule or a distinguisher-free match reads
            rkey: tuple[Any, ...] = (key, info.verb, info.group, info.resource, info.subresource,
                                     info.namespace)
        else:
            rkey = (key, info.verb, info.path)
        known = self._by_request.get(rkey)
        if known is not None:
            return known, self.levels[known.level]
        schema = self._classify(user, info, key)
        if len(self._by_request) >= _USER_CACHE:
            self._by_request.clear()
        self._by_request[rkey] = schema
        return schema, self.levels[schema.level]

    def _classify(self, user: Any, info: Any, key: tuple[str, tuple[str, ...]]) -> CompiledSchema:
        candidates = self._by_user.get(key)
        if candidates is None:
            candidates = [(s, rules) for s in self.schemas if (rules := s.rules_for(user))]
            if len(self._by_user) >= _USER_CACHE:
                self._by_user.clear()
            self._by_user[key] = candidates
        for schema, rules in candidates:
            if info.is_resource:
                if any(r.match_resource(info) for r in rules):
                    return schema
            elif any(r.match_non_resource(info) for r in rules):
                return schema
        assert self._catch_all is not None
        return self._catch_all

    async def serve(self, request: web.Request, rc: RequestContext,
                    call: Callable[[RequestContext], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
        """Run ``call(rc)`` under APF: admitted, queued or refused."""
        info = rc.info
        if long_running(info) and info.verb != "watch":
            return await call(rc)
        now = self._now()
        if now >= self._next_adjust:
            self._next_adjust = now + ADJUSTMENT_PERIOD
            adjust_borrowing(self.levels, self._nominal_sum, now)
        schema, level = self.classify(rc)
        headers = {PL_HEADER: level.uid, FS_HEADER: schema.uid}
        request[RESPONSE_HEADERS] = headers
        seen = _Seen(schema, level.name, rc, time.time())
        try:
            seen.queue = await level.acquire(
                lambda: _flow_hash(schema.name, distinguisher(schema, rc.user, info)),
                lambda: _wait_limit(request), seen)
        except Rejected as exc:
            key3 = (schema.name, level.name, exc.reason)
            self.rejected[key3] = self.rejected.get(key3, 0) + 1
            return too_many_requests(level.drops.retry_after, headers)
        key = (schema.name, level.name)
        self.dispatched[key] = self.dispatched.get(key, 0) + 1
        held = True
        seen.started = time.time()
        self._executing[seen] = None

        def release(resp: web.StreamResponse | None = None) -> None:
            nonlocal held
            if resp is not None:
                resp.headers.update(headers)
            if held:
                held = False
                self._executing.pop(seen, None)
                level.release()

        try:
            if info.verb == "watch":
                request[WATCH_STARTED] = release
                return await call(rc)
            outer = self.outer_seat
            if outer is None:
                return await call(rc)
            try:
                async with outer():
                    return await call(rc)
            except SeatRefused as exc:
                return too_many_requests(exc.retry_after, headers)
        finally:
            release()

    def collect(self) -> Iterator[Any]:
        """A prometheus_client collector (read at scrape time: nothing per request beyond
        the two counters) with upstream's ``apiserver_flowcontrol_*`` names and labels."""
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        gauges = {
            "nominal_limit_seats": ("Nominal number of execution seats configured for each priority level",
                                    lambda lv: lv.nominal_cl),
            "lower_limit_seats": ("Configured lower bound on number of execution seats available to each "
                                  "priority level", lambda lv: lv.min_cl),
            "upper_limit_seats": ("Configured upper bound on number of execution seats available to each "
                                  "priority level", lambda lv: lv.max_cl),
            "current_limit_seats": ("current derived number of execution seats available to each priority "
                                    "level", lambda lv: lv.current_cl),
            "current_executing_seats_total": ("Seats executing per priority level (vkube: one per request)",
                                              lambda lv: lv.executing),
            "current_inqueue_requests_total": ("Requests waiting per priority level", lambda lv: lv.waiting),
        }
        for name, (doc, get) in gauges.items():
            g = GaugeMetricFamily(f"apiserver_flowcontrol_{name}", doc, labels=["priority_level"])
            for pl, lv in sorted(self.levels.items()):
                g.add_metric([pl], get(lv))
            yield g
        d = CounterMetricFamily("apiserver_flowcontrol_dispatched_requests", "Number of requests executed by "
                                "API Priority and Fairness subsystem", labels=["flow_schema", "priority_level"])
        for (fs, pl), n in sorted(self.dispatched.items()):
            d.add_metric([fs, pl], n)
        yield d
        r = CounterMetricFamily("apiserver_flowcontrol_rejected_requests", "Number of requests rejected by API "
                                "Priority and Fairness subsystem", labels=["flow_schema", "priority_level", "reason"])
        for (fs, pl, reason), n in sorted(self.rejected.items()):
            r.add_metric([fs, pl, reason], n)
        yield r

    # -- /debug/api_priority_and_fairness ----------------------------------------------------
    def dump(self, what: str, query: Any = None) -> str | None:
        """``dump_priority_levels``, ``dump_queues`` and ``dump_requests`` (with
        ``?includeRequestDetails=1`` the request's user and target too) in upstream's
        tabwriter layout."""
        if what == "dump_requests":
            return self._dump_requests(bool((query or {}).get("includeRequestDetails")))
        if what == "dump_priority_levels":
            rows = [["PriorityLevelName", "ActiveQueues", "IsIdle", "IsQuiescing", "WaitingRequests",
                     "ExecutingRequests", "DispatchedRequests", "RejectedRequests", "TimedoutRequests",
                     "CancelledRequests"]]
            for name in sorted(self.levels):
                lv = self.levels[name]
                rows.append([name, str(lv.active_queues()), _bool(lv.executing == 0 and lv.waiting == 0),
                             "false", str(lv.waiting), str(lv.executing), str(lv.dispatched),
                             str(lv.rejected), str(lv.timed_out), str(lv.cancelled)])
            return _tabwrite(rows)
        if what == "dump_queues":
            rows = [["PriorityLevelName", "Index", "PendingRequests", "ExecutingRequests", "SeatsInUse",
                     "NextDispatchR", "InitialSeatsSum", "MaxSeatsSum", "TotalWorkSum"]]
            for name in sorted(self.levels):  # queues that hold nobody do not exist (apfqueue)
                for i, n in self.levels[name].queue_lengths().items():
                    rows.append([name, str(i), str(n), "0", "0", "0.00000000ss", str(n), str(n), "0.00000000ss"])
            return _tabwrite(rows)
        return None


    def _dump_requests(self, details: bool) -> str:
        """Waiting requests queue by queue (index in queue), then executing ones (index -1;
        queue -1 when they did not wait), level by level as upstream's ``dumpRequests``."""
        head = ["PriorityLevelName", "FlowSchemaName", "QueueIndex", "RequestIndexInQueue", "FlowDistingsher",
                "ArriveTime", "InitialSeats", "FinalSeats", "AdditionalLatency", "StartTime"]
        if details:
            head += ["UserName", "Verb", "APIPath", "Namespace", "Name", "APIVersion", "Resource", "SubResource"]
        rows = [head]
        executing: dict[str, list[_Seen]] = {}
        for seen in self._executing:
            executing.setdefault(seen.level, []).append(seen)
        for name in sorted(self.levels):
            for qi, pos, w in self.levels[name].waiters():
                if isinstance(w.meta, _Seen):
                    rows.append(w.meta.row(qi, pos, details))
            rows.extend(seen.row(seen.queue, -1, details) for seen in executing.get(name, ()))
        return _tabwrite(rows)


class _Seen:
    """One request as APF saw it (what dump_requests shows)."""

    __slots__ = ("schema", "level", "rc", "arrived", "started", "queue")

    def __init__(self, schema: CompiledSchema, level: str, rc: RequestContext, arrived: float) -> None:
        self.schema, self.level, self.rc, self.arrived = schema, level, rc, arrived
        self.started: float | None = None
        self.queue = -1

    def row(self, queue: int, index: int, details: bool) -> list[str]:
        info, user = self.rc.info, self.rc.user
        out = [self.level, self.schema.name, str(queue), str(index), distinguisher(self.schema, user, info),
               _rfc3339_nano(self.arrived), "1", "0", "0s",
               _rfc3339_nano(self.started) if self.started is not None else "0001-01-01T00:00:00Z"]
        if details:
            gv = f"{info.group}/{info.version}" if info.group else info.version
            out += [user.name, info.verb, info.path, info.namespace, info.name, gv, info.resource, info.subresource]
        return out


def _rfc3339_nano(t: float) -> str:
    """Go's ``time.RFC3339Nano`` in UTC: the fraction without trailing zeros."""
    import datetime as dt

    d = dt.datetime.fromtimestamp(t, dt.timezone.utc)
    frac = f"{d.microsecond:06d}".rstrip("0")
    return d.strftime("%Y-%m-%dT%H:%M:%S") + (f".{frac}" if frac else "") + "Z"


def _mandatory_spec(have: dict[str, Any], want: dict[str, Any]) -> dict[str, Any]:
    """A stored mandatory FlowSchema as it takes effect: its identity, the defined spec."""
    return {**have, "spec": want["spec"]}


def _bool(b: bool) -> str:
    return "true" if b else "false"


def _tabwrite(rows: list[list[str]]) -> str:
    """Go's ``tabwriter.NewWriter(w, 8, 0, 1, ' ', 0)`` over cells joined by ``",\\t"``: every
    cell but a line's last is padded to its column's width (text + 1, at least 8)."""
    cells = [[c + "," for c in r[:-1]] + [r[-1]] for r in rows]
    ncols = max(len(r) for r in cells)
    widths = [max([len(r[i]) + 1 for r in cells if i < len(r) - 1] + [8]) for i in range(ncols)]
    return "".join("".join(c.ljust(widths[i]) for i, c in enumerate(r[:-1])) + r[-1] + "\n" for r in cells)
