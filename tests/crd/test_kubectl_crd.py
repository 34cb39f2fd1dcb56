"""Issue 13 through the real kubectl: a CRD becomes a served resource — discovery, OpenAPI
(`explain`), short names, categories, printer columns, every verb — and goes away again."""

from __future__ import annotations

import asyncio
import json

from tests.crd.fixtures import crontab, crontab_crd
from tests.crd.helpers import get_json, install, run

CRD_NAME = "crontabs.stable.example.com"


async def test_crd_is_served_and_discoverable(control_plane):
    cp = control_plane
    await install(cp, crontab_crd())
    crd = await get_json(cp, "crd", CRD_NAME)
    conditions = {c["type"]: c for c in crd["status"]["conditions"]}
    assert conditions["NamesAccepted"]["status"] == "True"
    assert conditions["Established"]["status"] == "True"
    assert crd["status"]["storedVersions"] == ["v1"]
    assert crd["status"]["acceptedNames"]["kind"] == "CronTab"
    out = (await run(cp, "api-resources", "--api-group=stable.example.com")).stdout
    assert "crontabs" in out and "ct" in out and "CronTab" in out
    explain = (await run(cp, "explain", "crontab.spec.cronSpec")).stdout
    assert "The schedule, in cron format." in explain
    legacy = json.loads((await run(cp, "get", "--raw", "/apis/stable.example.com/v1")).stdout)
    names = {r["name"] for r in legacy["resources"]}
    assert names == {"crontabs", "crontabs/status", "crontabs/scale"}
    index = json.loads((await run(cp, "get", "--raw", "/openapi/v3")).stdout)
    assert "apis/stable.example.com/v1" in index["paths"]
    v2 = json.loads((await run(cp, "get", "--raw", "/openapi/v2")).stdout)
    assert "com.example.stable.v1.CronTab" in v2["definitions"]


async def test_every_verb_through_kubectl(control_plane):
    cp = control_plane
    await install(cp, crontab_crd())
    await run(cp, "create", "-f", "-", input=json.dumps(crontab("a", replicas=2)))
    obj = await get_json(cp, "ct", "a")
    assert obj["spec"]["maxReplicas"] == 5 and obj["spec"]["color"] == "red"  # defaults
    assert obj["metadata"]["generation"] == 1
    # printer columns in Table output, and category "all"
    table = (await run(cp, "get", "crontabs")).stdout.splitlines()
    assert table[0].split() == ["NAME", "SPEC", "REPLICAS", "READY", "AGE"]
    assert table[1].split()[:7] == ["a", "*", "*", "*", "*", "*/5", "2"]
    assert "crontab.stable.example.com/a" in (await run(cp, "get", "all")).stdout
    # strategic merge patch is 415 on a custom resource, as in Kubernetes; merge and JSON work
    smp = await run(cp, "patch", "ct", "a", "-p", '{"spec":{"replicas":3}}', check=False)
    assert smp.returncode != 0 and "application/strategic-merge-patch+json is not supported" in smp.stderr
    await run(cp, "patch", "ct", "a", "--type=merge", "-p", '{"spec":{"replicas":3}}')
    await run(cp, "patch", "ct", "a", "--type=json", "-p", '[{"op":"replace","path":"/spec/image","value":"v2"}]')
    obj = await get_json(cp, "ct", "a")
    assert obj["spec"]["replicas"] == 3 and obj["spec"]["image"] == "v2"
    assert obj["metadata"]["generation"] == 3
    # status writes on the main resource are ignored; /status takes them and keeps generation
    await run(cp, "patch", "ct", "a", "--type=merge", "--subresource=status",
              "-p", '{"status":{"replicas":3,"conditions":[{"type":"Ready","status":"True"}]}}')
    obj = await get_json(cp, "ct", "a")
    assert obj["status"]["replicas"] == 3 and obj["metadata"]["generation"] == 3
    assert (await run(cp, "get", "ct", "a", "--no-headers")).stdout.split()[7] == "True"
    # scale subresource
    await run(cp, "scale", "ct/a", "--replicas=4")
    assert (await get_json(cp, "ct", "a"))["spec"]["replicas"] == 4
    # server-side apply with list-type=map from the schema: two managers own one item each
    applied = crontab("b", ports=[{"name": "http", "port": 80}])
    await run(cp, "apply", "--server-side", "--field-manager=one", "-f", "-", input=json.dumps(applied))
    other = {"apiVersion": "stable.example.com/v1", "kind": "CronTab",
             "metadata": {"name": "b", "namespace": "default"},
             "spec": {"ports": [{"name": "https", "port": 443}]}}
    await run(cp, "apply", "--server-side", "--field-manager=two", "-f", "-", input=json.dumps(other))
    ports = (await get_json(cp, "ct", "b"))["spec"]["ports"]
    assert sorted(p["name"] for p in ports) == ["http", "https"]
    # client-side apply (kubectl sends JSON merge patches for kinds it does not know)
    await run(cp, "apply", "-f", "-", input=json.dumps(crontab("e", replicas=1)))
    out = await run(cp, "apply", "-f", "-", input=json.dumps(crontab("e", replicas=2)))
    assert "crontab.stable.example.com/e configured" in out.stdout
    assert (await get_json(cp, "ct", "e"))["spec"]["replicas"] == 2
    await run(cp, "delete", "ct", "e")
    # field selectors: metadata.name and a selectableField
    await run(cp, "create", "-f", "-", input=json.dumps(crontab("c", color="blue")))
    blue = (await run(cp, "get", "ct", "--field-selector=spec.color=blue", "-o", "name")).stdout.split()
    assert blue == ["crontab.stable.example.com/c"]
    named = (await run(cp, "get", "ct", "--field-selector=metadata.name=b", "-o", "name")).stdout.split()
    assert named == ["crontab.stable.example.com/b"]
    bad = await run(cp, "get", "ct", "--field-selector=spec.image=x", check=False)
    assert bad.returncode != 0 and "field label not supported: spec.image" in bad.stderr
    # label selector + deletecollection
    await run(cp, "label", "ct", "b", "c", "tier=x")
    await run(cp, "delete", "ct", "-l", "tier=x")
    assert (await run(cp, "get", "ct", "-o", "name")).stdout.split() == ["crontab.stable.example.com/a"]


async def test_finalizers_and_generation_without_status_subresource(control_plane):
    cp = control_plane
    crd = crontab_crd()
    version = crd["spec"]["versions"][0]
    del version["subresources"]
    await install(cp, crd)
    await run(cp, "create", "-f", "-", input=json.dumps(crontab("a")))
    # without a status subresource, status is written with the object and bumps generation
    await run(cp, "patch", "ct", "a", "--type=merge", "-p", '{"status":{"replicas":1}}')
    obj = await get_json(cp, "ct", "a")
    assert obj["status"]["replicas"] == 1 and obj["metadata"]["generation"] == 2
    await run(cp, "patch", "ct", "a", "--type=merge", "-p", '{"metadata":{"finalizers":["example.com/hold"]}}')
    await run(cp, "delete", "ct", "a", "--wait=false")
    obj = await get_json(cp, "ct", "a")
    assert obj["metadata"]["deletionTimestamp"]
    await run(cp, "patch", "ct", "a", "--type=json", "-p", '[{"op":"remove","path":"/metadata/finalizers"}]')
    gone = await run(cp, "get", "ct", "a", check=False)
    assert "NotFound" in gone.stderr


async def test_cluster_scoped_custom_resource(control_plane):
    cp = control_plane
    crd = crontab_crd(scope="Cluster")
    await install(cp, crd)
    obj = crontab("global")
    del obj["metadata"]["namespace"]
    await run(cp, "create", "-f", "-", input=json.dumps(obj))
    got = await get_json(cp, "ct", "global")
    assert "namespace" not in got["metadata"]
    assert (await run(cp, "get", "ct", "-A", "-o", "name")).stdout.split() == ["crontab.stable.example.com/global"]


async def test_deleting_the_crd_removes_objects_and_stops_serving(control_plane):
    cp = control_plane
    await install(cp, crontab_crd())
    for name in ("a", "b"):
        await run(cp, "create", "-f", "-", input=json.dumps(crontab(name)))
    await run(cp, "delete", "crd", CRD_NAME, "--timeout=60s")
    assert CRD_NAME not in (await run(cp, "get", "crd")).stdout
    res = await run(cp, "api-resources", "--api-group=stable.example.com")
    assert "crontabs" not in res.stdout
    # kubectl's own message for a kind that is not installed
    missing = await run(cp, "create", "-f", "-", input=json.dumps(crontab("c")), check=False)
    assert 'no matches for kind "CronTab" in version "stable.example.com/v1"' in missing.stderr
    assert "ensure CRDs are installed first" in missing.stderr
    # a re-created CRD starts empty
    await install(cp, crontab_crd())
    assert (await run(cp, "get", "ct", "-o", "name")).stdout.strip() == ""


async def test_crds_and_objects_survive_restart(tmp_path):
    from tests.conftest import RunningControlPlane
    from vkube.apiserver.server import ControlPlane

    cp = ControlPlane(data_dir=tmp_path / "cp")
    await cp.start()
    running = RunningControlPlane(cp, tmp_path / "cp" / "kubeconfig")
    try:
        await install(running, crontab_crd())
        await run(running, "create", "-f", "-", input=json.dumps(crontab("keep", replicas=2)))
    finally:
        await cp.stop()
    cp = ControlPlane(data_dir=tmp_path / "cp")
    await cp.start()
    running = RunningControlPlane(cp, tmp_path / "cp" / "kubeconfig")
    try:
        obj = await get_json(running, "ct", "keep")
        assert obj["spec"]["replicas"] == 2
    finally:
        await cp.stop()


async def test_name_conflicts_are_reported_not_served(control_plane):
    cp = control_plane
    await install(cp, crontab_crd())
    clash = crontab_crd()
    clash["metadata"]["name"] = "crontabs2.stable.example.com"
    clash["spec"]["names"] = {"plural": "crontabs2", "kind": "CronTab2", "shortNames": ["ct"]}
    await run(cp, "apply", "-f", "-", input=json.dumps(clash))
    for _ in range(120):
        crd = await get_json(cp, "crd", "crontabs2.stable.example.com")
        conditions = {c["type"]: c for c in (crd.get("status") or {}).get("conditions") or ()}
        if "NamesAccepted" in conditions:
            break
        await asyncio.sleep(0.5)
    assert conditions["NamesAccepted"]["status"] == "False"
    assert conditions["NamesAccepted"]["reason"] == "ShortNamesConflict"
    assert conditions["Established"]["status"] == "False"
    assert "crontabs2" not in (await run(cp, "api-resources", "--api-group=stable.example.com")).stdout


async def test_a_terminating_crd_waits_for_finalizers_and_refuses_creates(control_plane):
    cp = control_plane
    await install(cp, crontab_crd())
    held = crontab("held")
    held["metadata"]["finalizers"] = ["example.com/hold"]
    await run(cp, "create", "-f", "-", input=json.dumps(held))
    await run(cp, "delete", "crd", CRD_NAME, "--wait=false")
    for _ in range(120):
        crd = await get_json(cp, "crd", CRD_NAME)
        conditions = {c["type"]: c for c in crd["status"]["conditions"]}
        obj = await get_json(cp, "ct", "held")
        if "Terminating" in conditions and obj["metadata"].get("deletionTimestamp"):
            break
        await asyncio.sleep(0.5)
    assert conditions["Terminating"]["reason"] == "InstanceDeletionInProgress"
    assert "customresourcecleanup.apiextensions.k8s.io" in crd["metadata"]["finalizers"]
    refused = await run(cp, "create", "-f", "-", input=json.dumps(crontab("late")), check=False)
    assert "create not allowed while custom resource definition" in refused.stderr
    await run(cp, "patch", "ct", "held", "--type=json", "-p", '[{"op":"remove","path":"/metadata/finalizers"}]')
    for _ in range(120):
        if CRD_NAME not in (await run(cp, "get", "crd")).stdout:
            break
        await asyncio.sleep(0.5)
    assert CRD_NAME not in (await run(cp, "get", "crd")).stdout
