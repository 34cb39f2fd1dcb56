"""``vkube serve --store ...`` end to end on every backend: the real kubectl creates, gets and
watches; objects survive a restart; ``kill -9`` during 2,000 acknowledged creates (made with the
official ``kubernetes`` client) loses none of them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import kubernetes
import pytest

from tests.conftest import KUBECTL, kubectl

from .conftest import fresh_postgres_database

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(params=["sqlite", "postgres", "etcd"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[str]:
    """The ``--store`` value for a fresh, empty store of each backend."""
    if request.param == "sqlite":
        yield "sqlite"
    elif request.param == "postgres":
        async for url in fresh_postgres_database(request.getfixturevalue("postgres_server")):
            yield url
    else:
        yield f"{request.getfixturevalue('etcd_server')}/vkube-serve-{uuid.uuid4().hex[:12]}"


def serve(data: Path, store: str) -> subprocess.Popen[bytes]:
    """``vkube serve --store STORE`` until ready (its ``ready`` file appears)."""
    (data / "ready").unlink(missing_ok=True)
    proc = subprocess.Popen(
        [sys.executable, "-m", "vkube", "serve", "--data-dir", str(data), "--port", "0",
         "--store", store],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(REPO)})
    deadline = time.monotonic() + 60
    while not (data / "ready").exists():
        if proc.poll() is not None:
            raise AssertionError(proc.stderr.read().decode() if proc.stderr else "serve exited")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("vkube serve did not become ready")
        time.sleep(0.05)
    return proc


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def running() -> Iterator[list[subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for proc in procs:
        stop(proc)


def _cm(name: str) -> str:
    return ('{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"%s","namespace":"default"},'
            '"data":{"k":"v"}}' % name)


def test_kubectl_create_get_watch_and_restart(store: str, tmp_path: Path,
                                              running: list[subprocess.Popen[bytes]]) -> None:
    data = tmp_path / "cp"
    data.mkdir()
    running.append(serve(data, store))
    kubeconfig = data / "kubeconfig"
    kubectl(kubeconfig, "create", "-f", "-", input=_cm("first"))
    assert kubectl(kubeconfig, "get", "cm", "first", "-o", "name").stdout.strip() == \
        "configmap/first"
    watch = subprocess.Popen(
        [KUBECTL, "get", "configmaps", "--watch", "-o", "name", "--request-timeout", "60s"],
        stdout=subprocess.PIPE, text=True,
        env={**os.environ, "KUBECONFIG": str(kubeconfig), "KUBECTL_KUBERC": "false"})
    try:
        assert watch.stdout is not None
        seen: list[str] = []
        reader = threading.Thread(target=lambda: seen.extend(iter(watch.stdout.readline, "")),
                                  daemon=True)
        reader.start()
        deadline = time.monotonic() + 60
        while "configmap/first\n" not in seen:  # the initial list
            assert time.monotonic() < deadline, seen
            time.sleep(0.05)
        kubectl(kubeconfig, "create", "-f", "-", input=_cm("second"))
        while "configmap/second\n" not in seen:  # the watch event
            assert time.monotonic() < deadline, seen
            time.sleep(0.05)
    finally:
        watch.kill()
        watch.wait()
    stop(running.pop())
    running.append(serve(data, store))
    names = kubectl(kubeconfig, "get", "cm", "-o", "name").stdout.split()
    assert {"configmap/first", "configmap/second"} <= set(names)


def test_kill_9_during_2000_acknowledged_creates_loses_none(
        store: str, tmp_path: Path, running: list[subprocess.Popen[bytes]]) -> None:
    data = tmp_path / "cp"
    data.mkdir()
    proc = serve(data, store)
    running.append(proc)
    url = (data / "ready").read_text().strip()
    acked: list[str] = []
    lock = threading.Lock()
    halt = threading.Event()

    def creator(worker: int) -> None:
        cfg = kubernetes.client.Configuration()  # as users configure it: the kubeconfig
        kubernetes.config.load_kube_config(config_file=str(data / "kubeconfig"), client_configuration=cfg)
        assert cfg.host == url
        cfg.retries = False
        with kubernetes.client.ApiClient(cfg) as api:
            core = kubernetes.client.CoreV1Api(api)
            i = 0
            while not halt.is_set():
                name = f"w{worker}-{i}"
                try:
                    core.create_namespaced_config_map("default", {
                        "metadata": {"name": name}, "data": {"k": name}}, _request_timeout=30)
                except Exception:  # the server died under us: unacknowledged
                    return
                with lock:
                    acked.append(name)
                i += 1

    with ThreadPoolExecutor(8) as pool:
        for w in range(8):
            pool.submit(creator, w)
        deadline = time.monotonic() + 300
        while len(acked) < 2000:
            assert time.monotonic() < deadline, f"only {len(acked)} creates acknowledged"
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)  # creates are still in flight
        proc.wait()
        halt.set()
    running.remove(proc)
    running.append(serve(data, store))
    names = set(kubectl(kubeconfig := data / "kubeconfig", "get", "cm", "-o", "name",
                        timeout=120).stdout.split())
    lost = [name for name in acked if f"configmap/{name}" not in names]
    assert len(acked) >= 2000
    assert not lost, f"{len(lost)} acknowledged creates lost, e.g. {lost[:5]}"
    assert kubeconfig.exists()


@pytest.mark.parametrize("store, message", [
    ("mysql://db", "unknown store URL scheme 'mysql'"),
    ("etcd://nohostport", "is not HOST:PORT"),
    ("postgres://127.0.0.1:1/db", "cannot open"),
])
def test_bad_store_is_one_clear_error(tmp_path: Path, store: str, message: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "vkube", "serve", "--data-dir", str(tmp_path), "--store", store],
        capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert "next: check --store" in proc.stderr
