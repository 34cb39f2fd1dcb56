"""Watchers of one resource share each event's decoded object and JSON (``ResourceStorage.
_watch_decode``/``watch_json``). What must not change: every watcher still gets exactly its
events — selectors turn a no-longer-matching object into DELETED — and each line is the
object at that revision, byte for byte the same for every watcher that gets it."""

from __future__ import annotations

import asyncio

import orjson

from tests.conftest import RunningControlPlane
from vkube.client.resources import CONFIGMAPS

WATCHES = {"all": {}, "app-a": {"labelSelector": "app=a"}, "name-x": {"fieldSelector": "metadata.name=x"},
           "all-again": {}}


async def collect(c, params: dict, rv: str, lines: list[bytes], want: int) -> None:  # noqa: ANN001
    buf = b""
    async for chunk in c.stream("/api/v1/namespaces/default/configmaps",
                                params={"watch": "1", "resourceVersion": rv, **params}):
        buf += chunk
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            lines.append(line)
        if len(lines) >= want:
            return


async def test_watchers_share_events_but_each_sees_its_own(control_plane: RunningControlPlane):
    async with control_plane.client() as c:
        rv = (await c.list(CONFIGMAPS, namespace="default"))["metadata"]["resourceVersion"]
        want = {"all": 4, "app-a": 2, "name-x": 3, "all-again": 4}
        got: dict[str, list[bytes]] = {k: [] for k in WATCHES}
        tasks = [asyncio.create_task(collect(c, WATCHES[k], rv, got[k], want[k])) for k in WATCHES]
        await asyncio.sleep(0.5)  # the watches open (they replay from rv anyway)
        x = await c.create(CONFIGMAPS, {"apiVersion": "v1", "kind": "ConfigMap",
                                        "metadata": {"name": "x", "labels": {"app": "a"}}, "data": {"k": "1"}},
                           namespace="default")
        x["metadata"]["labels"] = {"app": "b"}
        await c.update(CONFIGMAPS, x)
        await c.create(CONFIGMAPS, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "y"}},
                       namespace="default")
        await c.delete(CONFIGMAPS, "x", namespace="default")
        await asyncio.wait_for(asyncio.gather(*tasks), 60)

    events = {k: [orjson.loads(line) for line in v] for k, v in got.items()}

    def seen(k: str) -> list[tuple[str, str, str]]:
        return [(e["type"], e["object"]["metadata"]["name"], (e["object"]["metadata"].get("labels") or {}).get("app", ""))
                for e in events[k]]

    assert seen("all") == [("ADDED", "x", "a"), ("MODIFIED", "x", "b"), ("ADDED", "y", ""), ("DELETED", "x", "b")]
    assert seen("app-a") == [("ADDED", "x", "a"), ("DELETED", "x", "b")]  # stopped matching
    assert seen("name-x") == [("ADDED", "x", "a"), ("MODIFIED", "x", "b"), ("DELETED", "x", "b")]
    assert got["all"] == got["all-again"]  # the same bytes
    assert got["name-x"] == [got["all"][0], got["all"][1], got["all"][3]]
    # each line is the object at its revision
    rvs = [int(e["object"]["metadata"]["resourceVersion"]) for e in events["all"]]
    assert rvs == sorted(rvs) and len(set(rvs)) == 4
    assert events["all"][0]["object"]["data"] == {"k": "1"}
