"""Server-maintained metadata, finalizers, graceful deletion, subresources, restarts."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from vkube.api import errors
from vkube.apiserver.server import ControlPlane
from vkube.client import Client
from vkube.client.resources import CONFIGMAPS, DEPLOYMENTS, NAMESPACES, NODES, PODS


def pod(name: str, **spec: object) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"containers": [{"name": "c", "image": "nginx"}], **spec}}


async def test_restart_keeps_objects_and_revisions_increase(tmp_path: Path):
    cp = ControlPlane(data_dir=tmp_path / "d")
    await cp.start()
    async with Client(cp.url, ssl=cp.client_ssl()) as c:
        created = [await c.create(CONFIGMAPS, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"k{i}"}},
                                  namespace="default") for i in range(5)]
        last_rv = int(created[-1]["metadata"]["resourceVersion"])
    await cp.stop()
    cp2 = ControlPlane(data_dir=tmp_path / "d")
    await cp2.start()
    try:
        async with Client(cp2.url, ssl=cp2.client_ssl()) as c:
            names = [o["metadata"]["name"] for o in (await c.list(CONFIGMAPS, namespace="default"))["items"]]
            assert names == [f"k{i}" for i in range(5)]
            kept = await c.get(CONFIGMAPS, "k0", namespace="default")
            assert kept["metadata"]["uid"] == created[0]["metadata"]["uid"]
            new = await c.create(CONFIGMAPS, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "after"}},
                                 namespace="default")
            assert int(new["metadata"]["resourceVersion"]) > last_rv
    finally:
        await cp2.stop()


async def test_finalizers_hold_deletion(control_plane):
    async with control_plane.client() as c:
        await c.create(CONFIGMAPS, {"apiVersion": "v1", "kind": "ConfigMap",
                                    "metadata": {"name": "held", "finalizers": ["example.com/hold"]}}, namespace="default")
        await c.delete(CONFIGMAPS, "held", namespace="default")
        obj = await c.get(CONFIGMAPS, "held", namespace="default")
        assert obj["metadata"]["deletionTimestamp"] and obj["metadata"]["deletionGracePeriodSeconds"] == 0
        with pytest.raises(errors.Invalid) as ei:  # ValidateNoNewFinalizers: 422, Go's words
            await c.patch(CONFIGMAPS, "held", {"metadata": {"finalizers": ["example.com/hold", "new"]}}, namespace="default")
        assert ei.value.message == (
            'ConfigMap "held" is invalid: metadata.finalizers: Forbidden: no new finalizers can be '
            'added if the object is being deleted, found new finalizers []string{"new"}')
        await c.patch(CONFIGMAPS, "held", {"metadata": {"finalizers": None}}, namespace="default")
        with pytest.raises(errors.NotFound):
            await c.get(CONFIGMAPS, "held", namespace="default")


async def test_propagation_policies_add_finalizers(control_plane):
    async with control_plane.client() as c:
        for name, policy, fin in (("o", "Orphan", "orphan"), ("f", "Foreground", "foregroundDeletion")):
            await c.create(CONFIGMAPS, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}}, namespace="default")
            await c.delete(CONFIGMAPS, name, namespace="default", propagation_policy=policy)
            obj = await c.get(CONFIGMAPS, name, namespace="default")
            assert obj["metadata"]["finalizers"] == [fin]
        await c.create(CONFIGMAPS, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "b"}}, namespace="default")
        await c.delete(CONFIGMAPS, "b", namespace="default", propagation_policy="Background")
        with pytest.raises(errors.NotFound):
            await c.get(CONFIGMAPS, "b", namespace="default")


async def test_graceful_pod_deletion_and_binding(control_plane):
    async with control_plane.client() as c:
        await c.create(NODES, {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}})
        await c.create(PODS, pod("unbound"), namespace="default")
        await c.delete(PODS, "unbound", namespace="default")  # never scheduled: gone at once
        with pytest.raises(errors.NotFound):
            await c.get(PODS, "unbound", namespace="default")
        await c.create(PODS, pod("p", terminationGracePeriodSeconds=20), namespace="default")
        await c.create(PODS, {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "p"},
                              "target": {"apiVersion": "v1", "kind": "Node", "name": "n1"}},
                       namespace="default", subresource="binding", name="p")
        bound = await c.get(PODS, "p", namespace="default")
        assert bound["spec"]["nodeName"] == "n1"
        assert any(cd["type"] == "PodScheduled" and cd["status"] == "True" for cd in bound["status"]["conditions"])
        with pytest.raises(errors.Conflict):
            await c.create(PODS, {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "p"},
                                  "target": {"kind": "Node", "name": "n2"}}, namespace="default", subresource="binding", name="p")
        await c.delete(PODS, "p", namespace="default")
        terminating = await c.get(PODS, "p", namespace="default")
        assert terminating["metadata"]["deletionGracePeriodSeconds"] == 20
        await c.delete(PODS, "p", namespace="default", grace_period_seconds=0)  # what a kubelet does
        with pytest.raises(errors.NotFound):
            await c.get(PODS, "p", namespace="default")


async def test_status_subresource_and_generation(control_plane):
    async with control_plane.client() as c:
        dep = await c.create(DEPLOYMENTS, {
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
            "spec": {"selector": {"matchLabels": {"a": "b"}},
                     "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "x"}]}}}},
            namespace="default")
        assert dep["metadata"]["generation"] == 1 and dep["spec"]["replicas"] == 1
        # status written through the main resource is ignored
        dep["status"] = {"replicas": 7}
        dep = await c.update(DEPLOYMENTS, dep)
        assert "replicas" not in dep.get("status", {}) and dep["metadata"]["generation"] == 1
        # through /status it sticks, and spec changes there are ignored
        dep["status"] = {"replicas": 7}
        dep["spec"]["replicas"] = 9
        dep = await c.update(DEPLOYMENTS, dep, subresource="status")
        assert dep["status"]["replicas"] == 7 and dep["spec"]["replicas"] == 1
        # a metadata-only change keeps the generation, a spec change bumps it
        dep = await c.patch(DEPLOYMENTS, "d", {"metadata": {"labels": {"x": "y"}}}, namespace="default")
        assert dep["metadata"]["generation"] == 1
        dep = await c.patch(DEPLOYMENTS, "d", {"spec": {"replicas": 3}}, namespace="default")
        assert dep["metadata"]["generation"] == 2
        # a no-op update is not a write
        same = await c.update(DEPLOYMENTS, dep)
        assert same["metadata"]["resourceVersion"] == dep["metadata"]["resourceVersion"]


async def test_system_namespaces_cannot_be_deleted(control_plane):
    async with control_plane.client() as c:
        with pytest.raises(errors.Forbidden):
            await c.delete(NAMESPACES, "kube-system")


async def test_health_version_metrics(control_plane):
    async with control_plane.client() as c:
        assert await c.request("GET", "/readyz", raw=True) == b"ok"
        verbose = (await c.request("GET", "/livez", params={"verbose": "1"}, raw=True)).decode()
        assert "[+]ping ok" in verbose and "livez check passed" in verbose
        assert (await c.request("GET", "/version"))["major"] == "1"
        await c.list(CONFIGMAPS, namespace="default")
        metrics = (await c.request("GET", "/metrics", raw=True)).decode()
        assert 'apiserver_request_total{code="200",group="",resource="configmaps",subresource="",verb="list"}' in metrics
        assert "apiserver_request_duration_seconds_bucket" in metrics and "etcd_current_revision" in metrics


def test_vkube_serve_writes_kubeconfig_and_persists(tmp_path: Path):
    from tests.conftest import kubectl

    data = tmp_path / "serve"

    def start() -> subprocess.Popen[bytes]:
        proc = subprocess.Popen([sys.executable, "-m", "vkube", "serve", "--data-dir", str(data), "--port", "0",
                                 "--no-controllers"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        for _ in range(1200):  # 60 s: a loaded CI machine starts it slowly
            if (data / "ready").exists():
                return proc
            if proc.poll() is not None:
                raise AssertionError(proc.stderr.read().decode() if proc.stderr else "serve exited")
            import time
            time.sleep(0.05)
        proc.kill()
        raise AssertionError("vkube serve did not become ready")

    proc = start()
    try:
        kubectl(data / "kubeconfig", "apply", "-f", "-", input='{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"kept","namespace":"default"}}')
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    proc = start()
    try:
        out = kubectl(data / "kubeconfig", "get", "cm", "kept", "-o", "name").stdout.strip()
        assert out == "configmap/kept"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
    assert os.path.exists(data / "kubeconfig")


async def test_token_request(control_plane):
    from vkube.client import Client, Resource
    from vkube.client.resources import SERVICEACCOUNTS
    from vkube.pki import client_context
    from vkube.pki.tokens import peek

    async with control_plane.client() as c:
        sa = await c.create(SERVICEACCOUNTS, {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "robot"}},
                            namespace="default")
        tr = await c.create(SERVICEACCOUNTS, {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                                              "spec": {"expirationSeconds": 3600}},
                            namespace="default", subresource="token", name="robot")
        _, claims = peek(tr["status"]["token"])
        assert claims is not None and claims["sub"] == "system:serviceaccount:default:robot"
        assert claims["kubernetes.io"]["serviceaccount"]["uid"] == sa["metadata"]["uid"]
        with pytest.raises(errors.Invalid):
            await c.create(SERVICEACCOUNTS, {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                                             "spec": {"expirationSeconds": 5}}, namespace="default", subresource="token", name="robot")
        with pytest.raises(errors.NotFound):
            await c.create(SERVICEACCOUNTS, {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {}},
                           namespace="default", subresource="token", name="nobody")
    whoami = Resource("authentication.k8s.io", "v1", "selfsubjectreviews", namespaced=False)
    async with Client(control_plane.url, token=tr["status"]["token"],
                      ssl=client_context(control_plane.cp.pki.ca_pem)) as robot:
        review = await robot.create(whoami, {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"})
    assert review["status"]["userInfo"]["username"] == "system:serviceaccount:default:robot"


async def test_write_with_another_uid_conflicts(control_plane):
    async with control_plane.client() as c:
        cm = await c.create(CONFIGMAPS, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "u"}}, namespace="default")
        with pytest.raises(errors.Conflict):
            await c.patch(CONFIGMAPS, "u", {"metadata": {"uid": "00000000-0000-0000-0000-000000000000"}, "data": {"a": "b"}},
                          namespace="default")
        cm["metadata"]["uid"] = "11111111-0000-0000-0000-000000000000"
        with pytest.raises(errors.Conflict):
            await c.update(CONFIGMAPS, cm)
        assert "data" not in await c.get(CONFIGMAPS, "u", namespace="default")


async def test_concurrent_patches_all_land(control_plane):
    """PATCH re-reads and re-applies when another write wins the race: no lost update, no 409."""
    async with control_plane.client() as c:
        await c.create(CONFIGMAPS, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "race"}}, namespace="default")
        await asyncio.gather(*(c.patch(CONFIGMAPS, "race", {"metadata": {"labels": {f"k{i}": "v"}}}, namespace="default")
                               for i in range(30)))
        labels = (await c.get(CONFIGMAPS, "race", namespace="default"))["metadata"]["labels"]
        assert labels == {f"k{i}": "v" for i in range(30)}


async def test_a_quiet_watch_ends_when_its_client_leaves(control_plane):
    """A watch without bookmarks on a kind nobody writes never sends a byte; when its client
    closes the connection the server must still end it (its task, queue and store watcher),
    not keep it until its timeout half an hour later. In-process watches are not ended."""
    async def open_watches() -> float:
        async with control_plane.client() as c:
            text = (await c.request("GET", "/metrics", raw=True)).decode()
        for line in text.splitlines():
            if line.startswith('apiserver_longrunning_requests{resource="limitranges"}'):
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    before = await open_watches()
    async with control_plane.session() as s:
        resp = await s.get(f"{control_plane.url}/api/v1/namespaces/default/limitranges",
                           params={"watch": "true", "timeoutSeconds": "1800"})
        assert resp.status == 200
        deadline = asyncio.get_running_loop().time() + 60
        while await open_watches() < before + 1:
            assert asyncio.get_running_loop().time() < deadline, "the watch never opened"
            await asyncio.sleep(0.1)
        resp.close()  # the client goes away without a word
    deadline = asyncio.get_running_loop().time() + 120
    while await open_watches() > before:
        assert asyncio.get_running_loop().time() < deadline, "the server kept the abandoned watch"
        await asyncio.sleep(0.2)


async def test_an_idle_watchs_bookmarks_follow_the_store(control_plane):
    """A watch on a kind nobody writes gets bookmarks at the store's revision, not at the
    version it started from: as kube-apiserver's watch cache bookmarks (KEP-956), so an idle
    informer's version moves on and compaction does not expire it into a relist."""
    import json

    async with control_plane.client() as c:
        start = int((await c.list(CONFIGMAPS, namespace="default"))["metadata"]["resourceVersion"])
        async with control_plane.session() as s:
            resp = await s.get(f"{control_plane.url}/apis/batch/v1/cronjobs",
                               params={"watch": "1", "allowWatchBookmarks": "true",
                                       "resourceVersion": str(start), "timeoutSeconds": "120"})
            assert resp.status == 200
            made = await c.create(CONFIGMAPS, {"metadata": {"name": "elsewhere"}}, namespace="default")
            written = int(made["metadata"]["resourceVersion"])
            assert written > start
            seen: list[int] = []
            deadline = asyncio.get_running_loop().time() + 90
            while not seen or seen[-1] < written:
                assert asyncio.get_running_loop().time() < deadline, seen
                line = await asyncio.wait_for(resp.content.readline(), 90)
                event = json.loads(line)
                assert event["type"] == "BOOKMARK", event  # nothing of its kind changed
                seen.append(int(event["object"]["metadata"]["resourceVersion"]))
            assert seen == sorted(seen) and seen[-1] >= written
            resp.close()
