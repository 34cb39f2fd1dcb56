"""A CRD spec change keeps the open watches of a version it leaves as it was (printer columns,
another version added) and ends those whose schema it changes — watched with the official
Python client, the CRD changed with kubectl."""

from __future__ import annotations

import asyncio
import copy
import json
import threading

from tests.crd.fixtures import crontab, crontab_crd
from tests.crd.helpers import install, run


class _Watcher:
    """The official client's watch in a thread: records events until the server ends it."""

    def __init__(self, kubeconfig: str) -> None:
        self.kubeconfig = kubeconfig
        self.events: list[tuple[str, str]] = []
        self.ended = threading.Event()

    def run(self) -> None:
        from kubernetes import client, config, watch

        api = client.CustomObjectsApi(config.new_client_from_config(self.kubeconfig))
        try:
            # with timeout_seconds the client does not re-watch when the server ends the stream
            for ev in watch.Watch().stream(api.list_namespaced_custom_object, "stable.example.com", "v1",
                                           "default", "crontabs", timeout_seconds=600):
                self.events.append((ev["type"], ev["object"]["metadata"]["name"]))
        finally:
            self.ended.set()

    async def wait_for(self, event: tuple[str, str], timeout: float = 90) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while event not in self.events:
            assert not self.ended.is_set(), f"the watch ended; saw {self.events}"
            assert loop.time() < deadline, f"no {event} in {self.events}"
            await asyncio.sleep(0.2)


async def _served(cp, path: str) -> None:
    for _ in range(240):
        if (await run(cp, "get", "--raw", path, check=False)).returncode == 0:
            return
        await asyncio.sleep(0.25)
    raise AssertionError(f"{path} never served")


async def test_spec_changes_keep_watches_unless_the_watched_version_changes(control_plane):
    cp = control_plane
    crd = crontab_crd()
    await install(cp, crd)
    watcher = _Watcher(str(cp.kubeconfig))
    thread = asyncio.create_task(asyncio.to_thread(watcher.run))
    await run(cp, "create", "-f", "-", input=json.dumps(crontab("w1")))
    await watcher.wait_for(("ADDED", "w1"))

    # printer columns change and a second version appears: v1's objects are what they were
    changed = copy.deepcopy(crd)
    v1 = changed["spec"]["versions"][0]
    v1["additionalPrinterColumns"] = v1["additionalPrinterColumns"][:1]
    v2 = copy.deepcopy(v1)
    v2.update(name="v2", storage=False)
    changed["spec"]["versions"].append(v2)
    await run(cp, "apply", "-f", "-", input=json.dumps(changed))
    await _served(cp, "/apis/stable.example.com/v2/namespaces/default/crontabs")
    await run(cp, "create", "-f", "-", input=json.dumps(crontab("w2")))
    await watcher.wait_for(("ADDED", "w2"))
    await run(cp, "label", "ct", "w1", "seen=yes")
    await watcher.wait_for(("MODIFIED", "w1"))
    assert not watcher.ended.is_set()

    # v1's schema changes (a new property): its watches end, so clients re-list with it
    stricter = copy.deepcopy(changed)
    props = stricter["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
    props["owner"] = {"type": "string"}
    await run(cp, "apply", "-f", "-", input=json.dumps(stricter))
    await asyncio.wait_for(thread, 90)
    assert watcher.ended.is_set()
    assert ("ADDED", "w2") in watcher.events
