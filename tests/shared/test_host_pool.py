"""One pool of host connections for every syncer of a shared server (``vkube.client.pool``):
clusters whose host credentials are ServiceAccount tokens share one TLS session, yet every
request is judged by host RBAC as its own cluster's — a cluster's syncer cannot write outside
its host namespace, though its connection was opened for another cluster."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path

import pytest

from tests.conftest import kubectl
from vkube.api import errors, yamlio
from vkube.cli import render
from vkube.client import load_kubeconfig
from vkube.client.client import Client
from vkube.client.resources import CONFIGMAPS, NAMESPACES, PODS, SECRETS
from vkube.cluster.config import ClusterConfig, HostConnection
from vkube.cluster.host import EmbeddedHostCluster, HostConfig
from vkube.cluster.shared import SharedServer
from vkube.syncer import hostrbac


async def _confined(admin: Client, host_kc: Path, name: str, out: Path) -> Path:
    """What ``vkube create`` gives a syncer on a host whose CA it does not hold: the syncer's
    RBAC (``hostrbac``) in namespace ``vkube-NAME`` and a kubeconfig with its token."""
    ns, sa = f"vkube-{name}", f"vkube-{name}"
    await admin.create(NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    labels = {"vkube.io/vcluster": name}
    await render.apply(admin, hostrbac.manifests(name, ns, hostrbac.host_rbac(None, ns), labels))
    await admin.create(SECRETS, {
        "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/service-account-token",
        "metadata": {"name": f"{sa}-token", "namespace": ns,
                     "annotations": {"kubernetes.io/service-account.name": sa}}}, namespace=ns)
    token = ""
    for _ in range(600):  # the host's tokens controller fills it in
        data = (await admin.get(SECRETS, f"{sa}-token", namespace=ns)).get("data") or {}
        if data.get("token"):
            token = base64.b64decode(data["token"]).decode()
            break
        await asyncio.sleep(0.2)
    assert token, "the host's tokens controller filled no token"
    doc = yamlio.load(host_kc.read_text())
    doc["users"] = [{"name": "syncer", "user": {"token": token}}]
    for c in doc["contexts"]:
        c["context"]["user"] = "syncer"
    path = out / f"{name}-syncer.kubeconfig"
    path.write_text(yamlio.dump(doc))
    return path


async def _until(check, timeout: float = 180.0) -> None:  # noqa: ANN001
    for _ in range(int(timeout / 0.25)):
        if await check():
            return
        await asyncio.sleep(0.25)
    assert await check()


async def test_clusters_share_host_connections_each_as_itself(tmp_path: Path) -> None:
    host = EmbeddedHostCluster(HostConfig(data_dir=tmp_path / "host", nodes=1))
    await host.start()
    server = SharedServer(tmp_path / "shared", sleep_check=0.2)
    await server.start()
    try:
        async with load_kubeconfig(str(host.kubeconfig)) as admin:
            kcs = {n: await _confined(admin, host.kubeconfig, n, tmp_path) for n in ("a", "b")}
            for n in ("a", "b"):
                await server.add(ClusterConfig(name=n, data_dir=tmp_path / n, host=HostConnection(
                    str(kcs[n]), namespace=f"vkube-{n}", kind="embedded")))
            vcs = {n: server.members[n].vc for n in ("a", "b")}
            for vc in vcs.values():
                assert vc is not None
                await vc.wait_ready(timeout=300)
            # a pod of each cluster runs on the host, in that cluster's namespace only
            for n in ("a", "b"):
                await asyncio.to_thread(kubectl, tmp_path / n / "kubeconfig", "run", f"p{n}",
                                        "--image=nginx", timeout=120)

            def host_pods(n: str):  # noqa: ANN202
                async def check() -> bool:
                    pods = (await admin.list(PODS, namespace=f"vkube-{n}"))["items"]
                    return [p["metadata"]["annotations"].get("vkube.io/object-name")
                            for p in pods] == [f"p{n}"]
                return check

            for n in ("a", "b"):
                await _until(host_pods(n))

            # both syncers went through one pooled session (token identities share TLS)
            pool = server.host_pool
            assert pool.sessions() == 1
            assert pool.connections() >= 1
            syncers = {n: vcs[n].syncer for n in ("a", "b")}  # type: ignore[union-attr]
            ha, hb = (s.ctx.host for s in syncers.values())  # type: ignore[union-attr]
            assert ha._get_session() is hb._get_session()
            # every pooled TLS connection (the host watches among them) reads through a small
            # buffer, not asyncio's 256 KiB (tests run on asyncio's loop; uvloop keeps its own)
            connector = ha._get_session().connector
            conns = [*connector._acquired, *(p for q in connector._conns.values() for p, _ in q)]
            buffers = [len(p.transport._ssl_protocol._ssl_buffer) for p in conns
                       if p.transport is not None and hasattr(p.transport, "_ssl_protocol")]
            assert len(buffers) == len(conns) >= 2 and max(buffers) <= 16 * 1024, buffers

            # each is judged as itself: its own namespace yes, the other's no
            cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "probe"}}
            await ha.create(CONFIGMAPS, cm, namespace="vkube-a")
            await hb.create(CONFIGMAPS, cm, namespace="vkube-b")
            for client, other in ((ha, "vkube-b"), (hb, "vkube-a")):
                with pytest.raises(errors.Forbidden):
                    await client.create(CONFIGMAPS, cm, namespace=other)
                with pytest.raises(errors.Forbidden):
                    await client.delete(PODS, "pa" if other == "vkube-a" else "pb", namespace=other)
            with pytest.raises(errors.Forbidden):  # nor outside every tenant namespace
                await ha.create(CONFIGMAPS, cm, namespace="default")
            # the other's pod is still there; a client certificate is a TLS identity of its own
            await _until(host_pods("a"))
            await _until(host_pods("b"))
            async with pool.client(str(host.kubeconfig)) as as_admin:
                await as_admin.get(NAMESPACES, "default")
                assert as_admin._get_session() is not ha._get_session()
            assert pool.sessions() == 2
    finally:
        await server.stop()
        await host.stop()
