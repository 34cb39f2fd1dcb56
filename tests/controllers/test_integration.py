"""The built-in controllers against a real control plane (API server + SQLite store)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from vkube.api import errors
from vkube.client.resources import (CONFIGMAPS, ENDPOINTS, ENDPOINTSLICES, NAMESPACES, PDBS,
                                    PODS, PVCS, SERVICEACCOUNTS, SERVICES)
from vkube.controllers.registry import default_controllers
from vkube.controllers.runtime import ControllerManager


async def eventually(check: Callable[[], Awaitable[Any]], timeout: float = 15.0) -> Any:
    """Retry ``check`` until it returns truthy without raising; the last error explains."""
    last: BaseException | None = None
    async with asyncio.timeout(timeout):
        while True:
            try:
                got = await check()
                if got:
                    return got
                last = AssertionError(f"got {got!r}")
            except (AssertionError, KeyError, ValueError, errors.StatusError) as e:  # not yet
                last = e
            try:
                await asyncio.sleep(0.05)
            except asyncio.CancelledError:
                raise AssertionError(f"timed out; last: {last!r}") from None


@pytest.fixture
async def cluster(control_plane):
    client = control_plane.client()
    mgr = ControllerManager(client, identity="test-cm", retry_period=0.2, root_ca_pem="PEM")
    for cls in default_controllers():
        if cls.__module__.startswith("vkube.controllers.") and "workloads" not in cls.__module__:
            mgr.add(cls)
    task = asyncio.create_task(mgr.run())
    try:
        await asyncio.wait_for(mgr.started.wait(), 15)
        yield client
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await client.close()


async def make_ns(client, name: str) -> None:
    await client.create(NAMESPACES, {"apiVersion": "v1", "kind": "Namespace",
                                     "metadata": {"name": name}})


async def make_pod(client, ns: str, name: str, ip: str, *, ready: bool = True,
                   labels: dict | None = None, ports: list | None = None,
                   volumes: list | None = None) -> dict:
    pod = await client.create(PODS, {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "labels": labels or {"app": "web"}},
        "spec": {"containers": [{"name": "c", "image": "nginx", "ports": ports or []}],
                 "volumes": volumes or [], "nodeName": "node-1"}})
    pod["status"] = {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
                     "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}
    return await client.update(PODS, pod, subresource="status")


async def test_namespace_defaults(cluster) -> None:
    await make_ns(cluster, "team")

    async def defaults() -> bool:
        await cluster.get(SERVICEACCOUNTS, "default", namespace="team")
        cm = await cluster.get(CONFIGMAPS, "kube-root-ca.crt", namespace="team")
        return cm["data"] == {"ca.crt": "PEM"}

    await eventually(defaults)
    await cluster.delete(SERVICEACCOUNTS, "default", namespace="team")
    await eventually(lambda: cluster.get(SERVICEACCOUNTS, "default", namespace="team"))


async def test_endpoints_and_slices(cluster) -> None:
    await make_ns(cluster, "web")
    await cluster.create(SERVICES, {
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "svc", "namespace": "web"},
        "spec": {"selector": {"app": "web"},
                 "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}})
    ports = [{"name": "http", "containerPort": 8080}]
    await make_pod(cluster, "web", "a", "10.0.0.1", ports=ports)
    await make_pod(cluster, "web", "b", "10.0.0.2", ports=ports, ready=False)
    await make_pod(cluster, "web", "other", "10.0.0.3", labels={"app": "db"}, ports=ports)

    async def endpoints() -> bool:
        ep = await cluster.get(ENDPOINTS, "svc", namespace="web")
        (sub,) = ep["subsets"]
        assert [a["ip"] for a in sub["addresses"]] == ["10.0.0.1"]
        assert [a["ip"] for a in sub["notReadyAddresses"]] == ["10.0.0.2"]
        assert sub["ports"] == [{"name": "http", "port": 8080, "protocol": "TCP"}]
        assert sub["addresses"][0]["targetRef"]["name"] == "a"
        return True

    await eventually(endpoints)

    async def slices() -> bool:
        lst = await cluster.list(ENDPOINTSLICES, namespace="web",
                                 label_selector="kubernetes.io/service-name=svc")
        (sl,) = lst["items"]
        assert sl["metadata"]["labels"]["endpointslice.kubernetes.io/managed-by"] == \
            "endpointslice-controller.k8s.io"
        assert sl["ports"] == [{"name": "http", "port": 8080, "protocol": "TCP"}]
        conds = {e["addresses"][0]: e["conditions"]["ready"] for e in sl["endpoints"]}
        assert conds == {"10.0.0.1": True, "10.0.0.2": False}
        assert sl["metadata"]["ownerReferences"][0]["kind"] == "Service"
        return True

    await eventually(slices)
    await cluster.delete(PODS, "a", namespace="web", grace_period_seconds=0)

    async def gone() -> bool:
        ep = await cluster.get(ENDPOINTS, "svc", namespace="web")
        return "addresses" not in ep["subsets"][0]

    await eventually(gone)


async def test_garbage_collection(cluster) -> None:
    owner = await cluster.create(CONFIGMAPS, {"apiVersion": "v1", "kind": "ConfigMap",
                                              "metadata": {"name": "owner", "namespace": "default"}})

    def ref(o: dict, block: bool = False) -> dict:
        return {"apiVersion": "v1", "kind": "ConfigMap", "name": o["metadata"]["name"],
                "uid": o["metadata"]["uid"], "blockOwnerDeletion": block}

    async def dep(name: str, *owners: dict) -> None:
        await cluster.create(CONFIGMAPS, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {
            "name": name, "namespace": "default", "ownerReferences": list(owners)}})

    await dep("dep", ref(owner))
    await cluster.delete(CONFIGMAPS, "owner", namespace="default")

    async def absent(name: str) -> bool:
        try:
            await cluster.get(CONFIGMAPS, name, namespace="default")
        except errors.NotFound:
            return True
        return False

    await eventually(lambda: absent("dep"))

    # orphan: dependents survive, without the reference
    owner2 = await cluster.create(CONFIGMAPS, {"apiVersion": "v1", "kind": "ConfigMap",
                                               "metadata": {"name": "owner2", "namespace": "default"}})
    await dep("kept", ref(owner2))
    await asyncio.sleep(0.2)
    await cluster.delete(CONFIGMAPS, "owner2", namespace="default", propagation_policy="Orphan")
    await eventually(lambda: absent("owner2"))
    kept = await cluster.get(CONFIGMAPS, "kept", namespace="default")
    assert not kept["metadata"].get("ownerReferences")

    # foreground: the owner waits for its blocking dependents
    owner3 = await cluster.create(CONFIGMAPS, {"apiVersion": "v1", "kind": "ConfigMap",
                                               "metadata": {"name": "owner3", "namespace": "default"}})
    await dep("blocker", ref(owner3, block=True))
    await asyncio.sleep(0.2)
    await cluster.delete(CONFIGMAPS, "owner3", namespace="default", propagation_policy="Foreground")
    await eventually(lambda: absent("blocker"))
    await eventually(lambda: absent("owner3"))


async def test_namespace_deletion_empties_namespace(cluster) -> None:
    await make_ns(cluster, "doomed")
    await cluster.create(CONFIGMAPS, {"apiVersion": "v1", "kind": "ConfigMap",
                                      "metadata": {"name": "x", "namespace": "doomed"}})
    await make_pod(cluster, "doomed", "p", "10.0.1.1")
    await cluster.delete(NAMESPACES, "doomed")

    async def emptied() -> bool:
        # the pod sits on a node, so it waits for its kubelet (none here) as in Kubernetes
        assert (await cluster.list(CONFIGMAPS, namespace="doomed"))["items"] == []
        (pod,) = (await cluster.list(PODS, namespace="doomed"))["items"]
        assert pod["metadata"]["deletionTimestamp"]
        ns = await cluster.get(NAMESPACES, "doomed")
        conds = {c["type"]: c for c in ns["status"].get("conditions") or []}
        assert ns["status"]["phase"] == "Terminating"
        assert conds["NamespaceContentRemaining"]["status"] == "True"
        assert conds["NamespaceContentRemaining"]["message"] == \
            "Some resources are remaining: pods has 1 resource instances"
        assert conds["NamespaceDeletionContentFailure"]["status"] == "False"
        return True

    await eventually(emptied, timeout=30)


async def test_namespace_deletion_removes_namespace(cluster) -> None:
    await make_ns(cluster, "doomed2")
    await cluster.create(CONFIGMAPS, {"apiVersion": "v1", "kind": "ConfigMap",
                                      "metadata": {"name": "x", "namespace": "doomed2"}})
    await cluster.delete(NAMESPACES, "doomed2")

    async def ns_gone() -> bool:
        try:
            await cluster.get(NAMESPACES, "doomed2")
        except errors.NotFound:
            return True
        return False

    await eventually(ns_gone, timeout=60)


async def test_pvc_protection_and_pdb(cluster) -> None:
    await make_ns(cluster, "data")
    await cluster.create(PVCS, {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                                "metadata": {"name": "claim", "namespace": "data"},
                                "spec": {"accessModes": ["ReadWriteOnce"],
                                         "resources": {"requests": {"storage": "1Gi"}}}})

    async def protected() -> bool:
        pvc = await cluster.get(PVCS, "claim", namespace="data")
        return "kubernetes.io/pvc-protection" in (pvc["metadata"].get("finalizers") or [])

    await eventually(protected)
    await make_pod(cluster, "data", "user", "10.0.2.1",
                   volumes=[{"name": "v", "persistentVolumeClaim": {"claimName": "claim"}}])
    await make_pod(cluster, "data", "user2", "10.0.2.2", ready=False)
    await cluster.create(PDBS, {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
                                "metadata": {"name": "pdb", "namespace": "data"},
                                "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "web"}}}})

    async def pdb_status() -> bool:
        st = (await cluster.get(PDBS, "pdb", namespace="data")).get("status") or {}
        assert (st.get("expectedPods"), st.get("currentHealthy"), st.get("desiredHealthy"),
                st.get("disruptionsAllowed")) == (2, 1, 1, 0)
        return True

    await eventually(pdb_status)
    await cluster.delete(PVCS, "claim", namespace="data")
    await asyncio.sleep(0.3)
    pvc = await cluster.get(PVCS, "claim", namespace="data")  # in use: held by the finalizer
    assert pvc["metadata"].get("deletionTimestamp")
    await cluster.delete(PODS, "user", namespace="data", grace_period_seconds=0)

    async def pvc_gone() -> bool:
        try:
            await cluster.get(PVCS, "claim", namespace="data")
        except errors.NotFound:
            return True
        return False

    await eventually(pvc_gone)


async def test_dangling_owner_reference_is_removed_and_slices_follow_service(cluster) -> None:
    a = await cluster.create(CONFIGMAPS, {"apiVersion": "v1", "kind": "ConfigMap",
                                          "metadata": {"name": "own-a", "namespace": "default"}})
    b = await cluster.create(CONFIGMAPS, {"apiVersion": "v1", "kind": "ConfigMap",
                                          "metadata": {"name": "own-b", "namespace": "default"}})
    refs = [{"apiVersion": "v1", "kind": "ConfigMap", "name": o["metadata"]["name"],
             "uid": o["metadata"]["uid"]} for o in (a, b)]
    await cluster.create(CONFIGMAPS, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {
        "name": "shared", "namespace": "default", "ownerReferences": refs}})
    await cluster.delete(CONFIGMAPS, "own-a", namespace="default")

    async def one_owner_left() -> bool:
        cm = await cluster.get(CONFIGMAPS, "shared", namespace="default")
        return [r["name"] for r in cm["metadata"].get("ownerReferences") or []] == ["own-b"]

    await eventually(one_owner_left)

    await cluster.create(SERVICES, {
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "s2", "namespace": "default"},
        "spec": {"selector": {"app": "none"}, "ports": [{"port": 80}]}})

    # one (empty) slice for a service without pods, removed with the service by the GC
    await eventually(lambda: slice_count_is(cluster, "s2", 1))
    await cluster.delete(SERVICES, "s2", namespace="default")
    await eventually(lambda: slice_count_is(cluster, "s2", 0))


async def slice_count_is(cluster, svc: str, n: int) -> bool:
    lst = await cluster.list(ENDPOINTSLICES, namespace="default",
                             label_selector=f"kubernetes.io/service-name={svc}")
    return len(lst["items"]) == n
