"""etcd going away under a running store and under ``vkube serve``, and etcd over TLS — each on
an etcd of the test's own, which it stops and starts (same ports, same data).

While etcd is unreachable a request waits for it (as etcd's client does for kube-apiserver),
so a restart costs latency, not errors; an outage longer than the request timeout is one
clean 500 ("request timed out"), never a hang or a traceback. Watches resume from the last
revision they delivered: nothing lost, nothing twice, no relist."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import vkube.store.etcd as etcd_store
from tests.conftest import KUBECTL, kubectl
from vkube.store import open_store
from vkube.store.base import BackendError

from .certs import make_pki
from .servers import EtcdServer
from .test_serve_backends import stop


def _server(directory: Path, tls: tuple[str, str, str] | None = None) -> Iterator[EtcdServer]:
    try:
        server = EtcdServer(str(directory), tls=tls)
    except FileNotFoundError as exc:
        pytest.skip(f"etcd outage tests need the etcd binary: {exc}")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def etcd(tmp_path: Path) -> Iterator[EtcdServer]:
    yield from _server(tmp_path)


async def collect(it, n: int, timeout: float = 60) -> list:
    out = []
    while len(out) < n:
        out.append(await asyncio.wait_for(it.__anext__(), timeout))
    return out


async def test_store_rides_out_an_etcd_restart(etcd: EtcdServer) -> None:
    store = open_store(etcd.url + "/outage")
    await store.start()
    try:
        it = store.watch("/r/", after_revision=await store.current_revision())
        before = [await store.create(f"/r/a{i}", b"v") for i in range(3)]
        assert [e.revision for e in await collect(it, 3)] == [kv.mod_revision for kv in before]
        await asyncio.to_thread(etcd.stop)
        during = asyncio.create_task(store.create("/r/during", b"v"))  # waits for etcd
        await asyncio.sleep(2)
        assert not during.done()
        await asyncio.to_thread(etcd.start)
        written = [await asyncio.wait_for(during, 60)]
        written += [await store.create(f"/r/c{i}", b"v") for i in range(3)]
        events = await collect(it, len(written))
        assert [e.revision for e in events] == [kv.mod_revision for kv in written]
        assert [e.kv.key for e in events] == ["/r/during", "/r/c0", "/r/c1", "/r/c2"]
        await it.aclose()
    finally:
        await store.close()


async def test_an_outage_longer_than_the_timeout_is_a_clean_error(
        etcd: EtcdServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(etcd_store, "_TIMEOUT", 2.0)
    store = open_store(etcd.url + "/long")
    await store.start()
    try:
        await store.create("/k/a", b"v")
        await asyncio.to_thread(etcd.stop)
        with pytest.raises(BackendError, match="request timed out: no answer within 2s"):
            await store.create("/k/b", b"v")
        with pytest.raises(BackendError, match="request timed out"):
            await store.get("/k/a")
        await asyncio.to_thread(etcd.start)
        assert (await store.get("/k/a")) is not None
        await store.create("/k/b", b"v")
    finally:
        await store.close()


def test_vkube_serve_through_an_etcd_restart_and_a_long_outage(etcd: EtcdServer,
                                                               tmp_path: Path) -> None:
    """kubectl against ``vkube serve --store etcd://``: a watch stays open across an etcd
    restart and sees what was written after it; a create during a short outage succeeds once
    etcd is back; one during an outage longer than the request timeout (30 s) is a 500 that
    says so."""
    data = tmp_path / "cp"
    data.mkdir()
    proc = _serve_with(data, etcd.url + "/serve", [])
    kc = data / "kubeconfig"
    env = {**os.environ, "KUBECONFIG": str(kc), "KUBECTL_KUBERC": "false"}
    watch = subprocess.Popen([KUBECTL, "get", "configmaps", "--watch", "-o", "name"],
                             stdout=subprocess.PIPE, text=True, env=env)
    seen: list[str] = []
    threading.Thread(target=lambda: seen.extend(iter(watch.stdout.readline, "")),  # type: ignore[union-attr]
                     daemon=True).start()

    def sees(name: str) -> None:
        deadline = time.monotonic() + 90
        while f"configmap/{name}\n" not in seen:
            assert time.monotonic() < deadline, f"the watch did not see {name}: {seen}"
            assert watch.poll() is None, f"the watch ended: {seen}"
            time.sleep(0.05)

    try:
        kubectl(kc, "create", "configmap", "first")
        sees("first")
        # a short outage: the create waits for etcd and succeeds; the watch goes on
        etcd.stop()
        create = subprocess.Popen([KUBECTL, "create", "configmap", "during"], env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(2)
        etcd.start()
        out, err = create.communicate(timeout=90)
        assert create.returncode == 0, err
        sees("during")
        # longer than the request timeout: a clean 500 naming it, and serve keeps running
        etcd.stop()
        failed = kubectl(kc, "create", "configmap", "lost", check=False, timeout=120)
        assert failed.returncode == 1
        assert "Internal error occurred: storage error: etcd" in failed.stderr, failed.stderr
        assert "request timed out: no answer within 30s" in failed.stderr, failed.stderr
        assert proc.poll() is None
        etcd.start()
        kubectl(kc, "create", "configmap", "after")
        sees("after")
        names = set(kubectl(kc, "get", "configmaps", "-o", "name").stdout.split())
        assert {"configmap/first", "configmap/during", "configmap/after"} <= names
    finally:
        watch.kill()
        watch.wait()
        stop(proc)
    log = (data / "serve.log").read_text()
    assert "Traceback" not in log, log[-3000:]


@pytest.fixture
def pki(tmp_path: Path) -> dict[str, str]:
    return make_pki(tmp_path / "pki")


@pytest.fixture
def tls_etcd(tmp_path: Path, pki: dict[str, str]) -> Iterator[EtcdServer]:
    yield from _server(tmp_path, tls=(pki["ca"], pki["server"], pki["server_key"]))


async def test_tls_etcd_with_client_certificates(tls_etcd: EtcdServer, pki: dict[str, str],
                                                 tmp_path: Path) -> None:
    good = {"ca_file": pki["ca"], "cert_file": pki["client"], "key_file": pki["client_key"]}
    store = open_store(tls_etcd.url + "/tls", **good)
    await store.start()
    try:
        it = store.watch("/t/", after_revision=await store.current_revision())
        kv = await store.create("/t/a", b"secret")
        assert (await store.get("/t/a")).value == b"secret"  # type: ignore[union-attr]
        assert [e.revision for e in await collect(it, 1)] == [kv.mod_revision]
        await it.aclose()
    finally:
        await store.close()
    # no client certificate, or a CA that did not sign the server's: refused at start, at once
    other = make_pki(tmp_path / "other", ca_name="someone-else")
    for options in ({"ca_file": pki["ca"]},
                    {**good, "ca_file": other["ca"]},
                    {"ca_file": pki["ca"], "cert_file": other["client"],
                     "key_file": other["client_key"]}):
        bad = open_store(tls_etcd.url + "/tls", **options)
        began = time.monotonic()
        with pytest.raises(BackendError, match="cannot reach"):
            await bad.start()
        assert time.monotonic() - began < 25  # failed fast, not after waiting for the timeout


def test_vkube_serve_on_tls_etcd(tls_etcd: EtcdServer, pki: dict[str, str],
                                 tmp_path: Path) -> None:
    data = tmp_path / "cp"
    data.mkdir()
    flags = ["--etcd-cafile", pki["ca"], "--etcd-certfile", pki["client"],
             "--etcd-keyfile", pki["client_key"]]
    proc = _serve_with(data, tls_etcd.url + "/serve-tls", flags)
    try:
        kc = data / "kubeconfig"
        kubectl(kc, "create", "configmap", "over-tls", "--from-literal=k=v")
        assert kubectl(kc, "get", "configmap", "over-tls", "-o",
                       "jsonpath={.data.k}").stdout == "v"
    finally:
        stop(proc)
    # and without the client certificate: one clear error naming the store
    out = subprocess.run([sys.executable, "-m", "vkube", "serve", "--data-dir", str(data),
                          "--store", tls_etcd.url + "/serve-tls", "--etcd-cafile", pki["ca"]],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "cannot reach" in out.stderr, out.stderr
    assert "Traceback" not in out.stderr


def _serve_with(data: Path, store: str, flags: list[str]) -> subprocess.Popen[bytes]:
    """``vkube serve`` until ready, its log in ``data/serve.log`` (a pipe nobody reads would
    fill up and block it)."""
    with open(data / "serve.log", "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "vkube", "serve", "--data-dir",
                                 str(data), "--port", "0", "--store", store, *flags],
                                stdout=subprocess.DEVNULL, stderr=log)
    deadline = time.monotonic() + 60
    while not (data / "ready").exists():
        if proc.poll() is not None:
            raise AssertionError((data / "serve.log").read_text()[-3000:])
        assert time.monotonic() < deadline, "vkube serve did not become ready"
        time.sleep(0.05)
    return proc
