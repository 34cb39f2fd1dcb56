"""Several versions of one CRD (served/storage, deprecation warnings, conversion None,
storedVersions), two control planes with different versions of one group in one process,
and watches through the official Python client."""

from __future__ import annotations

import asyncio
import copy
import json
from pathlib import Path

from tests.conftest import RunningControlPlane
from tests.crd.fixtures import crontab, crontab_crd
from tests.crd.helpers import get_json, install, run
from vkube.apiserver.server import ControlPlane


def two_versions(storage: str) -> dict:
    crd = crontab_crd()
    v1 = crd["spec"]["versions"][0]
    beta = copy.deepcopy(v1)
    beta.update(name="v1beta1", deprecated=True,
                deprecationWarning="stable.example.com/v1beta1 CronTab is deprecated; use v1")
    v1["storage"], beta["storage"] = storage == "v1", storage == "v1beta1"
    crd["spec"]["versions"] = [beta, v1]
    return crd


async def test_versions_storage_switch_and_deprecation(control_plane):
    cp = control_plane
    await install(cp, two_versions(storage="v1beta1"))
    old = crontab("old")
    old["apiVersion"] = "stable.example.com/v1beta1"
    out = await run(cp, "create", "-f", "-", input=json.dumps(old))
    assert "Warning: stable.example.com/v1beta1 CronTab is deprecated; use v1" in out.stderr
    # v1 is the preferred version (GA before beta), and reads convert apiVersion
    group = json.loads((await run(cp, "get", "--raw", "/apis/stable.example.com")).stdout)
    assert group["preferredVersion"]["version"] == "v1"
    assert [v["version"] for v in group["versions"]] == ["v1", "v1beta1"]
    as_v1 = json.loads((await run(cp, "get", "--raw", "/apis/stable.example.com/v1/namespaces/default/crontabs/old")).stdout)
    assert as_v1["apiVersion"] == "stable.example.com/v1"
    # switch the storage version: old objects stay readable, storedVersions grows
    await run(cp, "apply", "-f", "-", input=json.dumps(two_versions(storage="v1")))
    for _ in range(120):
        crd = await get_json(cp, "crd", "crontabs.stable.example.com")
        if crd["status"]["storedVersions"] == ["v1beta1", "v1"]:
            break
        await asyncio.sleep(0.5)
    assert crd["status"]["storedVersions"] == ["v1beta1", "v1"]
    await run(cp, "create", "-f", "-", input=json.dumps(crontab("new")))
    beta_list = json.loads((await run(cp, "get", "--raw",
                                      "/apis/stable.example.com/v1beta1/namespaces/default/crontabs")).stdout)
    assert sorted(i["metadata"]["name"] for i in beta_list["items"]) == ["new", "old"]
    assert {i["apiVersion"] for i in beta_list["items"]} == {"stable.example.com/v1beta1"}
    # stop serving v1beta1: its URLs are gone, v1 still serves everything
    unserved = two_versions(storage="v1")
    unserved["spec"]["versions"][0]["served"] = False
    await run(cp, "apply", "-f", "-", input=json.dumps(unserved))
    for _ in range(120):
        raw = await run(cp, "get", "--raw", "/apis/stable.example.com/v1beta1/namespaces/default/crontabs", check=False)
        if raw.returncode != 0:
            break
        await asyncio.sleep(0.5)
    assert "NotFound" in raw.stderr or "could not find" in raw.stderr
    assert len((await get_json(cp, "ct"))["items"]) == 2


async def _start(path: Path) -> RunningControlPlane:
    cp = ControlPlane(data_dir=path)
    await cp.start()
    return RunningControlPlane(cp, path / "kubeconfig")


async def test_two_control_planes_serve_different_versions_of_one_group(tmp_path):
    a, b = await _start(tmp_path / "a"), await _start(tmp_path / "b")
    try:
        await install(a, crontab_crd())
        crd_b = crontab_crd()
        crd_b["spec"]["versions"][0]["name"] = "v2"
        await install(b, crd_b)
        res_a = (await run(a, "api-resources", "--api-group=stable.example.com")).stdout
        res_b = (await run(b, "api-resources", "--api-group=stable.example.com")).stdout
        assert "stable.example.com/v1 " in res_a and "v2" not in res_a
        assert "stable.example.com/v2 " in res_b and "stable.example.com/v1 " not in res_b
        await run(a, "delete", "crd", "crontabs.stable.example.com")
        assert "crontabs" in (await run(b, "api-resources", "--api-group=stable.example.com")).stdout
    finally:
        await a.cp.stop()
        await b.cp.stop()


async def test_watch_with_the_official_client(control_plane):
    from kubernetes import client, config, watch

    cp = control_plane
    await install(cp, crontab_crd())

    def watch_two() -> list[tuple[str, str, str]]:
        api = client.CustomObjectsApi(config.new_client_from_config(str(cp.kubeconfig)))
        seen = []
        w = watch.Watch()
        for ev in w.stream(api.list_namespaced_custom_object, "stable.example.com", "v1", "default",
                           "crontabs", timeout_seconds=60):
            obj = ev["object"]
            seen.append((ev["type"], obj["metadata"]["name"], obj["apiVersion"]))
            if len(seen) == 2:
                w.stop()
        return seen

    watcher = asyncio.create_task(asyncio.to_thread(watch_two))
    await asyncio.sleep(1)
    await run(cp, "create", "-f", "-", input=json.dumps(crontab("w1")))
    await run(cp, "patch", "ct", "w1", "--type=merge", "-p", '{"spec":{"replicas":2}}')
    seen = await asyncio.wait_for(watcher, 90)
    assert seen == [("ADDED", "w1", "stable.example.com/v1"), ("MODIFIED", "w1", "stable.example.com/v1")]


async def test_watches_end_when_the_crd_is_deleted(control_plane):
    import aiohttp

    cp = control_plane
    await install(cp, crontab_crd())
    url = f"{cp.url}/apis/stable.example.com/v1/namespaces/default/crontabs?watch=1&timeoutSeconds=600"

    async def read_until_eof() -> int:
        lines = 0
        async with cp.session() as s, s.get(url) as resp:
            assert resp.status == 200
            async for _ in resp.content:
                lines += 1
        return lines

    reader = asyncio.create_task(read_until_eof())
    await asyncio.sleep(1)
    assert not reader.done()
    await run(cp, "delete", "crd", "crontabs.stable.example.com")
    await asyncio.wait_for(reader, 60)  # the stream ends, long before its 600 s timeout


async def test_validation_ratchets_on_unchanged_values(control_plane):
    cp = control_plane
    await install(cp, crontab_crd())
    await run(cp, "create", "-f", "-", input=json.dumps(crontab("old", replicas=4)))
    # the schema gets stricter: replicas at most 2, and a new CEL rule on the image
    strict = crontab_crd()
    spec_schema = strict["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    spec_schema["properties"]["replicas"]["maximum"] = 2
    spec_schema["properties"]["image"]["x-kubernetes-validations"] = [
        {"rule": "self.startsWith('registry.example.com/')", "message": "images come from our registry"}]
    await run(cp, "apply", "-f", "-", input=json.dumps(strict))
    for _ in range(120):
        check = await run(cp, "create", "-f", "-", input=json.dumps(crontab("probe", replicas=4)), check=False)
        if check.returncode != 0:
            break
        await run(cp, "delete", "ct", "probe")
        await asyncio.sleep(0.5)
    assert "should be less than or equal to 2" in check.stderr  # new objects meet the new schema
    # the old object can still be written where its invalid values do not change
    await run(cp, "label", "ct", "old", "team=a")
    await run(cp, "patch", "ct", "old", "--type=merge", "--subresource=status", "-p", '{"status":{"replicas":4}}')
    await run(cp, "patch", "ct", "old", "--type=merge", "-p", '{"spec":{"color":"blue"}}')
    # but a changed value must meet the new schema and rules
    out = await run(cp, "patch", "ct", "old", "--type=merge", "-p", '{"spec":{"replicas":3}}', check=False)
    assert "spec.replicas: Invalid value: 3: spec.replicas in body should be less than or equal to 2" in out.stderr
    out = await run(cp, "patch", "ct", "old", "--type=merge", "-p", '{"spec":{"image":"other"}}', check=False)
    assert 'spec.image: Invalid value: "string": images come from our registry' in out.stderr
