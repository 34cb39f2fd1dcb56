"""Watches and a sleeping shared cluster (``vkube.cluster.sleepwatch``), one process: sleep
ends tenants' watches cleanly; a re-watch from a version the cluster had reached, by a
credential the awake server authorized for it, is held without waking the cluster and gets
what a wake writes; at its ``timeoutSeconds`` it ends as a server timeout does; a watch nobody
authorized is never held (it wakes the cluster, whose server refuses it)."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest

from vkube.cluster.config import ClusterConfig
from vkube.cluster.shared import SharedServer

from .conftest import ClusterSession
from .test_shared_server import _until, kc

CMS = "/clusters/a/api/v1/namespaces/default/configmaps"


@pytest.fixture
async def server(tmp_path: Path):  # noqa: ANN201
    server = SharedServer(tmp_path / "shared", sleep_check=0.2)
    await server.start()
    await server.add(ClusterConfig(name="a", data_dir=tmp_path / "a", controllers=False))
    try:
        yield server
    finally:
        await server.stop()


def _official_watch(kubeconfig: Path, rv: str, events: list[Any], errors: list[BaseException]) -> threading.Thread:
    """The official client's ``Watch.stream`` from ``rv`` (it re-watches from the last version
    it saw whenever a watch ends), in a daemon thread until it sees ConfigMap ``woke``."""
    from kubernetes import client as k8s, config as k8s_config, watch

    api = k8s.CoreV1Api(k8s_config.new_client_from_config(str(kubeconfig)))

    def run() -> None:
        w = watch.Watch()
        try:
            for ev in w.stream(api.list_namespaced_config_map, "default", resource_version=rv,
                               allow_watch_bookmarks=False):
                events.append((ev["type"], ev["object"].metadata.name))
                if ev["object"].metadata.name == "woke":
                    w.stop()
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True, name="official watch")
    thread.start()
    return thread


async def test_watches_park_while_asleep_and_resume_on_wake(server: SharedServer, tmp_path: Path) -> None:
    member = server.members["a"]
    kubeconfig = tmp_path / "a" / "kubeconfig"
    leaving = ClusterSession(server, "a")
    async with ClusterSession(server, "a") as admin, \
            ClusterSession(server, "a", user=("bob", ())) as bob:
        async with admin.get(CMS) as r:
            rv = (await r.json())["metadata"]["resourceVersion"]
        # bob may not watch: refused awake, and nothing recorded for him
        async with bob.get(CMS, params={"watch": "1", "resourceVersion": rv}) as r:
            assert r.status == 403
        # the official client's informer-like loop, and a raw watch, while awake
        events: list[Any] = []
        failures: list[BaseException] = []
        thread = _official_watch(kubeconfig, rv, events, failures)
        async with admin.get(CMS, params={"watch": "1", "resourceVersion": rv}) as r:
            assert r.status == 200
            await _until(lambda: len(member.parking.grants) >= 1 and len(member.watches.stoppers) >= 2)
            assert await server.sleep("a")
            # sleep ended it as a timeout does: a clean end of the stream, no error
            async with asyncio.timeout(60):
                assert await r.content.read() == b""
        assert member.vc is None
        # the official client re-watched at once, and is held without waking the cluster
        await _until(lambda: len(member.parked) >= 1)
        assert member.vc is None and member.state == "Sleeping" and not failures

        # a held watch whose timeoutSeconds passes ends as a server timeout: 200, empty
        async with admin.get(CMS, params={"watch": "1", "resourceVersion": rv,
                                          "timeoutSeconds": "1"}) as r:
            assert r.status == 200 and r.headers["Content-Type"].startswith("application/json")
            assert await r.read() == b""
        assert member.vc is None

        # a held watch whose client goes away is ended (the sleep loop looks): no task stays
        held = len(member.parked)
        leaver = asyncio.ensure_future(_read_events(leaving, rv))
        await _until(lambda: len(member.parked) == held + 1)
        leaver.cancel()
        await leaving.__aexit__(None, None, None)
        await _until(lambda: len(member.parked) == held)
        assert member.vc is None

        # a write wakes it (kubectl); the held watch continues from its version: nothing lost
        parked = asyncio.ensure_future(_read_events(admin, rv))
        await _until(lambda: len(member.parked) >= 2)
        assert member.vc is None
        await kc(kubeconfig, "create", "configmap", "woke", "--from-literal=k=v")
        assert member.vc is not None
        got = await asyncio.wait_for(parked, 60)
        assert ("ADDED", "woke") in got
        await asyncio.to_thread(thread.join, 60)
        assert not thread.is_alive() and not failures, failures
        assert ("ADDED", "woke") in events

        # a change to RBAC forgets what was authorized
        await _until(lambda: len(member.parking.grants) >= 1)
        await kc(kubeconfig, "create", "rolebinding", "x", "--clusterrole=view", "--user=carol")
        assert len(member.parking.grants) == 0

        # asleep again: bob's watch is not held; it wakes the cluster and is refused there
        assert await server.sleep("a")
        async with bob.get(CMS, params={"watch": "1", "resourceVersion": rv}) as r:
            assert r.status == 403
        assert member.vc is not None
        # a watch that lists first (no resourceVersion) is not held either
        assert await server.sleep("a")
        async with admin.get(CMS, params={"watch": "1", "timeoutSeconds": "1"}) as r:
            assert r.status == 200
        assert member.vc is not None


async def _read_events(session: ClusterSession, rv: str) -> list[tuple[str, str]]:
    """A raw watch from ``rv`` until it delivers ConfigMap ``woke``."""
    import json

    out: list[tuple[str, str]] = []
    async with session.get(CMS, params={"watch": "1", "resourceVersion": rv}) as r:
        assert r.status == 200
        async for line in r.content:
            ev = json.loads(line)
            out.append((ev["type"], ev["object"]["metadata"]["name"]))
            if out[-1][1] == "woke":
                return out
    return out


def test_what_a_held_watch_carries_and_which_credentials_still_hold() -> None:
    """The time held counts against ``timeoutSeconds`` when the woken server gets the watch;
    only watches are keyed; an expired JWT or a bootstrap token (its expiry is in a Secret) is
    never held."""
    import base64
    import json
    import time

    from aiohttp.test_utils import make_mocked_request

    from vkube.cluster.sleepwatch import Ticket, unexpired, watch_key

    t = Ticket("/api/v1/pods?watch=1&resourceVersion=5&timeoutSeconds=300",
               time.monotonic() + 120.4, explicit_timeout=True)
    assert "timeoutSeconds=121" in t.tail_now() and "resourceVersion=5" in t.tail_now()
    assert Ticket("/api/v1/pods?watch=1", 0.0, explicit_timeout=False).tail_now() == "/api/v1/pods?watch=1"
    assert watch_key("GET", "/api/v1/namespaces/d/pods?watch=1") == ("", "v1", "pods", "", "d", "")
    assert watch_key("GET", "/api/v1/namespaces/d/pods") is None

    def jwt(exp: float) -> str:
        body = base64.urlsafe_b64encode(json.dumps({"exp": exp}).encode()).rstrip(b"=").decode()
        return f"e30.{body}.sig"

    def req(token: str):  # noqa: ANN202
        return make_mocked_request("GET", "/", headers={"Authorization": f"Bearer {token}"})

    now = time.time()
    assert unexpired(req(jwt(now + 600)), now)
    assert not unexpired(req(jwt(now - 1)), now)
    assert not unexpired(req("abcdef.0123456789abcdef"), now)
    assert unexpired(req("a-static-token"), now)


async def test_only_a_credential_of_the_cluster_wakes_it(server: SharedServer, tmp_path: Path) -> None:
    """A port scanner, an anonymous health check or another cluster's client neither wakes a
    sleeping cluster nor keeps an awake one from sleeping (vkube.cluster.wakeauth)."""
    import aiohttp

    member = server.members["a"]
    await server.add(ClusterConfig(name="b", data_dir=tmp_path / "b", controllers=False))
    async with ClusterSession(server, "b", sni=None) as other, \
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=False)) as anonymous:
        assert await server.sleep("a")
        for path, code in (("/clusters/a/api", 401), ("/clusters/a/api/v1/pods?watch=1", 401),
                           ("/clusters/a/healthz", 503), ("/clusters/a/version", 503)):
            async with anonymous.get(server.base_url + path) as r:
                assert r.status == code, (path, r.status, await r.text())
        # b's admin certificate at a's path (no server name: the path picks the cluster): the
        # handshake may refuse it already (TLS 1.3 then closes the connection), else a 401
        try:
            async with other.get("/clusters/a/api") as r:
                assert r.status == 401
        except aiohttp.ClientConnectionError:
            pass
        assert member.vc is None and member.state == "Sleeping"
    # a's own credential (its kubeconfig, through kubectl) wakes it
    kubeconfig = tmp_path / "a" / "kubeconfig"
    await kc(kubeconfig, "get", "configmaps")
    assert member.vc is not None


async def test_only_a_token_the_cluster_accepts_wakes_it(server: SharedServer, tmp_path: Path) -> None:
    """A bearer token wakes a sleeping cluster only if its awake server would accept it: a
    service-account JWT of its own key, issuer and audience, in date, whose service account
    still exists; a bootstrap token its Secret makes valid. Garbage, another cluster's token,
    a forged issuer, an expired or future token, one for another audience, a deleted service
    account's or an unknown bootstrap token: 401, still asleep. At an awake cluster only an
    answer other than 401/403 counts as activity."""
    import datetime as dt

    import aiohttp

    from vkube.pki.tokens import SigningKey, TokenIssuer

    member = server.members["a"]
    await server.add(ClusterConfig(name="b", data_dir=tmp_path / "b", controllers=False))
    a_kc, b_kc = tmp_path / "a" / "kubeconfig", tmp_path / "b" / "kubeconfig"
    for name in ("user", "gone"):  # (no controllers: no default service account)
        await kc(a_kc, "create", "serviceaccount", name)
    await kc(b_kc, "create", "serviceaccount", "user")
    real = (await kc(a_kc, "create", "token", "user")).strip()
    gone = (await kc(a_kc, "create", "token", "gone")).strip()
    await kc(a_kc, "delete", "serviceaccount", "gone")
    await kc(a_kc, "create", "secret", "generic", "bootstrap-token-abcdef", "-n", "kube-system",
             "--type=bootstrap.kubernetes.io/token", "--from-literal=token-id=abcdef",
             "--from-literal=token-secret=0123456789abcdef",
             "--from-literal=usage-bootstrap-authentication=true")
    others = (await kc(b_kc, "create", "token", "user")).strip()
    import json

    sa = json.loads(await kc(a_kc, "get", "serviceaccount", "user", "-o", "json"))
    key = SigningKey.from_pem((tmp_path / "a" / "pki" / "sa.key").read_bytes())
    issuer = "https://kubernetes.default.svc.cluster.local"
    now = dt.datetime.now(dt.timezone.utc)
    own = TokenIssuer(issuer, key)
    expired = own.issue(sa, audiences=[issuer], expiration_seconds=600, now=now - dt.timedelta(hours=2))[0]
    future = own.issue(sa, audiences=[issuer], expiration_seconds=3600, now=now + dt.timedelta(hours=2))[0]
    elsewhere = own.issue(sa, audiences=["https://elsewhere.example"])[0]
    forged_iss = TokenIssuer("https://evil.example", key).issue(sa, audiences=[issuer])[0]
    strangers = TokenIssuer(issuer, SigningKey.generate("RS256")).issue(sa, audiences=[issuer])[0]
    refused = {"garbage": "garbage", "b's token": others, "expired": expired, "not yet valid": future,
               "other audience": elsewhere, "other issuer": forged_iss, "other key": strangers,
               "deleted service account": gone, "unknown bootstrap token": "abcdef.0123456789abcdex",
               "other bootstrap id": "zzzzzz.0123456789abcdef", "empty": ""}

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=False)) as client:
        async def get(token: str, path: str = "/clusters/a/api/v1/namespaces/default/configmaps") -> int:
            async with client.get(server.base_url + path, headers={"Authorization": f"Bearer {token}"}) as r:
                return r.status

        # awake: refused tokens are no activity, nor are anonymous health checks; an
        # accepted token is
        member.last_active = 0.0
        for what, token in refused.items():
            assert await get(token) == 401, what
        for path in ("/clusters/a/healthz", "/clusters/a/readyz", "/clusters/a/version"):
            async with client.get(server.base_url + path) as r:
                assert r.status == 200, path
        assert member.last_active == 0.0
        assert await get(real) == 403  # authenticated, not allowed: no activity either
        assert member.last_active == 0.0
        await kc(a_kc, "create", "rolebinding", "user-view", "--clusterrole=view",
                 "--serviceaccount=default:user")
        member.last_active = 0.0
        assert await get(real) == 200
        assert member.last_active > 0.0

        assert await server.sleep("a")
        for what, token in refused.items():
            for path in ("/clusters/a/api", "/clusters/a/api/v1/pods?watch=1&resourceVersion=1"):
                assert await get(token, path) == 401, (what, path)
        assert member.vc is None and member.state == "Sleeping"
        assert await get(real) == 200  # `kubectl create token`'s token wakes it
        assert member.vc is not None

        assert await server.sleep("a")
        # a valid bootstrap token wakes it (its user may not list ConfigMaps: 403, no activity)
        assert await get("abcdef.0123456789abcdef") == 403
        assert member.vc is not None


async def test_watches_are_capped_per_cluster_and_per_credential(tmp_path: Path) -> None:
    """``controlPlane.watches`` caps a cluster's open watches, and separately those held while
    it sleeps, per cluster and per credential: a watch over a cap gets kube-apiserver's
    max-in-flight answer (429, ``Retry-After: 1``, plain text) and nothing is held for it; an
    ended watch frees its place; after a wake the held watches go on."""
    from vkube.syncer.values import load_values

    values = load_values("controlPlane: {mode: shared, watches: {maxPerCluster: 12, maxPerCredential: 8}}")
    server = SharedServer(tmp_path / "shared", sleep_check=0.2)
    await server.start()
    try:
        await server.add(ClusterConfig(name="a", data_dir=tmp_path / "a", controllers=False, values=values))
        member = server.members["a"]
        kubeconfig = tmp_path / "a" / "kubeconfig"
        await kc(kubeconfig, "create", "clusterrolebinding", "carol-view", "--clusterrole=view", "--user=carol")
        async with ClusterSession(server, "a") as admin, \
                ClusterSession(server, "a", user=("carol", ())) as carol:
            async with admin.get(CMS) as r:
                rv = (await r.json())["metadata"]["resourceVersion"]
            watch = {"watch": "1", "resourceVersion": rv}
            streams: list[Any] = []

            async def open_watch(session: ClusterSession) -> int:
                r = await session.get(CMS, params=watch).__aenter__()
                if r.status == 200:
                    streams.append(r)
                else:
                    assert r.headers["Retry-After"] == "1"
                    assert await r.text() == "Too many requests, please try again later.\n"
                    r.release()
                return r.status

            # awake: 8 of admin's, the 9th refused (per credential); carol gets the rest of 12
            assert [await open_watch(admin) for _ in range(9)] == [200] * 8 + [429]
            assert [await open_watch(carol) for _ in range(5)] == [200] * 4 + [429]
            assert member.open_watches.total == 12
            # an ended watch frees its place
            streams.pop(0).close()
            await _until(lambda: member.open_watches.total == 11)
            assert await open_watch(carol) == 200
            assert await open_watch(admin) == 429

            # asleep: the same caps for the re-watches held
            assert await server.sleep("a")
            for r in streams:
                r.close()
            streams.clear()
            await _until(lambda: member.open_watches.total == 0)
            held = [asyncio.ensure_future(_read_events(s, rv)) for s in [admin] * 8 + [carol] * 4]
            await _until(lambda: len(member.parked) == 12)
            for session in (admin, carol):
                async with session.get(CMS, params=watch) as r:
                    assert r.status == 429 and r.headers["Retry-After"] == "1"
            assert len(member.parked) == 12 and member.held_watches.total == 12
            assert member.vc is None and member.held_watches.refused >= 2
            # a wake: every held watch goes on from its version and sees what it brings
            await kc(kubeconfig, "create", "configmap", "woke")
            for got in await asyncio.wait_for(asyncio.gather(*held), 60):
                assert ("ADDED", "woke") in got
            assert member.held_watches.total == 0
            await _until(lambda: member.open_watches.total == 0)
    finally:
        await server.stop()


async def test_no_path_or_method_wakes_it_without_a_credential(server: SharedServer) -> None:
    """Every spelling of a sleeping cluster's paths, every method, an upgrade: without a
    credential of the cluster (none, or garbage) nothing wakes it."""
    import aiohttp

    member = server.members["a"]
    assert await server.sleep("a")
    paths = ["/clusters/a", "/clusters/a/", "/clusters/a?watch=1", "/clusters/a//api/v1/pods",
             "/clusters/a/../a/api", "/clusters/a/%2e%2e/a/api", "/clusters/a/api/v1/pods?watch=1&resourceVersion=1",
             "/clusters/a/healthz?verbose", "/clusters/a/livez/ping", "/clusters/a/readyz/",
             "/clusters/a/.well-known/openid-configuration", "/clusters/a/openid/v1/jwks",
             "/clusters/a/apis", "/clusters/%61/api", "/clusters/A/api", "/clusters/a%2fapi"]
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=False)) as client:
        for headers in ({}, {"Authorization": "Bearer garbage"}, {"Authorization": "Basic YTpi"},
                        {"Authorization": "Bearer a.b.c"}, {"X-Remote-User": "admin", "X-Remote-Group": "system:masters"},
                        {"Connection": "Upgrade", "Upgrade": "websocket", "Authorization": "Bearer x"}):
            for path in paths:
                for method in ("GET", "HEAD", "POST", "OPTIONS", "DELETE"):
                    async with client.request(method, server.base_url + path, headers=headers,
                                              skip_auto_headers=("Content-Type",)) as r:
                        assert r.status in (401, 404, 503), (method, path, headers, r.status)
    assert member.vc is None and member.state == "Sleeping"
