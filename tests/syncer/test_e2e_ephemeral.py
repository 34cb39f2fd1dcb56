"""Ephemeral containers (kubectl debug) between two real control planes: a virtual pod's new
ephemeral container reaches its host pod through the host's pods/ephemeralcontainers,
rewritten as every container is; its status comes back up."""

from __future__ import annotations

from vkube.api.errors import NotFound
from vkube.client.resources import CONFIGMAPS, EVENTS, NODES, PODS
from vkube.syncer import load_values

from .conftest import HOST_NS, eventually, start_syncer, stop_syncer
from .test_e2e_pods import HPOD, make_running, pod

RUNNING = {"running": {"startedAt": "2026-01-01T00:00:01Z"}}


async def test_ephemeral_container_goes_down_stripped_and_its_status_comes_up(planes):
    vcp, hcp = planes
    pair = await start_syncer(vcp, hcp, load_values("sync: {pods: {hostAccess: strip}}"),
                              kube_service_host="10.0.0.1", kube_service_port=6443)
    v, h = pair.virtual, pair.host
    try:
        await h.create(NODES, {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-1"}})
        await v.create(CONFIGMAPS, {"apiVersion": "v1", "kind": "ConfigMap",
                                    "metadata": {"name": "cfg", "namespace": "default"},
                                    "data": {"k": "v"}})
        await v.create(PODS, pod() | {"metadata": {"name": "web", "namespace": "default"}},
                       namespace="default")
        hpod_name = HPOD.replace("-x-demo-", "-x-default-")

        async def host_pod():
            try:
                return await h.get(PODS, hpod_name, namespace=HOST_NS)
            except NotFound as e:
                raise AssertionError("no host pod yet") from e
        first = await eventually(host_pod)
        assert not first["spec"].get("ephemeralContainers")
        await make_running(pair, hpod_name)

        dbg = {"name": "dbg", "image": "busybox", "targetContainerName": "c",
               "command": ["sh", "-c", "echo $K"],
               "env": [{"name": "K", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "k"}}}],
               "securityContext": {"capabilities": {"add": ["SYS_PTRACE", "CHOWN"]}}}
        await v.patch(PODS, "web", {"spec": {"ephemeralContainers": [dbg]}}, type="strategic",
                      namespace="default", subresource="ephemeralcontainers")

        async def added():
            hp = await host_pod()
            ecs = hp["spec"].get("ephemeralContainers") or []
            assert [e["name"] for e in ecs] == ["dbg"], ecs
            return hp
        hp = await eventually(added)
        ec = hp["spec"]["ephemeralContainers"][0]
        host_cm = hp["spec"]["containers"][0]["envFrom"][0]["configMapRef"]["name"]
        assert host_cm != "cfg"  # the tenant's ConfigMap under its host name, for both
        k = next(e for e in ec["env"] if e["name"] == "K")
        assert k["valueFrom"]["configMapKeyRef"]["name"] == host_cm
        assert ec["targetContainerName"] == "c"
        # the in-cluster API's variables, as every container of the host pod gets them
        regular = {e["name"]: e.get("value") for e in hp["spec"]["containers"][0]["env"]}
        mine = {e["name"]: e.get("value") for e in ec["env"]}
        assert mine["KUBERNETES_SERVICE_HOST"] == regular["KUBERNETES_SERVICE_HOST"] == "10.0.0.1"
        # hostAccess: strip drops what baseline forbids (SYS_PTRACE), keeps the rest
        assert ec["securityContext"]["capabilities"]["add"] == ["CHOWN"]

        async def told():  # and says so, naming the field in the tenant's pod
            events = (await v.list(EVENTS, namespace="default"))["items"]
            msgs = [e["message"] for e in events if e.get("reason") == "HostAccessStripped"]
            assert any("spec.ephemeralContainers[0].securityContext.capabilities.add SYS_PTRACE"
                       in m for m in msgs), msgs
        await eventually(told)

        hp["status"]["ephemeralContainerStatuses"] = [{
            "name": "dbg", "image": "busybox", "imageID": "", "ready": False, "restartCount": 0,
            "state": RUNNING}]
        await h.update(PODS, hp, subresource="status")

        async def up():
            vp = await v.get(PODS, "web", namespace="default")
            st = vp["status"].get("ephemeralContainerStatuses") or []
            assert [s["state"] for s in st] == [RUNNING], st
        await eventually(up)
    finally:
        await stop_syncer(pair)


def test_a_gone_host_pods_debug_containers_are_not_shown_running():
    """After pause/resume the virtual pod's status is reset until the host pod runs again
    (vkube.syncer.podgone): its ephemeral containers too, not only the regular ones."""
    from vkube.syncer.podgone import not_running

    status = {"phase": "Running", "containerStatuses": [{"name": "c", "state": RUNNING}],
              "ephemeralContainerStatuses": [{"name": "dbg", "state": RUNNING,
                                              "containerID": "containerd://1"}]}
    new = not_running(status, {"spec": {"containers": [{"name": "c"}]}}, now="2026-01-01T00:00:02Z")
    [dbg] = new["ephemeralContainerStatuses"]
    assert dbg["state"] == {"waiting": {"reason": "ContainerCreating"}}
    assert (dbg["name"], dbg["ready"], dbg["started"]) == ("dbg", False, False)


async def test_a_refused_debug_container_never_keeps_its_bare_pod_from_the_host(planes):
    """kubectl debug's default profile (SYS_PTRACE) is refused under hostAccess: reject; it can
    never be removed, and the pod made again after a pause must still reach the host."""
    vcp, hcp = planes
    pair = await start_syncer(vcp, hcp, load_values("sync: {}"))
    v, h = pair.virtual, pair.host
    hpod_name = HPOD.replace("-x-demo-", "-x-default-")

    async def host_pod():
        try:
            return await h.get(PODS, hpod_name, namespace=HOST_NS)
        except NotFound as e:
            raise AssertionError("no host pod yet") from e
    try:
        await h.create(NODES, {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-1"}})
        await v.create(CONFIGMAPS, {"apiVersion": "v1", "kind": "ConfigMap",
                                    "metadata": {"name": "cfg", "namespace": "default"},
                                    "data": {"k": "v"}})
        created = await v.create(PODS, pod() | {"metadata": {"name": "web", "namespace": "default"}},
                                 namespace="default")
        await eventually(host_pod)
        await make_running(pair, hpod_name)
        dbg = {"name": "dbg", "image": "busybox", "targetContainerName": "c",
               "securityContext": {"capabilities": {"add": ["SYS_PTRACE"]}}}
        await v.patch(PODS, "web", {"spec": {"ephemeralContainers": [dbg]}}, type="strategic",
                      namespace="default", subresource="ephemeralcontainers")

        async def refused():
            vp = await v.get(PODS, "web", namespace="default")
            st = vp["status"].get("ephemeralContainerStatuses") or []
            assert [s["state"]["terminated"]["reason"] for s in st] == ["SyncRejected"], st
        await eventually(refused)
    finally:
        await stop_syncer(pair)
    # paused: the host pod goes while no syncer runs; the next syncer makes it again
    await h.delete(PODS, hpod_name, namespace=HOST_NS, grace_period_seconds=0)
    pair = await start_syncer(vcp, hcp, load_values("sync: {}"))
    try:
        again = await eventually(host_pod, attempts=400)
        assert not again["spec"].get("ephemeralContainers")
        vp = await v.get(PODS, "web", namespace="default")
        assert vp["metadata"]["uid"] == created["metadata"]["uid"]
    finally:
        await stop_syncer(pair)
