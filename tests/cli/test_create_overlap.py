"""``vkube create`` starts the control plane before it knows the host (``serve --host-from``):
a create that fails afterwards leaves nothing behind, and the syncer starts once the host is
named — also after the supervisor restarts serve."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.cli.conftest import User, alive, cleanup, eventually, make_user
from tests.conftest import kubectl

POD = "{apiVersion: v1, kind: Pod, metadata: {name: %s, namespace: default}, " \
      "spec: {containers: [{name: c, image: nginx}]}}"


def processes_under(root: Path) -> list[str]:
    """Command lines of live processes that mention ``root`` (our control planes do)."""
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            state = (d / "stat").read_text().rsplit(")", 1)[-1].split()[0]
        except OSError:
            continue
        if str(root) in cmd and state != "Z":
            out.append(cmd)
    return out


def assert_nothing_left(u: User, name: str) -> None:
    assert not (u.home / "clusters" / name).exists()
    assert processes_under(u.home / "clusters" / name) == []
    assert name not in u.list()


def host_pod_names(host: Path, ns: str) -> list[str]:
    out = kubectl(host, "get", "pods", "-n", ns, "-o", "json").stdout
    return sorted(p["metadata"]["name"] for p in json.loads(out)["items"])


def test_failed_creates_leave_nothing_behind(shared_host, tmp_path):
    u = make_user(tmp_path / "u")
    try:
        out = u.vkube("create", "lost", "--host-kubeconfig", str(u.kubeconfig), check=False)
        assert out.returncode == 1 and "no host cluster reachable at" in out.stderr
        assert_nothing_left(u, "lost")

        values = tmp_path / "v.yaml"
        values.write_text("sync:\n  nodes: {syncAll: true}\n")
        out = u.vkube("create", "badvalues", "-f", str(values), "--host-kubeconfig",
                      str(shared_host), check=False)
        assert out.returncode == 1 and "sync.nodes.syncAll: unknown key" in out.stderr
        assert_nothing_left(u, "badvalues")

        u.vkube("create", "owner", "-n", "contested", "--host-kubeconfig", str(shared_host),
                "--connect=false")
        out = u.vkube("create", "intruder", "-n", "contested", "--host-kubeconfig",
                      str(shared_host), check=False)
        assert out.returncode == 1
        assert "host namespace 'contested' already belongs to virtual cluster 'owner'" in out.stderr
        assert_nothing_left(u, "intruder")
        ns = json.loads(kubectl(shared_host, "get", "ns", "contested", "-o", "json").stdout)
        assert ns["metadata"]["labels"]["vkube.io/vcluster"] == "owner"
        assert u.list()["owner"]["status"] == "Running"
        assert u.current_context() == "previous"
    finally:
        cleanup(u)


def test_syncer_starts_once_the_host_is_named_and_after_a_restart(shared_host, tmp_path):
    u = make_user(tmp_path / "u")
    try:
        u.vkube("create", "late", "--host-kubeconfig", str(shared_host))
        host_file = json.loads((u.home / "clusters" / "late" / "host.json").read_text())
        # the syncer gets its own confined credential (a ServiceAccount token), not the user's
        assert host_file == {"kubeconfig": str(u.home / "clusters" / "late" / "host-syncer.kubeconfig"),
                             "context": "vkube-syncer", "namespace": "vkube-late", "kind": "kubeconfig"}
        supervisor, serve = u.describe("late")["process"]["pids"]
        cmd = Path(f"/proc/{serve}/cmdline").read_bytes().split(b"\0")
        assert b"--host-from" in cmd and b"--host-kubeconfig" not in cmd

        u.kubectl("apply", "-f", "-", input=POD % "first")

        def synced(*names: str) -> None:
            got = host_pod_names(shared_host, "vkube-late")
            assert len(got) == len(names) and all(any(n in g for g in got) for n in names), got

        eventually(lambda: synced("first"))
        os.kill(serve, signal.SIGKILL)  # the supervisor starts serve again with --host-from

        def restarted() -> None:
            pids = u.describe("late")["process"]["pids"]
            assert len(pids) == 2 and pids[0] == supervisor and pids[1] != serve

        eventually(restarted)
        eventually(lambda: u.kubectl("apply", "-f", "-", input=POD % "second"))
        eventually(lambda: synced("first", "second"))
    finally:
        cleanup(u)


def test_a_killed_supervisor_takes_its_control_plane_with_it(shared_host, tmp_path):
    """``kill -9`` of a cluster's supervisor: the kernel sends serve SIGTERM and it goes (no
    unsupervised serve left on the store); ``vkube list`` says Failed; ``resume`` brings the
    cluster back with its objects."""
    u = make_user(tmp_path / "u")
    try:
        u.vkube("create", "orphan", "--host-kubeconfig", str(shared_host))
        u.kubectl("create", "configmap", "kept", "--from-literal=a=b")
        supervisor, serve = u.describe("orphan")["process"]["pids"]
        os.kill(supervisor, signal.SIGKILL)

        def gone() -> None:
            assert not alive(serve) and not alive(supervisor)
            assert processes_under(u.home / "clusters" / "orphan") == []

        eventually(gone, timeout=60)
        assert u.list()["orphan"]["status"] == "Failed"
        u.vkube("resume", "orphan")
        assert u.list()["orphan"]["status"] == "Running"
        out = u.kubectl("get", "configmap", "kept", "-o", "jsonpath={.data.a}").stdout
        assert out == "b"
    finally:
        cleanup(u)


def test_create_spawns_before_importing_asyncio_or_the_http_client():
    """What `vkube create` imports before it starts the control plane stays light: asyncio
    and aiohttp cost ~0.2 s, which the control plane's start-up now hides."""
    code = ("import sys\n"
            "from vkube.cli.main import build_parser\n"
            "build_parser()\n"
            "import vkube.cli.create_cmd\n"
            "print(sorted(m for m in ('asyncio', 'aiohttp', 'yaml', 'ssl') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
