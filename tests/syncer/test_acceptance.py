"""Issue 6's acceptance scenario, as a user follows it: the real kubectl against a virtual
cluster (API server + controllers + syncer) whose pods run on the embedded host; the host is
inspected with our client, as a platform team would with theirs."""

from __future__ import annotations

import asyncio
import base64
import os
import re
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from vkube.api import errors
from vkube.apiserver.server import ControlPlane
from vkube.client import Client, Resource
from vkube.client.resources import (
    CONFIGMAPS,
    DEPLOYMENTS,
    NAMESPACES,
    NODES,
    PODS,
    REPLICASETS,
    SECRETS,
    SERVICES,
)
from vkube.controllers.registry import default_controllers
from vkube.controllers.runtime import ControllerManager
from vkube.host.runner import EmbeddedHost
from vkube.pki import client_context
from vkube.syncer import Syncer, load_values
from vkube.syncer.translate import (
    ANN_NAME,
    ANN_NAMESPACE,
    ANN_UID,
    LABEL_MANAGED_BY,
    LABEL_NAMESPACE,
)

from .conftest import eventually

KUBECTL = str(Path(sys.executable).parent / "kubectl")
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


@dataclass
class VCluster:
    """One virtual cluster as ``vkube serve`` composes it: API server, the default
    controllers, and a syncer to the host (which can be killed and restarted)."""

    name: str
    cp: ControlPlane
    host_cp: ControlPlane
    virtual: Client = field(init=False)
    syncer: Syncer | None = None
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _syncer_clients: list[Client] = field(default_factory=list)

    @property
    def host_namespace(self) -> str:
        return f"vkube-{self.name}"

    @property
    def kubeconfig(self) -> str:
        assert self.cp.data_dir is not None
        return str(self.cp.data_dir / "kubeconfig")

    async def start(self) -> None:
        await self.cp.start()
        self.virtual = Client(self.cp.url, ssl=self.cp.client_ssl())
        mgr = ControllerManager(Client(self.cp.url, ssl=self.cp.client_ssl(), user_agent="controllers"),
                                identity="test", leader_election=False)
        for ctrl in default_controllers():
            mgr.add(ctrl)
        self._tasks.append(asyncio.create_task(mgr.run()))
        await asyncio.wait_for(mgr.started.wait(), 30)
        self._mgr = mgr
        await self.start_syncer()

    async def start_syncer(self) -> None:
        v, h = Client(self.cp.url, ssl=self.cp.client_ssl(), user_agent="syncer"), Client(self.host_cp.url, ssl=self.host_cp.client_ssl(), user_agent="syncer")
        self._syncer_clients = [v, h]
        self.syncer = Syncer(name=self.name, virtual=v, host=h, virtual_pki=self.cp.pki,
                             host_namespace=self.host_namespace, values=load_values(""))
        self._syncer_task = asyncio.create_task(self.syncer.run())
        await asyncio.wait_for(self.syncer.wait_ready(), 30)

    async def kill_syncer(self) -> None:
        """Cancel the syncer wherever it is (mid-request included) and drop its clients."""
        assert self.syncer is not None
        await self.syncer.stop()
        for c in self._syncer_clients:
            await c.close()
        self.syncer = None

    async def stop(self) -> None:
        if self.syncer is not None:
            await self.kill_syncer()
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._mgr.client.close()
        await self.virtual.close()
        await self.cp.stop()

    async def kubectl(self, *args: str, check: bool = True) -> str:
        proc = await asyncio.create_subprocess_exec(
            KUBECTL, "--kubeconfig", self.kubeconfig, *args,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        if check:
            assert proc.returncode == 0, f"kubectl {' '.join(args)}: {err.decode()}"
        return out.decode()


@dataclass
class World:
    host_cp: ControlPlane
    host: Client
    embedded: EmbeddedHost
    tmp: Path
    clusters: list[VCluster] = field(default_factory=list)

    async def vcluster(self, name: str) -> VCluster:
        vc = VCluster(name, ControlPlane(data_dir=self.tmp / name, name=name,
                                         allocate_service_ips=False), self.host_cp)
        await vc.start()
        self.clusters.append(vc)
        return vc


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    hcp = ControlPlane(data_dir=tmp_path / "host", name="host")
    await hcp.start()
    embedded = EmbeddedHost(hcp.url, pki=hcp.pki, nodes=3, seed=6)
    await embedded.start()
    w = World(hcp, Client(hcp.url, ssl=hcp.client_ssl(), user_agent="platform-team"), embedded, tmp_path)
    try:
        yield w
    finally:
        for vc in w.clusters:
            await vc.stop()
        await embedded.stop()
        await w.host.close()
        await hcp.stop()


async def running_pods(c: Client, namespace: str, selector: str, count: int) -> list[dict]:
    pods = (await c.list(PODS, namespace=namespace, label_selector=selector))["items"]
    live = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
    assert len(live) == count, f"{len(live)} pods, want {count}"
    assert all(p["status"].get("phase") == "Running" for p in live), \
        [p["status"].get("phase") for p in live]
    return live


async def get(c: Client, res: Any, name: str, namespace: str | None = None) -> dict:
    """``c.get`` for ``eventually``: NotFound is a failed check, not an error."""
    try:
        return await c.get(res, name, namespace=namespace)
    except errors.NotFound as e:
        raise AssertionError(str(e)) from None


async def not_found(c: Client, res: Any, name: str, namespace: str | None = None) -> bool:
    try:
        await c.get(res, name, namespace=namespace)
    except errors.NotFound:
        return True
    return False


# -- the scenario ------------------------------------------------------------------------------

async def test_nginx_in_my_vcluster(world: World):
    vc = await world.vcluster("my-vcluster")
    h, hns = world.host, vc.host_namespace
    await vc.kubectl("create", "namespace", "demo-nginx")
    await vc.kubectl("create", "deployment", "nginx-deployment", "-n", "demo-nginx",
                     "--image=nginx")

    vpod = (await eventually(lambda: running_pods(vc.virtual, "demo-nginx",
                                                  "app=nginx-deployment", 1), attempts=300))[0]
    vname = vpod["metadata"]["name"]
    assert re.fullmatch(r"nginx-deployment-[a-z0-9]+-[a-z0-9]{5}", vname)
    hpods = (await h.list(PODS, namespace=hns))["items"]
    assert [p["metadata"]["name"] for p in hpods] == [f"{vname}-x-demo-nginx-x-my-vcluster"]
    hpod = hpods[0]
    # the host holds pods only: no tenant namespace, no Deployment or ReplicaSet
    assert await not_found(h, NAMESPACES, "demo-nginx")
    assert (await h.list(DEPLOYMENTS))["items"] == []
    assert (await h.list(REPLICASETS))["items"] == []

    # the host pod runs as a host service account without API rights, and mounts the
    # *virtual* cluster's token (from its TokenRequest) where a pod expects one
    assert hpod["spec"]["serviceAccountName"] != "default"
    assert hpod["spec"].get("automountServiceAccountToken") is False
    mount = next(m for m in hpod["spec"]["containers"][0]["volumeMounts"]
                 if m["mountPath"] == "/var/run/secrets/kubernetes.io/serviceaccount")
    vol = next(v for v in hpod["spec"]["volumes"] if v["name"] == mount["name"])
    secret_name = vol.get("secret", {}).get("secretName") or next(
        s["secret"]["name"] for s in vol["projected"]["sources"] if "secret" in s)
    secret = await h.get(SECRETS, secret_name, namespace=hns)
    token = base64.b64decode(secret["data"]["token"]).decode()
    # the token authenticates as the pod's service account in the virtual cluster (and only there)
    assert vc.cp.pki is not None
    whoami = Resource("authentication.k8s.io", "v1", "selfsubjectreviews", namespaced=False)
    review = {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
    async with Client(vc.cp.url, token=token, ssl=client_context(vc.cp.pki.ca_pem)) as as_pod:
        me = await as_pod.create(whoami, review)
    assert me["status"]["userInfo"]["username"] == "system:serviceaccount:demo-nginx:default"
    async with Client(vc.host_cp.url, token=token, ssl=client_context(vc.host_cp.pki.ca_pem)) as on_host:
        with pytest.raises(errors.Unauthorized):
            await on_host.create(whoami, review)
    assert base64.b64decode(secret["data"]["namespace"]).decode() == "demo-nginx"

    wide = await vc.kubectl("get", "pod", vname, "-n", "demo-nginx", "-o", "wide")
    header, row = wide.splitlines()
    assert header.split()[:8] == ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE",
                                  "NOMINATED"]
    cols = row.split()
    assert cols[0] == vname and cols[1] == "1/1" and cols[2] == "Running"
    assert cols[5] == hpod["status"]["podIP"] and cols[6] == hpod["spec"]["nodeName"]
    assert hpod["spec"]["nodeName"] in {n["metadata"]["name"] for n in
                                        (await h.list_all(NODES))["items"]}

    logs = await vc.kubectl("logs", "deployment/nginx-deployment", "-n", "demo-nginx")
    assert "docker-entrypoint" in logs and "start worker processes" in logs, logs

    # a Service: the virtual one shows the ClusterIP the host allocated to its copy
    await vc.kubectl("create", "service", "clusterip", "nginx-deployment", "-n", "demo-nginx",
                     "--tcp=80:80")

    async def same_ip() -> str:
        vip = await vc.kubectl("get", "svc", "nginx-deployment", "-n", "demo-nginx",
                               "-o", "jsonpath={.spec.clusterIP}")
        hsvc = await get(h, SERVICES, "nginx-deployment-x-demo-nginx-x-my-vcluster", hns)
        assert vip and vip != "None" and vip == hsvc["spec"]["clusterIP"], (vip, hsvc["spec"])
        assert hsvc["spec"]["selector"] == {"vkube.io/l-app": "nginx-deployment",
                                            LABEL_MANAGED_BY: "my-vcluster",
                                            LABEL_NAMESPACE: "demo-nginx"}
        return vip
    await eventually(same_ip, attempts=200)
    assert hpod["metadata"]["labels"]["vkube.io/l-app"] == "nginx-deployment"


async def test_two_vclusters_each_with_default_nginx(world: World):
    a, b = await world.vcluster("team-a"), await world.vcluster("team-b")
    for vc in (a, b):
        await vc.kubectl("create", "deployment", "nginx", "--image=nginx")
        await vc.kubectl("create", "service", "clusterip", "nginx", "--tcp=80:80")
    h = world.host
    ips = {}
    for vc in (a, b):
        vpod = (await eventually(lambda vc=vc: running_pods(vc.virtual, "default", "app=nginx",
                                                            1), attempts=300))[0]
        hpod = await get(h, PODS, f"{vpod['metadata']['name']}-x-default-x-{vc.name}",
                         vc.host_namespace)
        assert hpod["metadata"]["annotations"][ANN_UID] == vpod["metadata"]["uid"]
        assert hpod["status"]["podIP"] == vpod["status"]["podIP"]

        async def svc(vc: VCluster = vc) -> str:
            vsvc = await vc.virtual.get(SERVICES, "nginx", namespace="default")
            hsvc = await get(h, SERVICES, f"nginx-x-default-x-{vc.name}", vc.host_namespace)
            assert vsvc["spec"].get("clusterIP") == hsvc["spec"]["clusterIP"]
            return str(hsvc["spec"]["clusterIP"])
        ips[vc.name] = await eventually(svc)
    assert ips["team-a"] != ips["team-b"]
    # each syncer sees only its own objects
    for vc in (a, b):
        hp = (await h.list(PODS, namespace=vc.host_namespace))["items"]
        assert {p["metadata"]["labels"][LABEL_MANAGED_BY] for p in hp} == {vc.name}


async def test_syncer_killed_during_scale_up_leaves_exactly_200_pods(world: World):
    vc = await world.vcluster("my-vcluster")
    h, hns = world.host, vc.host_namespace
    await vc.kubectl("create", "deployment", "web", "--image=nginx", "--replicas=1")
    await eventually(lambda: running_pods(vc.virtual, "default", "app=web", 1), attempts=300)
    await vc.kubectl("scale", "deployment", "web", "--replicas=200")

    async def host_count(at_least: int) -> int:
        n = len((await h.list(PODS, namespace=hns, label_selector="vkube.io/l-app=web"))["items"])
        assert n >= at_least, n
        return n

    # kill it twice, at different points of the scale-up
    for mark in (40, 90):
        n = await eventually(lambda mark=mark: host_count(mark), attempts=600, delay=0.02)
        assert n < 200, "the syncer should be killed mid-way"
        await vc.kill_syncer()
        await asyncio.sleep(0.2)  # the virtual side keeps going meanwhile
        await vc.start_syncer()

    await eventually(lambda: running_pods(vc.virtual, "default", "app=web", 200),
                     attempts=1200, delay=0.05)

    async def one_to_one() -> None:
        vpods = (await vc.virtual.list(PODS, namespace="default", label_selector="app=web"))
        hpods = (await h.list(PODS, namespace=hns, label_selector="vkube.io/l-app=web"))
        by_uid = {p["metadata"]["uid"]: p for p in vpods["items"]}
        assert len(by_uid) == 200
        hitems = hpods["items"]
        assert len(hitems) == 200, len(hitems)
        seen = set()
        for hp in hitems:
            ann = hp["metadata"]["annotations"]
            vp = by_uid.get(ann[ANN_UID])
            assert vp is not None, f"orphan {hp['metadata']['name']}"
            assert (ann[ANN_NAME], ann[ANN_NAMESPACE]) == (vp["metadata"]["name"], "default")
            assert hp["metadata"]["labels"][LABEL_MANAGED_BY] == "my-vcluster"
            assert hp["status"].get("phase") == "Running"
            seen.add(ann[ANN_UID])
        assert seen == set(by_uid)
        # nothing else of ours on the host either (terminating leftovers included)
        ours = (await h.list(PODS, namespace=hns,
                             label_selector=f"{LABEL_MANAGED_BY}=my-vcluster"))["items"]
        assert len(ours) == 200
    await eventually(one_to_one, attempts=400)


async def test_long_names_fit_host_limits(world: World):
    vc = await world.vcluster("my-vcluster")
    h, hns = world.host, vc.host_namespace
    ns = "tenant-" + "n" * 56  # 63: the longest namespace name
    pod = "p" * 70 + "-worker"
    svc = "s" * 63
    cm = "c" * 200
    await vc.kubectl("create", "namespace", ns)
    await vc.virtual.create(CONFIGMAPS, {"metadata": {"name": cm}, "data": {"k": "v"}},
                            namespace=ns)
    await vc.virtual.create(PODS, {
        "metadata": {"name": pod, "labels": {"app": "long"}},
        "spec": {"containers": [{"name": "c", "image": "nginx",
                                 "envFrom": [{"configMapRef": {"name": cm}}]}]}}, namespace=ns)
    await vc.kubectl("create", "service", "clusterip", svc, "-n", ns, "--tcp=80:80")

    vpod = (await eventually(lambda: running_pods(vc.virtual, ns, "app=long", 1),
                             attempts=300))[0]
    hpods = (await h.list(PODS, namespace=hns))["items"]
    assert len(hpods) == 1
    hpod = hpods[0]
    hname = hpod["metadata"]["name"]
    assert len(hname) <= 63 and DNS_LABEL.match(hname), hname
    assert hpod["metadata"]["annotations"][ANN_NAME] == pod
    assert hpod["metadata"]["annotations"][ANN_NAMESPACE] == ns
    assert hpod["spec"]["hostname"] == pod[:63].rstrip("-.")
    assert vpod["status"]["podIP"] == hpod["status"]["podIP"]
    hcm = hpod["spec"]["containers"][0]["envFrom"][0]["configMapRef"]["name"]
    assert len(hcm) <= 253
    assert (await h.get(CONFIGMAPS, hcm, namespace=hns))["data"] == {"k": "v"}

    async def svc_synced() -> None:
        hsvcs = (await h.list(SERVICES, namespace=hns))["items"]
        assert len(hsvcs) == 1
        name = hsvcs[0]["metadata"]["name"]
        assert len(name) <= 63 and DNS_LABEL.match(name) and name[0].isalpha(), name
        vsvc = await vc.virtual.get(SERVICES, svc, namespace=ns)
        assert vsvc["spec"].get("clusterIP") == hsvcs[0]["spec"]["clusterIP"]
    await eventually(svc_synced)
    # and kubectl still reaches the pod through the translated name
    logs = await vc.kubectl("logs", pod, "-n", ns)
    assert "docker-entrypoint" in logs


async def test_host_pod_deleted_by_someone_else_is_replaced(world: World):
    vc = await world.vcluster("my-vcluster")
    h, hns = world.host, vc.host_namespace
    await vc.kubectl("create", "deployment", "web", "--image=nginx", "--replicas=2")
    first = await eventually(lambda: running_pods(vc.virtual, "default", "app=web", 2),
                             attempts=300)
    victim = first[0]
    hname = f"{victim['metadata']['name']}-x-default-x-my-vcluster"
    await h.delete(PODS, hname, namespace=hns, grace_period_seconds=0)

    async def replaced() -> list[dict]:
        pods = await running_pods(vc.virtual, "default", "app=web", 2)
        names = {p["metadata"]["name"] for p in pods}
        assert victim["metadata"]["name"] not in names
        hp = (await h.list(PODS, namespace=hns))["items"]
        assert {p["metadata"]["annotations"][ANN_NAME] for p in hp} == names
        return pods
    await eventually(replaced, attempts=400)

    # a host Service deleted by someone else comes back too
    await vc.kubectl("create", "service", "clusterip", "web", "--tcp=80:80")
    hsvc_name = "web-x-default-x-my-vcluster"
    first_ip = (await eventually(lambda: get(h, SERVICES, hsvc_name, hns)))["spec"]["clusterIP"]
    await h.delete(SERVICES, hsvc_name, namespace=hns)

    async def back() -> None:
        hsvc = await get(h, SERVICES, hsvc_name, hns)
        vsvc = await vc.virtual.get(SERVICES, "web", namespace="default")
        # the host copy asks for the address the tenant already sees
        assert vsvc["spec"]["clusterIP"] == hsvc["spec"]["clusterIP"] == first_ip
    await eventually(back, attempts=200)


@pytest.mark.skipif(os.environ.get("VKUBE_SKIP_PROCESS_TESTS") == "1", reason="no subprocess")
async def test_vkube_serve_process_is_a_virtual_cluster(world: World, tmp_path: Path):
    """The real ``vkube serve`` process: kubectl against it, pods land on the host; killed
    with SIGKILL and started again on the same data dir, it converges without duplicates."""
    hcfg = world.tmp / "host" / "kubeconfig"
    data = tmp_path / "served"
    h, hns = world.host, "vkube-served"

    async def serve() -> asyncio.subprocess.Process:
        (data / "ready").unlink(missing_ok=True)
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "vkube", "serve", "--name", "served", "--data-dir", str(data),
            "--host-kubeconfig", str(hcfg), stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL)

        async def ready() -> None:
            assert (data / "ready").exists()
        await eventually(ready, attempts=600)
        return proc

    async def kubectl(*args: str) -> str:
        proc = await asyncio.create_subprocess_exec(
            KUBECTL, "--kubeconfig", str(data / "kubeconfig"), *args,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 0, err.decode()
        return out.decode()

    proc = await serve()
    try:
        await kubectl("create", "deployment", "web", "--image=nginx", "--replicas=30")

        async def some_on_host() -> None:
            n = len((await h.list(PODS, namespace=hns))["items"])
            assert n >= 5, n
        await eventually(some_on_host, attempts=600)
        proc.kill()
        await proc.wait()
        proc = await serve()

        async def converged() -> None:
            out = await kubectl("get", "pods", "-l", "app=web", "-o",
                                "jsonpath={range .items[*]}{.metadata.uid} "
                                "{.status.phase}{'\\n'}{end}")
            rows = [r.split() for r in out.splitlines() if r.strip()]
            assert len(rows) == 30 and all(p == "Running" for _, p in rows), rows
            hp = (await h.list(PODS, namespace=hns,
                               label_selector=f"{LABEL_MANAGED_BY}=served"))["items"]
            assert sorted(p["metadata"]["annotations"][ANN_UID] for p in hp) == \
                sorted(u for u, _ in rows)
        await eventually(converged, attempts=1200, delay=0.05)
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 20)
            except TimeoutError:
                proc.kill()
                await proc.wait()
