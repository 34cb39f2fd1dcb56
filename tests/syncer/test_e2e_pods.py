"""Pods and what they use, synced between two real control planes."""

from __future__ import annotations

import base64

from vkube.api import errors
from vkube.client.resources import CONFIGMAPS, NODES, PODS, SECRETS, SERVICEACCOUNTS

from .conftest import HOST_NS, VC, Pair, eventually

HPOD = f"web-x-demo-x-{VC}"


def pod(name: str = "web", **spec_extra: object) -> dict:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "demo", "labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": "nginx",
                                     "envFrom": [{"configMapRef": {"name": "cfg"}}]}],
                     **spec_extra}}


async def make_running(pair: Pair, hname: str = HPOD, node: str = "node-1") -> None:
    """Play the host's scheduler and kubelet."""
    await pair.host.create(PODS, {"apiVersion": "v1", "kind": "Binding",
                                  "metadata": {"name": hname},
                                  "target": {"kind": "Node", "name": node}},
                           namespace=HOST_NS, subresource="binding", name=hname)
    hp = await pair.host.get(PODS, hname, namespace=HOST_NS)
    hp["status"] = {**hp.get("status", {}), "phase": "Running", "podIP": "10.244.0.7",
                    "podIPs": [{"ip": "10.244.0.7"}], "hostIP": "172.18.0.2",
                    "startTime": "2026-01-01T00:00:00Z",
                    "containerStatuses": [{"name": "c", "ready": True, "restartCount": 0,
                                           "image": "nginx", "imageID": "", "started": True,
                                           "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}}}]}
    await pair.host.update(PODS, hp, subresource="status")


async def test_pod_goes_down_with_its_configmap_and_status_comes_up(synced: Pair):
    v, h = synced.virtual, synced.host
    await v.create(CONFIGMAPS, {"metadata": {"name": "cfg", "namespace": "demo"},
                                "data": {"K": "v"}}, namespace="demo")
    await v.create(CONFIGMAPS, {"metadata": {"name": "unused", "namespace": "demo"},
                                "data": {"K": "v"}}, namespace="demo")
    await v.create(PODS, pod(), namespace="demo")

    async def host_pod():
        return await h.get(PODS, HPOD, namespace=HOST_NS)
    hp = await eventually(host_pod_exists(h))
    assert hp["metadata"]["labels"]["vkube.io/l-app"] == "web"
    assert hp["metadata"]["labels"]["vkube.io/n-team"] == "a"
    assert hp["spec"]["serviceAccountName"] == f"vc-workload-{VC}"
    assert hp["spec"]["containers"][0]["envFrom"] == [
        {"configMapRef": {"name": f"cfg-x-demo-x-{VC}"}}]
    cm = await h.get(CONFIGMAPS, f"cfg-x-demo-x-{VC}", namespace=HOST_NS)
    assert cm["data"] == {"K": "v"}
    with_err = None
    try:
        await h.get(CONFIGMAPS, f"unused-x-demo-x-{VC}", namespace=HOST_NS)
    except errors.NotFound as e:
        with_err = e
    assert with_err is not None, "a ConfigMap no pod uses stays in the virtual cluster"
    await h.get(SERVICEACCOUNTS, f"vc-workload-{VC}", namespace=HOST_NS)
    token = await h.get(SECRETS, f"default-x-demo-x-{VC}-token", namespace=HOST_NS)
    assert base64.b64decode(token["data"]["namespace"]).decode() == "demo"

    await make_running(synced)

    async def virtual_running():
        vp = await v.get(PODS, "web", namespace="demo")
        assert vp["spec"].get("nodeName") == "node-1"
        assert vp["status"]["phase"] == "Running"
        assert vp["status"]["podIP"] == "10.244.0.7"
        assert vp["status"]["containerStatuses"][0]["ready"] is True
        return vp
    await eventually(virtual_running)
    node = await v.get(NODES, "node-1")
    assert node["metadata"]["labels"]["vkube.io/fake-node"] == "true"
    assert "disk" not in node["metadata"]["labels"], "fake nodes show no host details"
    assert node["status"]["addresses"][0] == {"type": "InternalIP", "address": "127.0.0.1"}
    assert node["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"] == \
        synced.syncer.kubelet_port

    # a ConfigMap edit reaches the host
    cur = await v.get(CONFIGMAPS, "cfg", namespace="demo")
    cur["data"] = {"K": "v2"}
    await v.update(CONFIGMAPS, cur)

    async def cm_updated():
        got = await h.get(CONFIGMAPS, f"cfg-x-demo-x-{VC}", namespace=HOST_NS)
        assert got["data"] == {"K": "v2"}
    await eventually(cm_updated)

    # deleting the virtual pod deletes the host pod, then the virtual pod goes away
    await v.delete(PODS, "web", namespace="demo", grace_period_seconds=30)

    async def both_gone():
        for c, name, ns in ((h, HPOD, HOST_NS), (v, "web", "demo")):
            try:
                got = await c.get(PODS, name, namespace=ns)
            except errors.NotFound:
                continue
            if c is h and got["metadata"].get("deletionTimestamp"):
                # no kubelet here: finish the host pod's graceful deletion like one would
                await c.delete(PODS, name, namespace=ns, grace_period_seconds=0)
            raise AssertionError(f"{name} still there")
    await eventually(both_gone)

    async def cm_and_node_gone():
        for c, res, name, ns in ((h, CONFIGMAPS, f"cfg-x-demo-x-{VC}", HOST_NS),
                                 (v, NODES, "node-1", None)):
            try:
                await c.get(res, name, namespace=ns)
            except errors.NotFound:
                continue
            raise AssertionError(f"{name} still there")
    await eventually(cm_and_node_gone)


def host_pod_exists(h, name: str = HPOD):
    async def check():
        try:
            return await h.get(PODS, name, namespace=HOST_NS)
        except errors.NotFound as e:
            raise AssertionError("no host pod yet") from e
    return check


async def test_host_pod_deleted_by_someone_else_deletes_the_virtual_pod(synced: Pair):
    v, h = synced.virtual, synced.host
    await v.create(PODS, pod(**{}) | {"spec": {"containers": [{"name": "c", "image": "x"}]}},
                   namespace="demo")
    await eventually(host_pod_exists(h))
    await make_running(synced)

    async def bound():
        vp = await v.get(PODS, "web", namespace="demo")
        assert vp["status"].get("phase") == "Running"
    await eventually(bound)
    await h.delete(PODS, HPOD, namespace=HOST_NS, grace_period_seconds=0)

    async def virtual_gone():
        try:
            await v.get(PODS, "web", namespace="demo")
        except errors.NotFound:
            return
        raise AssertionError("virtual pod still there")
    await eventually(virtual_gone)


async def test_rejected_pod_is_not_synced(synced: Pair):
    v, h = synced.virtual, synced.host
    await v.create(PODS, {"apiVersion": "v1", "kind": "Pod",
                          "metadata": {"name": "hostnet", "namespace": "demo"},
                          "spec": {"hostNetwork": True,
                                   "containers": [{"name": "c", "image": "x"}]}},
                   namespace="demo")
    await v.create(PODS, pod("ok") | {"spec": {"containers": [{"name": "c", "image": "x"}]}},
                   namespace="demo")
    await eventually(host_pod_exists(h, f"ok-x-demo-x-{VC}"))
    try:
        await h.get(PODS, f"hostnet-x-demo-x-{VC}", namespace=HOST_NS)
        raise AssertionError("a hostNetwork pod reached the host")
    except errors.NotFound:
        pass


async def test_image_update_and_token_type_secret(synced: Pair):
    v, h = synced.virtual, synced.host
    await v.create(SECRETS, {"metadata": {"name": "sa-tok", "namespace": "demo", "annotations": {
        "kubernetes.io/service-account.name": "default"}},
        "type": "kubernetes.io/service-account-token", "data": {"token": "eA=="}},
        namespace="demo")
    await v.create(PODS, {"metadata": {"name": "web", "namespace": "demo"}, "spec": {
        "containers": [{"name": "c", "image": "nginx:1",
                        "env": [{"name": "T", "valueFrom": {"secretKeyRef": {
                            "name": "sa-tok", "key": "token"}}}]}]}}, namespace="demo")
    await eventually(host_pod_exists(h))
    sec = await h.get(SECRETS, f"sa-tok-x-demo-x-{VC}", namespace=HOST_NS)
    assert sec["type"] == "Opaque", "the host token controller must never fill it"
    assert not any(k.startswith("kubernetes.io/service-account")
                   for k in sec["metadata"].get("annotations", {}))

    vp = await v.get(PODS, "web", namespace="demo")
    vp["spec"]["containers"][0]["image"] = "nginx:2"
    await v.update(PODS, vp)

    async def image_down():
        hp = await h.get(PODS, HPOD, namespace=HOST_NS)
        assert hp["spec"]["containers"][0]["image"] == "nginx:2"
    await eventually(image_down)


async def test_recreated_virtual_pod_replaces_the_stale_host_pod(synced: Pair, planes):
    v, h = synced.virtual, synced.host
    spec = {"containers": [{"name": "c", "image": "x"}]}
    await v.create(PODS, {"metadata": {"name": "web", "namespace": "demo"}, "spec": spec},
                   namespace="demo")
    first = await eventually(host_pod_exists(h))
    await synced.syncer.stop()  # while the syncer is away, the pod is replaced
    await v.delete(PODS, "web", namespace="demo", grace_period_seconds=0)
    new = await v.create(PODS, {"metadata": {"name": "web", "namespace": "demo"},
                                "spec": spec}, namespace="demo")
    from .conftest import start_syncer
    pair = await start_syncer(*planes)
    try:
        async def replaced():
            hp = await host_pod_exists(pair.host)()
            assert hp["metadata"]["uid"] != first["metadata"]["uid"]
            assert hp["metadata"]["annotations"]["vkube.io/object-uid"] == new["metadata"]["uid"]
        await eventually(replaced)
    finally:
        from .conftest import stop_syncer
        await stop_syncer(pair)
