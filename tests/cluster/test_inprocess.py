"""Components talk to their own API in process (issue 18): the same identity, authorization,
admission and audit as over HTTPS with their certificates, private copies of what they
receive, fairness seats in shared mode, and a whole virtual cluster working that way."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.conftest import ClusterFactory, eventually
from tests.conftest import kubectl
from vkube.api import errors
from vkube.client import Client
from vkube.client.resources import CONFIGMAPS, NAMESPACES, PODS, SECRETS, Resource
from vkube.cluster.fairness import FairnessConfig, FairQueue, TooManyRequests
from vkube.cluster.inprocess import InProcessTransport, in_process_client
from vkube.pki.cluster import ADMIN, DNS, SCHEDULER, SYNCER

SELF_REVIEWS = Resource("authentication.k8s.io", "v1", "selfsubjectreviews", False, "SelfSubjectReview")


def both(rcp: Any, identity: tuple[str, tuple[str, ...]]) -> tuple[Client, Client]:
    """The same identity twice: over HTTPS with its certificate, and in process."""
    https = Client(rcp.url, ssl=rcp.cp.client_ssl(*identity), user_agent="vkube-test/x")
    inproc = in_process_client(rcp.cp.server, identity, url=rcp.url, user_agent="vkube-test/x")
    return https, inproc


async def outcome(call: Any) -> tuple[str, str]:
    """What a request came to: the reply's kind, or the error's class and message."""
    try:
        reply = await call
    except errors.StatusError as exc:
        return type(exc).__name__, str(exc)
    return "ok", reply.get("kind", "")


async def test_identity_authorization_and_admission_are_the_certificates(control_plane: Any) -> None:
    for identity in (SCHEDULER, SYNCER, DNS):
        https, inproc = both(control_plane, identity)
        try:
            review = {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
            a = await https.create(SELF_REVIEWS, review)
            b = await inproc.create(SELF_REVIEWS, review)
            assert a["status"]["userInfo"] == b["status"]["userInfo"]
            assert b["status"]["userInfo"]["username"] == identity[0]
            assert "system:authenticated" in b["status"]["userInfo"]["groups"]
            # RBAC: the same refusals, word for word, and the same grants
            for call in (lambda c: c.create(SECRETS, {"metadata": {"name": "s", "namespace": "default"}},
                                            dry_run=True),
                         lambda c: c.list(SECRETS, namespace="kube-system"),
                         lambda c: c.get(PODS, "nope", namespace="default"),
                         lambda c: c.delete(CONFIGMAPS, "kube-root-ca.crt", namespace="default")):
                assert await outcome(call(https)) == await outcome(call(inproc)), identity
        finally:
            await https.close()
            await inproc.close()
    # admission and validation: the same refusal texts for the admin
    https, inproc = both(control_plane, ADMIN)
    try:
        bad = {"metadata": {"name": "Not_Valid", "namespace": "default"}}
        got = await outcome(inproc.create(CONFIGMAPS, bad))
        assert got[0] == "Invalid" and got == await outcome(https.create(CONFIGMAPS, bad))
        missing = {"metadata": {"name": "cm", "namespace": "no-such-ns"}}
        got = await outcome(inproc.create(CONFIGMAPS, missing))
        assert got[0] == "NotFound" and got == await outcome(https.create(CONFIGMAPS, missing))
        await inproc.create(NAMESPACES, {"metadata": {"name": "restricted", "labels": {
            "pod-security.kubernetes.io/enforce": "restricted"}}})
        pod = {"metadata": {"name": "p", "namespace": "restricted"}, "spec": {"containers": [
            {"name": "c", "image": "nginx", "securityContext": {"privileged": True}}]}}
        got = await outcome(inproc.create(PODS, pod))
        assert got[0] == "Forbidden" and "PodSecurity" in got[1], got
        assert got == await outcome(https.create(PODS, pod))
    finally:
        await https.close()
        await inproc.close()


async def test_what_a_component_receives_is_its_own(control_plane: Any) -> None:
    admin = in_process_client(control_plane.cp.server, ADMIN, url=control_plane.url, user_agent="t")
    listed = await admin.list(CONFIGMAPS, namespace="default")
    rv = listed["metadata"]["resourceVersion"]
    seen: list[list[dict[str, Any]]] = [[], []]

    async def watch(i: int) -> None:
        async for ev in admin.watch(CONFIGMAPS, namespace="default", resource_version=rv):
            if ev.type == "ADDED":
                seen[i].append(ev.object)
                return

    watchers = [asyncio.create_task(watch(i)) for i in (0, 1)]
    body = {"metadata": {"name": "mine", "namespace": "default", "labels": {"a": "1"}}, "data": {"k": "v"}}
    created = await admin.create(CONFIGMAPS, body)
    body["data"]["k"] = "changed by the caller"  # the server keeps what it was sent
    created["data"]["k"] = "changed in the reply"
    await asyncio.wait_for(asyncio.gather(*watchers), 60)
    seen[0][0]["metadata"]["labels"]["a"] = "changed by watcher 0"
    assert seen[1][0]["metadata"]["labels"] == {"a": "1"}  # one event, two private copies
    stored = await admin.get(CONFIGMAPS, "mine", namespace="default")
    assert stored["data"] == {"k": "v"} and stored["metadata"]["labels"] == {"a": "1"}
    # a closed client is refused at once, as a closed listener refuses connections
    await admin.close()
    with pytest.raises(errors.ServiceUnavailable):
        await admin.get(CONFIGMAPS, "mine", namespace="default")


async def test_watches_end_when_the_server_stops(tmp_path: Path) -> None:
    from vkube.apiserver.server import ControlPlane

    cp = ControlPlane(data_dir=tmp_path / "cp")
    await cp.start()
    assert cp.server is not None
    client = in_process_client(cp.server, ADMIN, url=cp.url, user_agent="t")
    await client.create(CONFIGMAPS, {"metadata": {"name": "one", "namespace": "default"}})
    seen = asyncio.Event()

    async def watch() -> None:
        async for ev in client.watch(CONFIGMAPS, namespace="default", resource_version="0"):
            if ev.type == "ADDED":
                seen.set()

    task = asyncio.create_task(watch())
    try:
        await asyncio.wait_for(seen.wait(), 60)
    finally:
        await cp.stop()
    await asyncio.wait_for(task, 60)  # the stream ended with the server, it did not hang
    await client.close()


async def test_closing_the_client_ends_its_watches(control_plane: Any) -> None:
    client = in_process_client(control_plane.cp.server, ADMIN, url=control_plane.url, user_agent="t")

    async def watch() -> str:
        async for _ in client.watch(CONFIGMAPS, namespace="default", resource_version="0",
                                    allow_bookmarks=False):
            pass
        return "ended"

    task = asyncio.create_task(watch())
    await client.create(CONFIGMAPS, {"metadata": {"name": "x", "namespace": "default"}})
    transport = client.transport
    assert isinstance(transport, InProcessTransport)
    await eventually(_open_streams(transport), timeout=60)
    await client.close()
    assert await asyncio.wait_for(task, 60) == "ended"  # as a closed connection ends it


def _open_streams(transport: InProcessTransport) -> Any:
    async def check() -> None:
        assert transport._streams

    return check


async def test_shared_mode_seats_hold_for_in_process_requests(control_plane: Any) -> None:
    fair = FairQueue(FairnessConfig(seats=4, per_cluster=1, queue_length=1, max_wait=60))
    server = control_plane.cp.server
    client = in_process_client(server, ADMIN, url=control_plane.url, user_agent="t",
                               seat=lambda: fair.seat("a"), retries=0)  # the 429 itself
    try:
        async with fair.seat("a"):  # a tenant's request holds the cluster's only seat
            queued = asyncio.create_task(client.get(CONFIGMAPS, "kube-root-ca.crt", namespace="default"))
            await eventually(_queued(fair, "a"), timeout=60)
            assert not queued.done()
            # the queue is full: the next one is refused as the shared listener refuses it
            with pytest.raises(errors.TooManyRequests):
                await client.list(CONFIGMAPS, namespace="default")
        with contextlib.suppress(errors.NotFound):  # no controllers here: the CA map may be missing
            await asyncio.wait_for(queued, 60)
        assert fair.rejected == {"a": 1}
        # watches hold no seat (long-running, as kube-apiserver exempts them)
        async with fair.seat("a"):
            stream = client.watch(CONFIGMAPS, namespace="default", resource_version="0",
                                  timeout_seconds=1)
            async for _ in stream:
                break
            await stream.aclose()
    finally:
        await client.close()


def _queued(fair: FairQueue, cluster: str) -> Any:
    async def check() -> None:
        assert fair._queues.get(cluster), "the in-process request did not queue for a seat"

    return check


async def test_transport_refusal_is_the_listeners(control_plane: Any) -> None:
    @contextlib.asynccontextmanager
    async def refuse() -> AsyncIterator[None]:
        raise TooManyRequests("a", 1)
        yield

    client = Client(control_plane.url, user_agent="t", retries=0,
                    transport=InProcessTransport(control_plane.cp.server, ADMIN, seat=refuse))
    try:
        with pytest.raises(errors.TooManyRequests, match="Too many requests") as exc:
            await client.get(CONFIGMAPS, "x", namespace="default")
        assert exc.value.retry_after == 1  # the refusal's Retry-After reaches the caller
    finally:
        await client.close()


async def test_a_virtual_cluster_runs_on_in_process_components(virtual_cluster: ClusterFactory) -> None:
    vc = await virtual_cluster("inproc")
    await vc.wait_ready(timeout=120)
    assert vc.controller_manager is not None and vc.syncer is not None
    transports = [c.transport for c in vc._clients if c.transport is not None]
    assert len(transports) >= 3  # controller manager, DNS, in-cluster services, syncer
    assert all(isinstance(t, InProcessTransport) for t in transports)
    assert isinstance(vc.syncer.ctx.virtual.transport, InProcessTransport)
    assert vc.syncer.ctx.host.transport is None  # the host is another process: HTTPS
    kubeconfig = vc.config.data_dir / "kubeconfig"  # type: ignore[operator]
    await asyncio.to_thread(kubectl, kubeconfig, "create", "deployment", "web", "--image=nginx",
                            "--replicas=2")

    async def running() -> None:
        out = await asyncio.to_thread(kubectl, kubeconfig, "get", "pods", "-o", "json")
        pods = json.loads(out.stdout)["items"]
        assert len(pods) == 2 and all(p["status"].get("phase") == "Running" for p in pods), \
            [(p["metadata"]["name"], p["status"].get("phase")) for p in pods]

    await eventually(running)
    # the audit log shows the components' requests as the API saw them: their identities, loopback
    records = [json.loads(line) for line in
               (vc.config.data_dir / "audit.log").read_text().splitlines()]  # type: ignore[operator]
    creates = [r for r in records if r["verb"] == "create" and r["objectRef"].get("resource") == "pods"
               and not r["objectRef"].get("subresource") and r["responseStatus"]["code"] == 201]
    assert creates, "no pod create audited"
    assert {r["user"]["username"] for r in creates} == {"system:kube-controller-manager"}
    assert all(r["sourceIPs"] == ["127.0.0.1"] for r in creates)
    assert all(r["userAgent"] == "vkube-controller-manager/inproc" for r in creates)
