"""`vkube host stop` never leaves virtual clusters saying Running on a host that is gone: it
refuses while they run on it (`--force` pauses them first), and a host that went away anyway
shows in `list` and `describe`."""

from __future__ import annotations

import os
import signal

import pytest

from tests.cli.conftest import User, alive, eventually
from tests.conftest import kubectl


def _host_pid(u: User) -> int:
    return int((u.home / "host" / "host.pid").read_text().strip())


def _gone(pid: int) -> None:
    assert not alive(pid)


def _status(u: User, name: str, want: str) -> None:
    assert u.list()[name]["status"] == want


@pytest.mark.timeout(600)  # a long user walk; past 300 s on a loaded machine
def test_host_stop_refuses_under_running_clusters_and_force_pauses_them(user: User) -> None:
    user.vkube("create", "alpha", "--connect=false")
    user.vkube("create", "beta", "--connect=false")
    user.vkube("pause", "beta")  # a paused cluster is not in the way

    out = user.vkube("host", "stop", check=False)
    assert out.returncode == 1 and len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert "alpha" in out.stderr and "beta" not in out.stderr
    assert "vkube pause alpha" in out.stderr and "vkube host stop --force" in out.stderr
    pid = _host_pid(user)
    assert alive(pid) and user.vkube("host", "status").returncode == 0
    assert user.list()["alpha"]["status"] == "Running"

    # a host that goes away under a running cluster (killed, crashed): list and describe say so
    os.kill(pid, signal.SIGTERM)
    eventually(lambda: _gone(pid), timeout=60)
    assert user.list()["alpha"]["status"] == "Running (host unreachable)"
    assert user.list()["beta"]["status"] == "Paused"
    line = next(ln for ln in user.vkube("list").stdout.splitlines() if ln.startswith("alpha "))
    assert "(host unreachable)" in line
    doc = user.describe("alpha")
    assert doc["status"] == "Running (host unreachable)" and doc["hostReachable"] is False
    text = user.vkube("describe", "alpha").stdout
    assert "not reachable: start it with `vkube host start`" in text

    user.vkube("host", "start")
    eventually(lambda: _status(user, "alpha", "Running"), timeout=60)
    pid = _host_pid(user)

    # --force: the clusters are paused first (their workloads off the host, data kept)
    out = user.vkube("host", "stop", "--force", timeout=180)
    assert "pausing alpha" in out.stdout and "vkube host stopped" in out.stdout, out.stdout
    assert not alive(pid) and user.vkube("host", "status", check=False).returncode == 3
    assert user.list()["alpha"]["status"] == "Paused"

    # delete with the host down: refused (its host side would be orphaned), or --force names
    # what stays there and the command that removes it later
    out = user.vkube("delete", "beta", check=False)
    assert out.returncode == 1 and len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert "vkube host start" in out.stderr and "vkube delete beta --force" in out.stderr
    assert "beta" in user.list()
    out = user.vkube("delete", "beta", "--force")
    assert "left on it: namespace vkube-beta" in out.stdout, out.stdout
    assert "ClusterRole/ClusterRoleBinding vkube-vkube-beta.beta" in out.stdout
    assert "`vkube delete beta`" in out.stdout and "beta deleted" in out.stdout
    assert "beta" not in user.list()

    user.vkube("resume", "alpha", timeout=180)  # starts the embedded host again
    assert user.list()["alpha"]["status"] == "Running"
    host = user.home / "host" / "kubeconfig"
    assert kubectl(host, "get", "ns", "vkube-beta", check=False).returncode == 0
    out = user.vkube("delete", "beta")  # found on the host by its namespace
    assert "removed beta's host side" in out.stdout

    def ns_gone() -> None:
        assert kubectl(host, "get", "ns", "vkube-beta", check=False).returncode != 0

    eventually(ns_gone, timeout=60, delay=0.5)
    assert "vkube-vkube-beta.beta" not in kubectl(host, "get", "clusterrolebindings", "-o",
                                                  "name").stdout
