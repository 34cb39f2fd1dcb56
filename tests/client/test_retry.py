"""Throttled requests, as client-go treats them: a filter's 429 with Retry-After (APF, shared
fairness) is sent again after the wait the server names — requests and watches alike — while a
handler's 429 (a Status: an eviction a PodDisruptionBudget blocks) reaches the caller at once;
informers wait a throttled LIST out without growing their back-off, and list a few at a time."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from aiohttp import web

from vkube.api import errors
from vkube.client import Client
from vkube.client.resources import CONFIGMAPS, PODS
from vkube.client.retry import BACKOFF, delay_for, until_done
from vkube.controllers.informer import Informer

TOO_MANY = "Too many requests, please try again later.\n"


class Api:
    """A small API: ``throttle[key]`` answers that many 429s (Retry-After: 0) first."""

    def __init__(self) -> None:
        self.throttle: dict[str, int] = {}
        self.seen: dict[str, int] = {}
        self.listing = 0
        self.most_listing = 0

    def _throttled(self, key: str) -> web.Response | None:
        self.seen[key] = self.seen.get(key, 0) + 1
        if self.throttle.get(key, 0) > 0:
            self.throttle[key] -= 1
            return web.Response(status=429, text=TOO_MANY, headers={"Retry-After": "0"})
        return None

    async def configmaps(self, req: web.Request) -> web.StreamResponse:
        if req.method == "POST":
            return self._throttled("create") or web.json_response(await req.json(), status=201)
        if req.query.get("watch"):
            refused = self._throttled("watch")
            if refused is not None:
                return refused
            resp = web.StreamResponse()
            await resp.prepare(req)
            ev = {"type": "ADDED", "object": {"kind": "ConfigMap", "metadata": {
                "name": "w", "namespace": "default", "resourceVersion": "2"}}}
            await resp.write(orjson.dumps(ev) + b"\n")
            await resp.write_eof()
            return resp
        refused = self._throttled("list")
        if refused is not None:
            return refused
        self.listing += 1
        self.most_listing = max(self.most_listing, self.listing)
        try:
            await asyncio.sleep(0.02)
        finally:
            self.listing -= 1
        return web.json_response({"kind": "ConfigMapList", "apiVersion": "v1",
                                  "metadata": {"resourceVersion": "1"}, "items": []})

    async def eviction(self, req: web.Request) -> web.Response:
        self.seen["evict"] = self.seen.get("evict", 0) + 1
        body = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "TooManyRequests",
                "message": "Cannot evict pod as it would violate the pod's disruption budget.",
                "details": {"retryAfterSeconds": 10}, "code": 429}
        return web.json_response(body, status=429, headers={"Retry-After": "10"})


@pytest.fixture
async def api() -> AsyncIterator[tuple[str, Api]]:
    state = Api()
    app = web.Application()
    app.router.add_route("*", "/api/v1/namespaces/default/configmaps", state.configmaps)
    app.router.add_route("*", "/api/v1/configmaps", state.configmaps)
    app.router.add_post("/api/v1/namespaces/default/pods/p/eviction", state.eviction)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]  # noqa: SLF001
    try:
        yield f"http://127.0.0.1:{port}", state
    finally:
        await runner.cleanup()


CM: Any = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "namespace": "default"}}


async def test_a_throttled_request_is_sent_again_until_served(api: tuple[str, Api]) -> None:
    url, state = api
    state.throttle["create"] = 3
    async with Client(url) as c:
        made = await c.create(CONFIGMAPS, CM)
    assert made["metadata"]["name"] == "a"
    assert state.seen["create"] == 4  # three refusals, then served


async def test_retries_run_out_with_the_servers_retry_after(api: tuple[str, Api]) -> None:
    url, state = api
    state.throttle["create"] = 100
    async with Client(url, retries=2) as c:
        with pytest.raises(errors.TooManyRequests) as exc:
            await c.create(CONFIGMAPS, CM)
    assert exc.value.retry_after == 0 and str(exc.value) == TOO_MANY.strip()
    assert state.seen["create"] == 3
    state.seen.clear()
    async with Client(url, retries=0) as c:
        with pytest.raises(errors.TooManyRequests):
            await c.create(CONFIGMAPS, CM)
    assert state.seen["create"] == 1


async def test_a_handlers_429_is_the_callers(api: tuple[str, Api]) -> None:
    """An eviction blocked by a PodDisruptionBudget is an answer, not throttling: no retry,
    even though it names a Retry-After."""
    url, state = api
    async with Client(url) as c:
        with pytest.raises(errors.TooManyRequests) as exc:
            await c.create(PODS, {"apiVersion": "policy/v1", "kind": "Eviction",
                                  "metadata": {"name": "p", "namespace": "default"}},
                           subresource="eviction", name="p")
    assert exc.value.retry_after == 10
    assert state.seen["evict"] == 1


async def test_a_throttled_watch_is_opened_again(api: tuple[str, Api]) -> None:
    url, state = api
    state.throttle["watch"] = 2
    async with Client(url) as c:
        events = [ev async for ev in c.watch(CONFIGMAPS, namespace="default", resource_version="1")]
    assert [(e.type, e.object["metadata"]["name"]) for e in events] == [("ADDED", "w")]
    assert state.seen["watch"] == 3


def test_retry_after_is_waited_and_does_not_grow_the_backoff() -> None:
    throttled = errors.TooManyRequests("Too many requests", retry_after=2)
    for failures in (0, 5, 50):
        delay, told = delay_for(throttled, failures)
        assert told and 2 <= delay <= 4  # the server's wait, jittered up to twice
    delay, told = delay_for(errors.TooManyRequests("no header"), 6)
    assert told and 1 <= delay <= 2
    assert delay_for(errors.ServiceUnavailable("down"), 3) == (BACKOFF[3], False)
    assert delay_for(errors.ServiceUnavailable("asleep", retry_after=5), 3)[1]


async def test_an_informer_waits_out_throttled_lists(api: tuple[str, Api]) -> None:
    """Forty refusals in a row: with the server's Retry-After (0) each is tried again at once;
    growing back-off would have waited minutes by now."""
    url, state = api
    state.throttle["list"] = 40
    async with Client(url, retries=0) as c:  # every refusal reaches the informer itself
        inf = Informer(c, CONFIGMAPS, namespace="default")
        task = asyncio.create_task(inf.run())
        try:
            await asyncio.wait_for(inf.wait_synced(), 60)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    assert state.seen["list"] == 41


async def test_a_components_informers_list_a_few_at_a_time(api: tuple[str, Api]) -> None:
    url, state = api
    async with Client(url, max_lists=3) as c:
        infs = [Informer(c, CONFIGMAPS, label_selector=f"i={i}") for i in range(12)]
        tasks = [asyncio.create_task(i.run()) for i in infs]
        try:
            await asyncio.wait_for(asyncio.gather(*(i.wait_synced() for i in infs)), 60)
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    assert state.seen["list"] == 12
    assert state.most_listing <= 3


async def test_a_start_up_step_is_tried_until_it_is_not_refused() -> None:
    """``until_done``: 429s and 503s delay a step (the syncer's host namespace, ``prepare``);
    anything else is the step's own answer."""
    answers: list[BaseException | None] = [
        errors.TooManyRequests("full", retry_after=0), errors.ServiceUnavailable("starting", retry_after=0),
        errors.Timeout("slow", retry_after=0), None]

    async def step() -> str:
        a = answers.pop(0)
        if a is not None:
            raise a
        return "done"

    assert await until_done(step, "step") == "done" and not answers

    async def refused() -> None:
        raise errors.Forbidden("no")

    with pytest.raises(errors.Forbidden):
        await until_done(refused, "step")
