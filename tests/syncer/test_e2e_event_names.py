"""Events the host writes about a tenant's pod, read with kubectl in the virtual cluster, name
the virtual pod, namespace and UID, never the host's: the kubelet's ``BackOff`` (``NAME_NS(UID)``),
the scheduler's ``Scheduled`` (``NS/NAME``), and every other event of the pod."""

from __future__ import annotations

import json
import os
import tempfile

from vkube.client.resources import PODS

from .conftest import eventually
from .test_acceptance import World, world  # noqa: F401 - the fixture

POD = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "crash", "namespace": "default"},
       "spec": {"containers": [{"name": "crash", "image": "busybox", "command": ["false"]}]}}


async def test_synced_events_name_virtual_objects(world: World) -> None:  # noqa: F811
    vc = await world.vcluster("evnames")
    fd, path = tempfile.mkstemp(suffix=".json", dir=world.tmp)
    with os.fdopen(fd, "w") as f:
        json.dump(POD, f)
    await vc.kubectl("apply", "-f", path)
    vuid = json.loads(await vc.kubectl("get", "pod", "crash", "-o", "json"))["metadata"]["uid"]

    async def events() -> dict[str, dict]:
        items = json.loads(await vc.kubectl("get", "events", "-o", "json"))["items"]
        got = {e["reason"]: e for e in items if e["involvedObject"].get("name") == "crash"}
        assert {"Scheduled", "BackOff"} <= set(got), sorted(got)
        return got
    got = await eventually(events, attempts=300, delay=0.2)
    hpod = (await world.host.list(PODS, namespace=vc.host_namespace))["items"][0]
    node = hpod["spec"]["nodeName"]
    assert got["BackOff"]["message"] == f"Back-off restarting failed container crash in pod crash_default({vuid})"
    assert got["Scheduled"]["message"] == f"Successfully assigned default/crash to {node}"
    host_words = (vc.host_namespace, hpod["metadata"]["name"], hpod["metadata"]["uid"])
    for reason, ev in got.items():
        assert ev["involvedObject"]["uid"] == vuid and ev["involvedObject"]["namespace"] == "default"
        text = json.dumps({k: ev.get(k) for k in ("message", "involvedObject", "related", "reason")})
        assert not any(w in text for w in host_words), (reason, text)

    # the pod's own status: the kubelet's waiting message names the virtual pod too
    async def waiting() -> str:
        pod = json.loads(await vc.kubectl("get", "pod", "crash", "-o", "json"))
        msg = ((pod["status"].get("containerStatuses") or [{}])[0].get("state") or {}) \
            .get("waiting", {}).get("message", "")
        assert "back-off" in msg, pod["status"]
        return msg
    msg = await eventually(waiting, attempts=300, delay=0.2)
    assert f"pod=crash_default({vuid})" in msg, msg
    assert not any(w in msg for w in host_words), msg
