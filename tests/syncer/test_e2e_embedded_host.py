"""The user's journey on one laptop: a virtual pod runs on the embedded host (scheduler and
simulated kubelets), shows Running with its node and IP, and `kubectl logs` works."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from vkube.api import errors
from vkube.client.resources import NAMESPACES, NODES, PODS
from vkube.host.runner import EmbeddedHost

from .conftest import HOST_NS, VC, eventually, start_syncer, stop_syncer

KUBECTL = str(Path(sys.executable).parent / "kubectl")


async def test_pod_runs_on_the_embedded_host(planes):
    vcp, hcp = planes
    host = EmbeddedHost(hcp.url, pki=hcp.pki, nodes=2, seed=1)
    await host.start()
    pair = await start_syncer(vcp, hcp)
    v, h = pair.virtual, pair.host
    try:
        await v.create(NAMESPACES, {"metadata": {"name": "demo-nginx"}})
        await v.create(PODS, {"metadata": {"name": "nginx", "namespace": "demo-nginx",
                                           "labels": {"app": "nginx"}},
                              "spec": {"containers": [{"name": "nginx", "image": "nginx"}]}},
                       namespace="demo-nginx")

        async def running():
            vp = await v.get(PODS, "nginx", namespace="demo-nginx")
            assert vp["status"].get("phase") == "Running", vp.get("status")
            assert vp["spec"].get("nodeName")
            assert vp["status"].get("podIP")
            return vp
        vp = await eventually(running, attempts=400)
        hp = await h.get(PODS, f"nginx-x-demo-nginx-x-{VC}", namespace=HOST_NS)
        assert hp["spec"]["nodeName"] == vp["spec"]["nodeName"]
        assert hp["status"]["podIP"] == vp["status"]["podIP"]
        node = await v.get(NODES, vp["spec"]["nodeName"])
        assert node["metadata"]["labels"]["vkube.io/fake-node"] == "true"
        try:
            await h.get(NAMESPACES, "demo-nginx")
            raise AssertionError("virtual namespaces never reach the host")
        except errors.NotFound:
            pass

        proc = await asyncio.create_subprocess_exec(
            KUBECTL, "--kubeconfig", str(vcp.data_dir / "kubeconfig"), "logs", "nginx",
            "-n", "demo-nginx", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 0, err.decode()
        assert "docker-entrypoint" in out.decode(), "the simulated nginx's log, via the host"

        await v.delete(PODS, "nginx", namespace="demo-nginx")

        async def gone():
            for c, name, ns in ((v, "nginx", "demo-nginx"),
                                (h, f"nginx-x-demo-nginx-x-{VC}", HOST_NS)):
                try:
                    await c.get(PODS, name, namespace=ns)
                except errors.NotFound:
                    continue
                raise AssertionError(f"{name} still there")
        await eventually(gone, attempts=600)
    finally:
        await stop_syncer(pair)
        await host.stop()


async def kubectl(vcp, *args: str, timeout: float = 60) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        KUBECTL, "--kubeconfig", str(vcp.data_dir / "kubeconfig"), *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    return proc.returncode or 0, out.decode(), err.decode()


async def test_kubectl_exec_through_the_syncer(planes):
    """virtual API pods/exec → the fake node's kubelet (the syncer's proxy) → host API
    pods/exec of the host pod → the embedded host's kubelet; frames relayed both ways."""
    vcp, hcp = planes
    host = EmbeddedHost(hcp.url, pki=hcp.pki, nodes=1, seed=2)
    await host.start()
    pair = await start_syncer(vcp, hcp)
    v = pair.virtual
    try:
        await v.create(PODS, {"metadata": {"name": "box", "namespace": "default"},
                              "spec": {"containers": [{"name": "main", "image": "busybox",
                                                       "command": ["sleep", "3600"]}]}},
                       namespace="default")

        async def running():
            vp = await v.get(PODS, "box", namespace="default")
            assert vp["status"].get("phase") == "Running", vp.get("status")
            assert all(c.get("ready") for c in vp["status"]["containerStatuses"])
        await eventually(running, attempts=400)

        code, out, err = await kubectl(vcp, "exec", "box", "--", "echo", "hi")
        assert (code, out) == (0, "hi\n"), err
        code, out, err = await kubectl(vcp, "exec", "box", "-c", "main", "--", "echo", "a", "b")
        assert (code, out) == (0, "a b\n"), err
        # stderr and a non-zero exit code come back through both relays
        code, out, err = await kubectl(vcp, "exec", "box", "--", "cat", "/nope")
        assert code == 1 and "No such file or directory" in err, (code, out, err)
    finally:
        await stop_syncer(pair)
        await host.stop()
