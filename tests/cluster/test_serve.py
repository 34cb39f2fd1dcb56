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
