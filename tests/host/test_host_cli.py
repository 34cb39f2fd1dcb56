"""`vkube host start|status|stop` as a user runs them: real background processes."""

from __future__ import annotations

import base64
import os
import subprocess
import sys

import yaml

from tests.conftest import kubectl


def vkube(home, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "VKUBE_HOME": str(home), **(env or {})}
    return subprocess.run([sys.executable, "-m", "vkube.cli.main", "host", *args], env=env,
                          capture_output=True, text=True, timeout=120)


def imported(importtime: str) -> set[str]:
    """The modules a ``python -X importtime`` run imported (from its stderr)."""
    return {line.rsplit("|", 1)[1].strip() for line in importtime.splitlines()
            if line.startswith("import time:") and "|" in line}


def test_start_status_stop_and_restart_keeps_data(tmp_path):
    home = tmp_path / "home"
    try:
        out = vkube(home, "start", "--nodes", "2", "--node-cpu", "2", env={"PYTHONPROFILEIMPORTTIME": "1"})
        assert out.returncode == 0, out.stderr
        # the command only checks its flags and starts the host process: the API server,
        # controllers and syncer (and asyncio) are that process's to import (~0.4 s of CPU otherwise)
        mods = imported(out.stderr)
        assert "vkube.cluster.config" in mods  # the check sees what the command imported
        assert not {m for m in mods if m.split(".")[:2] in (["vkube", "apiserver"], ["vkube", "controllers"],
                                                            ["vkube", "syncer"]) or m == "asyncio"}, sorted(mods)
        # the host process (its stderr is host.log) up to ready: dnspython waits for the
        # first DNS query a simulated container sends
        log = (home / "host" / "host.log").read_text()
        assert "vkube host ready" in log
        host_mods = imported(log.split("vkube host ready")[0])
        assert "vkube.apiserver.server" in host_mods and "vkube.host.network" in host_mods
        assert not {m for m in host_mods if m.split(".")[0] == "dns"}, sorted(host_mods)
        kubeconfig = home / "host" / "kubeconfig"
        assert kubeconfig.exists() and "running at https://127.0.0.1:" in out.stdout
        again = vkube(home, "start")
        assert again.returncode == 0 and "already running" in again.stdout
        # the same settings again: nothing to do; other settings: refused, naming each flag
        same = vkube(home, "start", "--nodes", "2", "--node-cpu", "2", "--node-memory", "8Gi")
        assert same.returncode == 0 and "already running" in same.stdout, same.stderr
        for flags, named in ((["--nodes", "5"], ["--nodes 5"]),
                             (["--node-cpu", "2", "--node-memory", "16Gi"], ["--node-memory 16Gi"]),
                             (["--nodes", "3", "--node-devices", "gpu.example.com=2"],
                              ["--nodes 3", "--node-devices gpu.example.com=2"])):
            diff = vkube(home, "start", *flags)
            assert diff.returncode == 1 and diff.stdout == "", (flags, diff.stdout)
            assert len(diff.stderr.strip().splitlines()) == 1, diff.stderr
            assert all(n in diff.stderr for n in named), diff.stderr
            assert "--node-cpu 2 (" not in diff.stderr  # an equal flag is not named
            assert "vkube host stop && vkube host start " + " ".join(flags) in diff.stderr
        status = vkube(home, "status")
        assert status.returncode == 0
        assert "vkube-host-node-1  Ready" in status.stdout and "nodes:      2" in status.stdout
        nodes = kubectl(kubeconfig, "get", "nodes", "-o", "jsonpath={.items[*].status.capacity.cpu}").stdout
        assert nodes.split() == ["2", "2"]
        cm = '{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "keep"}, "data": {"a": "b"}}'
        kubectl(kubeconfig, "create", "-f", "-", input=cm)
        port = out.stdout.split("https://127.0.0.1:")[1].split()[0]
        # the kubeconfig verifies the server and embeds its credentials; no credentials → 401
        kc = yaml.safe_load(kubeconfig.read_text())
        assert {"certificate-authority-data", "server"} <= set(kc["clusters"][0]["cluster"])
        assert "insecure-skip-tls-verify" not in kc["clusters"][0]["cluster"]
        assert {"client-certificate-data", "client-key-data"} <= set(kc["users"][0]["user"])
        ca = tmp_path / "ca.crt"
        ca.write_bytes(base64.b64decode(kc["clusters"][0]["cluster"]["certificate-authority-data"]))
        anon = subprocess.run(["curl", "-s", "--cacert", str(ca), "-w", " %{http_code}",
                               f"https://127.0.0.1:{port}/api/v1/nodes"], capture_output=True, text=True)
        assert anon.stdout.endswith(" 401") and '"reason":"Unauthorized"' in anon.stdout
        assert vkube(home, "stop").returncode == 0
        assert "not running" in vkube(home, "status").stdout
        assert vkube(home, "start", "--nodes", "2").returncode == 0
        assert kubectl(kubeconfig, "get", "configmap", "keep", "-o", "jsonpath={.data.a}").stdout == "b"
        assert port in kubeconfig.read_text()
        assert (home / "host" / "host.log").stat().st_size > 0
    finally:
        vkube(home, "stop")
    assert "not running" in vkube(home, "stop").stdout
