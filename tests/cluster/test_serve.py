"""``vkube serve`` builds its cluster through ``VirtualCluster``: the flags become one
configuration (bad ones are one-line errors), and a component that fails ends the process
with a non-zero code — for its supervisor to restart — instead of leaving half a cluster."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def serve(tmp_path: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "VKUBE_HOME": str(tmp_path / "home"),
           "KUBECONFIG": str(tmp_path / "kubeconfig")}
    return subprocess.run([sys.executable, "-m", "vkube", "serve", "--data-dir",
                           str(tmp_path / "data"), *args], env=env, capture_output=True,
                          text=True, timeout=timeout)


def test_values_without_a_host_are_refused_in_one_line(tmp_path: Path) -> None:
    values = tmp_path / "values.yaml"
    values.write_text("sync: {nodes: {enableScheduler: true}}\n")
    proc = serve(tmp_path, "-f", str(values))
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "vkube serve: -f/--values configures the syncer of a virtual cluster: give "
        "--host-kubeconfig or --host-from too, or drop -f"]
    assert not (tmp_path / "data").exists()  # refused before anything started


def test_an_unknown_values_key_is_named(tmp_path: Path) -> None:
    values = tmp_path / "values.yaml"
    values.write_text("sync: {nodes: {enableSchedular: true}}\n")
    proc = serve(tmp_path, "--host-kubeconfig", str(tmp_path / "kc"), "-f", str(values))
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "sync.nodes.enableSchedular: unknown key" in lines[0]


def test_a_failing_component_ends_serve_with_an_error(tmp_path: Path) -> None:
    # the API starts; the syncer cannot (its host kubeconfig is missing): the process exits
    # non-zero, with the API stopped and the ready file gone
    proc = serve(tmp_path, "--host-kubeconfig", str(tmp_path / "missing-kubeconfig"))
    assert proc.returncode == 1, proc.stderr
    assert "serving at https://127.0.0.1:" in proc.stderr
    assert "stopped: a component failed" in proc.stderr
    assert "missing-kubeconfig" in proc.stderr
    assert not (tmp_path / "data" / "ready").exists()


def test_pods_without_a_host_say_why_they_stay_pending(tmp_path: Path) -> None:
    """``vkube serve`` without a host runs no pods; a pod says so, as kube-scheduler says it of
    a cluster without nodes (FailedScheduling, PodScheduled=False), in ``kubectl describe``."""
    import json
    import signal
    import time

    from tests.conftest import kubectl

    data = tmp_path / "data"
    env = {**os.environ, "VKUBE_HOME": str(tmp_path / "home"), "KUBECONFIG": str(tmp_path / "kubeconfig")}
    proc = subprocess.Popen([sys.executable, "-m", "vkube", "serve", "--data-dir", str(data), "--port", "0"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while not (data / "ready").exists():
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else "serve exited"
            assert time.monotonic() < deadline, "vkube serve did not become ready"
            time.sleep(0.1)
        kc = data / "kubeconfig"
        kubectl(kc, "run", "web", "--image=nginx")

        def described() -> str:
            out = kubectl(kc, "describe", "pod", "web").stdout
            assert "FailedScheduling" in out, out
            return out

        deadline = time.monotonic() + 90
        while True:
            try:
                out = described()
                break
            except AssertionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        assert "Warning  FailedScheduling" in out and "no nodes available to schedule pods" in out, out
        assert "has no host cluster to run them" in out, out
        pod = json.loads(kubectl(kc, "get", "pod", "web", "-o", "json").stdout)
        cond = next(c for c in pod["status"]["conditions"] if c["type"] == "PodScheduled")
        assert (cond["status"], cond["reason"]) == ("False", "Unschedulable"), cond
        assert cond["message"].startswith("no nodes available to schedule pods: "), cond
        assert pod["status"]["phase"] == "Pending"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
