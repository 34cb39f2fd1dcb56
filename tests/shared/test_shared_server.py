"""Shared mode in one process (``SharedServer``): several virtual clusters on one store and one
port, each at ``/clusters/NAME``, driven by the real kubectl and the official Python client
through each cluster's own kubeconfig. Isolation: no URL shape, store key or watch reaches
another cluster; a stopped cluster's requests end; sleep frees a cluster and a request wakes
it with its objects intact."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiohttp
import pytest
from yarl import URL

from tests.conftest import kubectl
from vkube.cluster.config import ClusterConfig
from vkube.cluster.shared import SharedServer, sni_name
from vkube.store.prefixed import PrefixedStore

from .conftest import ClusterSession


async def kc(path: Path, *args: str, check: bool = True) -> str:
    proc = await asyncio.to_thread(kubectl, path, *args, check=check, timeout=120)
    return proc.stdout + (proc.stderr if not check else "")


@pytest.fixture
async def shared(tmp_path: Path):  # noqa: ANN201
    server = SharedServer(tmp_path / "shared", sleep_check=0.2)
    await server.start()
    for name in ("a", "b", "ab"):
        await server.add(ClusterConfig(name=name, data_dir=tmp_path / name, controllers=False))
    try:
        yield server, tmp_path
    finally:
        await server.stop()


async def test_each_cluster_is_its_own_api(shared) -> None:  # noqa: ANN001
    server, root = shared
    await kc(root / "a" / "kubeconfig", "create", "namespace", "only-a")
    await kc(root / "a" / "kubeconfig", "create", "configmap", "cm", "-n", "only-a",
             "--from-literal=k=v")
    assert "only-a" in await kc(root / "a" / "kubeconfig", "get", "ns")
    for other in ("b", "ab"):
        assert "only-a" not in await kc(root / other / "kubeconfig", "get", "ns")
        out = await kc(root / other / "kubeconfig", "get", "cm", "cm", "-n", "only-a", check=False)
        assert "NotFound" in out
    # the same name in another cluster is another object
    await kc(root / "b" / "kubeconfig", "create", "namespace", "only-a")
    uid_a = await kc(root / "a" / "kubeconfig", "get", "ns", "only-a", "-o", "jsonpath={.metadata.uid}")
    uid_b = await kc(root / "b" / "kubeconfig", "get", "ns", "only-a", "-o", "jsonpath={.metadata.uid}")
    assert uid_a and uid_b and uid_a != uid_b
    # the kubeconfig's server URL carries the path; the official client follows it too
    doc = json.loads((root / "a" / "kubeconfig").read_text())
    assert doc["clusters"][0]["cluster"]["server"] == f"{server.base_url}/clusters/a"
    from kubernetes import client as k8s, config as k8s_config

    def official() -> list[str]:
        api = k8s.CoreV1Api(k8s_config.new_client_from_config(str(root / "a" / "kubeconfig")))
        return [n.metadata.name for n in api.list_namespace().items]

    assert "only-a" in await asyncio.to_thread(official)


async def test_store_keys_stay_under_the_cluster_prefix(shared) -> None:  # noqa: ANN001
    server, root = shared
    await kc(root / "ab" / "kubeconfig", "create", "namespace", "in-ab")
    res = await server.store.range("/", limit=0)
    keys = [kv.key for kv in res.kvs]
    assert keys and all(k.startswith(("/clusters/a/", "/clusters/b/", "/clusters/ab/")) for k in keys)
    assert "/clusters/ab/core/namespaces/in-ab" in keys
    # "/clusters/a" never sees "/clusters/ab"
    view = PrefixedStore(server.store, "/clusters/a")
    assert not [kv.key for kv in (await view.range("/core/namespaces/")).kvs if kv.key.endswith("in-ab")]
    with pytest.raises(ValueError):
        PrefixedStore(server.store, "/clusters/a/")


@pytest.mark.parametrize("path", [
    "/api/v1/namespaces",                          # no cluster at all
    "/clusters/zz/api/v1/namespaces",              # a cluster this process does not serve
    "/clusters/A/api/v1/namespaces",               # names are exact
    "/clusters/a%2F..%2Fb/api/v1/namespaces",      # encoded separators
    "/clusters/b/../a/api/v1/namespaces/only-b",   # dot segments
    "/clusters/ab/clusters/b/api/v1/namespaces/only-b",  # nested prefixes stay in ab
    "/clusters/bx/api/v1/namespaces",              # a prefix of no name
    "/clusters//b/api/v1/namespaces/only-b",
])
async def test_no_url_reaches_another_cluster(shared, path: str) -> None:  # noqa: ANN001
    server, root = shared
    await kc(root / "b" / "kubeconfig", "create", "namespace", "only-b")
    async with ClusterSession(server, "b") as s:
        # sent as written: the client must not normalise dot segments or escapes away
        async with s.get(URL(server.base_url + path, encoded=True)) as r:
            body = await r.text()
    assert r.status == 404, (path, r.status, body)
    assert json.loads(body)["kind"] == "Status"
    assert "creationTimestamp" not in body  # no object of b's came back


async def test_a_watch_sees_only_its_cluster(shared) -> None:  # noqa: ANN001
    server, root = shared
    events: list[str] = []

    async def watch() -> None:
        async with ClusterSession(server, "a") as s:
            async with s.get("/clusters/a/api/v1/configmaps",
                             params={"watch": "1", "allowWatchBookmarks": "false"}) as r:
                async for line in r.content:
                    obj = json.loads(line)["object"]
                    events.append(f"{obj['metadata']['namespace']}/{obj['metadata']['name']}")

    task = asyncio.create_task(watch())
    try:
        await asyncio.sleep(0.5)
        await kc(root / "b" / "kubeconfig", "create", "configmap", "from-b", "-n", "default")
        await kc(root / "ab" / "kubeconfig", "create", "configmap", "from-ab", "-n", "default")
        await kc(root / "a" / "kubeconfig", "create", "configmap", "from-a", "-n", "default")
        for _ in range(600):
            if "default/from-a" in events:
                break
            await asyncio.sleep(0.1)
        assert "default/from-a" in events
        assert not [e for e in events if e.endswith(("from-b", "from-ab"))], events
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_removing_a_cluster_ends_its_watches_and_keeps_the_others(shared) -> None:  # noqa: ANN001
    server, root = shared
    async with ClusterSession(server, "b") as s:
        async with s.get("/clusters/b/api/v1/namespaces",
                         params={"watch": "1", "allowWatchBookmarks": "false"}) as r:
            assert r.status == 200
            await server.remove("b")
            with pytest.raises((aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError)):
                async with asyncio.timeout(60):
                    async for _ in r.content:
                        pass
                    raise aiohttp.ServerDisconnectedError()  # a clean end is an end too
    async with ClusterSession(server, "a") as s:  # b is gone: a 404
        async with s.get("/clusters/b/api/v1/namespaces") as r:
            assert r.status == 404
    assert "default" in await kc(root / "a" / "kubeconfig", "get", "ns")


async def test_sleep_frees_and_a_request_wakes(shared) -> None:  # noqa: ANN001
    server, root = shared
    await kc(root / "a" / "kubeconfig", "create", "configmap", "kept", "--from-literal=k=v")
    assert await server.sleep("a")
    member = server.members["a"]
    assert member.vc is None and member.state == "Sleeping"
    assert (root / "a" / "sleeping").exists() and (root / "a" / "ready").exists()
    # the first request wakes it and is answered with the data as it was
    out = await kc(root / "a" / "kubeconfig", "get", "configmap", "kept", "-o", "jsonpath={.data.k}")
    assert out == "v"
    assert member.vc is not None and member.state == "Running"
    assert not (root / "a" / "sleeping").exists()
    assert member.last_wake is not None


async def test_sleep_after_inactivity(tmp_path: Path) -> None:
    """``sleep.afterInactivity``: idle clusters go to sleep on their own, busy ones do not."""
    from vkube.syncer.values import parse_values

    server = SharedServer(tmp_path / "shared", sleep_check=0.2)
    await server.start()
    try:
        values = parse_values({"controlPlane": {"mode": "shared"}, "sleep": {"afterInactivity": "2s"}})
        await server.add(ClusterConfig(name="idle", data_dir=tmp_path / "idle", values=values,
                                       controllers=False))
        await server.add(ClusterConfig(name="busy", data_dir=tmp_path / "busy", values=values,
                                       controllers=False))
        await server.add(ClusterConfig(name="never", data_dir=tmp_path / "never", controllers=False))
        # a tenant's requests, well within 2 s of each other however loaded the machine is
        # (a kubectl process can take longer than that to start); on a loaded machine adding
        # the clusters can take longer too, so "busy" may have slept already: awake it first
        await server.wake("busy")
        async with ClusterSession(server, "busy") as busy:
            for _ in range(600):
                if server.state_of("idle") == "Sleeping":
                    break
                async with busy.get("/clusters/busy/api/v1/namespaces") as r:
                    assert r.status == 200
                await asyncio.sleep(0.2)
        assert server.state_of("idle") == "Sleeping"
        assert server.state_of("busy") == "Running"
        assert server.state_of("never") == "Running"
        assert "default" in await kc(tmp_path / "idle" / "kubeconfig", "get", "ns")
        assert server.state_of("idle") == "Running"
    finally:
        await server.stop()


async def test_member_files_and_purge(tmp_path: Path) -> None:
    """The files the CLI writes: a new file starts a cluster, a changed generation applies
    ``desired``, a removed file stops it (data kept), ``Deleted`` purges its keys."""
    server = SharedServer(tmp_path / "shared")
    await server.start()
    members = server.members_dir

    def write(name: str, generation: int, desired: str) -> None:
        (members / f"{name}.json").write_text(json.dumps({
            "name": name, "dataDir": str(tmp_path / name), "host": None, "valuesFile": None,
            "generation": generation, "desired": desired}))

    try:
        write("m", 1, "Running")
        await server.reconcile()
        assert (tmp_path / "m" / "ready").read_text().strip() == server.url_of("m")
        await kc(tmp_path / "m" / "kubeconfig", "create", "namespace", "mine")
        write("m", 2, "Sleeping")
        await server.reconcile()
        assert server.state_of("m") == "Sleeping"
        write("m", 3, "Running")
        await server.reconcile()
        assert server.state_of("m") == "Running"
        (members / "m.json").unlink()
        await server.reconcile()
        assert "m" not in server.members and not (tmp_path / "m" / "ready").exists()
        write("m", 4, "Running")
        await server.reconcile()
        assert "mine" in await kc(tmp_path / "m" / "kubeconfig", "get", "ns")  # data kept
        write("m", 5, "Deleted")
        await server.reconcile()
        assert "m" not in server.members and not (members / "m.json").exists()
        assert not (await server.store.range("/clusters/m/")).kvs
        # a bad member file is reported in the cluster's own data dir, the rest go on
        (members / "bad.json").write_text(json.dumps({"name": "bad", "dataDir": str(tmp_path / "bad"),
                                                      "valuesFile": str(tmp_path / "nope.yaml")}))
        await server.reconcile()
        assert "nope.yaml" in (tmp_path / "bad" / "error").read_text()
    finally:
        await server.stop()


async def test_server_name_and_credentials_stay_with_their_cluster(shared) -> None:  # noqa: ANN001
    """By server name: a connection that chose b by SNI reaches no other cluster. By
    credentials: a's certificate is refused on b's server name (b's CA does not know it) and,
    without any server name, by b's authenticator; a's service-account token likewise."""
    import ssl

    server, root = shared
    await kc(root / "a" / "kubeconfig", "create", "namespace", "only-a")
    async with ClusterSession(server, "b") as s:
        async with s.get("/clusters/b/api/v1/namespaces") as r:
            assert r.status == 200
        async with s.get("/clusters/a/api/v1/namespaces/only-a") as r:
            assert r.status == 404 and "creationTimestamp" not in await r.text()
    # a's client certificate with b's server name: the handshake fails (b's CA)
    a_ssl = server.members["a"].vc.control_plane.client_ssl()
    a_ssl.check_hostname = False
    a_ssl.verify_mode = ssl.CERT_NONE
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=a_ssl)) as s:
        with pytest.raises(aiohttp.ClientError):
            async with s.get(server.url_of("b") + "/api/v1/namespaces",
                             server_hostname=sni_name("b")) as r:
                await r.read()
    # a's service-account token, no client certificate, b's server name: 401 from b
    await kc(root / "a" / "kubeconfig", "create", "serviceaccount", "probe")
    token = (await kc(root / "a" / "kubeconfig", "create", "token", "probe")).strip()
    for name, allowed in (("a", (200, 403)), ("b", (401,))):  # a: authenticated; b: not
        trust = ssl.create_default_context(
            cadata=server.members[name].vc.control_plane.pki.ca_pem.decode())
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=trust)) as s:
            async with s.get(server.url_of(name) + "/api/v1/namespaces",
                             headers={"Authorization": f"Bearer {token}"},
                             server_hostname=sni_name(name)) as r:
                assert r.status in allowed, (name, r.status, await r.text())
    # kubectl with a's kubeconfig pointed at b's path (a's server name): 404, nothing of b
    doc = json.loads((root / "a" / "kubeconfig").read_text())
    doc["clusters"][0]["cluster"]["server"] = server.url_of("b")
    wrong = root / "a-to-b.kubeconfig"
    wrong.write_text(json.dumps(doc))
    out = await kc(wrong, "get", "ns", check=False)
    assert "kube-system" not in out


async def _served_not_after(server: SharedServer, root: Path, name: str) -> "dt.datetime":
    """The expiry of the certificate the shared listener presents for ``name`` (by SNI),
    verified against that cluster's CA."""
    import ssl

    from cryptography import x509

    ctx = ssl.create_default_context(cafile=str(root / name / "pki" / "ca.crt"))
    _, writer = await asyncio.open_connection("127.0.0.1", server.port, ssl=ctx,
                                              server_hostname=sni_name(name))
    try:
        der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    finally:
        writer.close()
    return x509.load_der_x509_certificate(der).not_valid_after_utc


async def test_serving_certificates_renew_in_place(tmp_path: Path) -> None:
    """One loop renews every shared cluster's serving certificate before it lapses, awake or
    asleep (a sleeping cluster must stay reachable to be woken), in the context the listener
    already uses; renewal does not wake a sleeping cluster."""
    import datetime as dt

    from vkube.pki.certs import certificate_sans, load_certificate
    from vkube.pki.cluster import ClusterPKI

    server = SharedServer(tmp_path / "shared", sleep_check=0.2, renew_interval=0.3)
    await server.start()
    try:
        for name in ("awake", "asleep"):
            await server.add(ClusterConfig(name=name, data_dir=tmp_path / name, controllers=False))
        await server.sleep("asleep")
        now = dt.datetime.now(dt.timezone.utc)
        for name in ("awake", "asleep"):
            # the state a year later: the listener serves a certificate with a day left of 4
            pki_dir = tmp_path / name / "pki"
            names = certificate_sans(load_certificate((pki_dir / "apiserver.crt").read_bytes()))
            pair = ClusterPKI(pki_dir, name=name).ca.issue_serving(
                sorted(names), validity=dt.timedelta(days=4), now=now - dt.timedelta(days=3))
            (pki_dir / "apiserver.crt").write_bytes(pair.cert_pem)
            (pki_dir / "apiserver.key").write_bytes(pair.key_pem)
            member = server.members[name]
            member.ssl.load_cert_chain(pki_dir / "apiserver.crt", pki_dir / "apiserver.key")
            member.ssl_cert = pair.cert_pem
        soon = now + dt.timedelta(days=30)
        for name in ("awake", "asleep"):
            for _ in range(600):
                if await _served_not_after(server, tmp_path, name) > soon:
                    break
                await asyncio.sleep(0.1)
            assert await _served_not_after(server, tmp_path, name) > soon, name
        assert server.state_of("asleep") == "Sleeping"
        # kubectl verifies the renewed certificates; the request wakes the sleeping one
        for name in ("awake", "asleep"):
            assert "default" in await kc(tmp_path / name / "kubeconfig", "get", "ns")
        assert server.state_of("asleep") == "Running"
        assert await _served_not_after(server, tmp_path, "asleep") > soon
    finally:
        await server.stop()


def _rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


async def test_sleeping_clusters_give_their_memory_back(tmp_path: Path) -> None:
    """Sleep frees a cluster's in-memory state: its control plane, controllers and in-process
    clients are collected, and the freed space serves the clusters that wake next. (Python's
    small-object arenas stay mapped while any object lives in them, so RSS itself falls
    only where whole arenas or malloc pages empty: vkube.cluster.memory.)"""
    import gc
    import weakref

    server = SharedServer(tmp_path / "shared", sleep_check=0.2)
    await server.start()
    try:
        gc.collect()
        server.reclaimer.soon()  # start from a trimmed heap, as the figures below are
        await _until(lambda: server.reclaimer.passes == 1)
        before = _rss_mib()
        names = [f"m{i}" for i in range(3)]
        refs: list[weakref.ref[object]] = []
        for name in names:  # with controllers: their informers are most of a cluster's memory
            member = await server.add(ClusterConfig(name=name, data_dir=tmp_path / name))
            vc = member.vc
            assert vc is not None and vc.config.in_process_components
            await vc.wait_ready(timeout=300)
            assert vc.controller_manager is not None and vc.control_plane.server is not None
            refs += [weakref.ref(vc), weakref.ref(vc.control_plane.server),
                     weakref.ref(vc.controller_manager), weakref.ref(vc.controller_manager.client)]
            del vc, member
        gc.collect()
        base = _rss_mib()
        for name in names:
            assert await server.sleep(name)
        await _until(lambda: server.reclaimer.passes >= 2)
        gc.collect()
        assert [r for r in refs if r() is not None] == []
        # waking them again fits mostly in the space they left (pymalloc reuses free pools)
        for name in names:
            assert "default" in await kc(tmp_path / name / "kubeconfig", "get", "ns")
            member = server.members[name]
            assert member.vc is not None
            await member.vc.wait_ready(timeout=300)
        again = _rss_mib()
        # had their memory not been freed, waking would cost what starting them did
        assert again - base < (base - before) / 2, (before, base, again)
    finally:
        await server.stop()


async def test_a_sleeping_synced_cluster_is_collected(tmp_path: Path) -> None:
    """A full cluster (controllers, syncer to an embedded host, a pod, a tenant's open watch),
    its components in process: after sleep nothing of it stays reachable — no task, client,
    informer or watch keeps it — and a request wakes it with the pod back on the host."""
    import gc
    import weakref

    from vkube.cluster.config import HostConnection
    from vkube.cluster.host import EmbeddedHostCluster, HostConfig

    host = EmbeddedHostCluster(HostConfig(data_dir=tmp_path / "host", nodes=1))
    await host.start()
    server = SharedServer(tmp_path / "shared", sleep_check=0.2)
    await server.start()
    try:
        member = await server.add(ClusterConfig(
            name="s", data_dir=tmp_path / "s",
            host=HostConnection(str(host.kubeconfig), kind="embedded")))
        vc = member.vc
        assert vc is not None and vc.config.in_process_components
        await vc.wait_ready(timeout=300)
        await kc(tmp_path / "s" / "kubeconfig", "run", "p", "--image=nginx")
        namespace = vc.host_namespace

        async def host_pod() -> bool:
            out = await asyncio.to_thread(kubectl, host.kubeconfig, "get", "pods", "-n",
                                          namespace, "-o", "name", check=False)
            return bool(out.stdout.strip())

        await _until_async(host_pod)
        assert vc.syncer is not None and vc.controller_manager is not None
        refs = [weakref.ref(o) for o in (vc, vc.control_plane.server, vc.syncer,
                                           vc.controller_manager, vc.controller_manager.client)]
        async with ClusterSession(server, "s") as session:
            async def watch() -> None:
                async with session.get("/clusters/s/api/v1/pods?watch=1") as r:
                    async for _ in r.content:
                        pass

            watcher = asyncio.create_task(watch())
            await asyncio.sleep(0.5)
            del vc, member
            assert await server.sleep("s")
            # the tenant's watch ends with the cluster (as a closed connection)
            with pytest.raises((aiohttp.ClientError, asyncio.CancelledError)):
                await asyncio.wait_for(watcher, 60)
                raise aiohttp.ClientError("ended")
        gc.collect()
        assert [r() for r in refs if r() is not None] == []

        async def no_host_pod() -> bool:
            return not await host_pod()

        await _until_async(no_host_pod)
        # the first request wakes it, and reads the pod as it is (its host pod went with the
        # sleep: not running, until the host runs it again); its pod comes back on the host
        pod = json.loads(await kc(tmp_path / "s" / "kubeconfig", "get", "pod", "p", "-o", "json"))
        if not await host_pod():
            assert pod["status"]["phase"] == "Pending" and "podIP" not in pod["status"], pod["status"]
        await _until_async(host_pod)
    finally:
        await server.stop()
        await host.stop()


async def _until_async(check, timeout: float = 120.0) -> None:  # noqa: ANN001
    for _ in range(int(timeout / 0.25)):
        if await check():
            return
        await asyncio.sleep(0.25)
    assert await check()


async def _until(check, timeout: float = 120.0) -> None:  # noqa: ANN001
    for _ in range(int(timeout / 0.1)):
        if check():
            return
        await asyncio.sleep(0.1)
    assert check()
