"""``enableHA`` with ``replicas: 3`` on a local ``vkube create``, through the CLI and the real
kubectl, on PostgreSQL and on etcd: three supervised ``vkube serve`` replicas behind one
loopback front that kubectl's context names. ``kill -9`` of the leader: kubectl keeps
answering, another replica leads, the killed one is restarted, the controllers work on the
new leader. ``kill -9`` of the front: it comes back on the same port. ``list``/``describe``
show replicas and leader; pause/resume keep three; ``kill -9`` of the supervisor takes every
replica and the front with it."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.cli.conftest import User
from vkube.cli.process import _alive


def wait(check, *, timeout: float, what: str, delay: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        assert time.monotonic() < deadline, f"{what}: not within {timeout:.0f} s"
        time.sleep(delay)


def replicas(u: User) -> dict[str, Any]:
    return u.describe("ha").get("replicas") or {}


def settled(u: User) -> dict[str, Any] | None:
    """All three replicas serving and one of them leading."""
    r = replicas(u)
    return r if r.get("ready") == 3 and r.get("leader") is not None else None


@pytest.mark.timeout(1200)
def test_local_replicas_survive_kill_9(user: User, shared_store: str, tmp_path: Path):
    values = tmp_path / "values.yaml"
    values.write_text(f"enableHA: true\nreplicas: 3\ncontrolPlane: {{store: '{shared_store}'}}\n")
    user.vkube("create", "ha", "-f", str(values), timeout=300)
    user.kubectl("create", "configmap", "before", "--from-literal=k=v")
    first = wait(lambda: settled(user), timeout=120, what="3 replicas and a leader")
    pids = {m["pid"] for m in first["members"]}
    assert len(pids) == 3 and None not in pids
    row = user.list()["ha"]
    assert row["status"] == "Running" and row["replicas"]["wanted"] == 3
    assert "REPLICAS" in user.vkube("list").stdout.splitlines()[0]
    text = user.vkube("describe", "ha").stdout
    assert "Replicas:" in text and "(leader)" in text
    logs = user.vkube("logs", "ha").stdout  # one log, each line saying whose it is
    assert all(f"[replica-{i}]" in logs for i in range(3)), logs[-2000:]

    # kill -9 the leader: the front sends kubectl to a live replica at once
    killed = first["members"][first["leader"]]["pid"]
    os.kill(killed, signal.SIGKILL)
    for i in range(3):
        user.kubectl("create", "configmap", f"during-{i}", "--from-literal=k=v")
    assert user.kubectl("get", "configmap", "before", "-o", "jsonpath={.data.k}").stdout == "v"
    after = wait(lambda: (r := settled(user)) and killed not in {m["pid"] for m in r["members"]}
                 and r, timeout=180, what="a new leader and the killed replica restarted")
    holder = after["members"][after["leader"]]["pid"]
    assert holder != killed
    # the controllers run on the new leader: a Deployment gets its ReplicaSet and pods
    user.kubectl("create", "deployment", "web", "--image=nginx", "--replicas=2")
    wait(lambda: len(json.loads(user.kubectl("get", "pods", "-l", "app=web", "-o", "json")
                                .stdout)["items"]) == 2, timeout=180, what="2 pods of web")

    # kill -9 the front: the supervisor starts it again on the cluster's port
    url = row["url"]
    front = [p for p in user.describe("ha")["process"]["pids"]
             if p not in {m["pid"] for m in after["members"]}][1:]  # [supervisor, front]
    assert len(front) == 1
    os.kill(front[0], signal.SIGKILL)
    wait(lambda: user.kubectl("get", "configmap", "during-2", "-o", "name",
                              check=False).returncode == 0, timeout=60, what="the front back")
    assert user.list()["ha"]["url"] == url

    # pause stops all of them; resume starts three again, on the same address
    everything = user.describe("ha")["process"]["pids"]
    user.vkube("pause", "ha", timeout=180)
    assert user.list()["ha"]["status"] == "Paused"
    assert not any(_alive(p) for p in everything)
    user.vkube("resume", "ha", timeout=300)
    wait(lambda: settled(user), timeout=120, what="3 replicas after resume")
    assert user.list()["ha"]["url"] == url
    names = user.kubectl("get", "configmaps", "-o", "name").stdout.split()
    assert {"configmap/before", "configmap/during-0", "configmap/during-2"} <= set(names)

    # kill -9 the supervisor: its replicas and front go with it (none left serving the
    # store unsupervised); list says so; delete still cleans up
    everything = user.describe("ha")["process"]["pids"]
    assert len(everything) == 5  # supervisor, three replicas, front
    os.kill(everything[0], signal.SIGKILL)
    wait(lambda: not any(_alive(p) for p in everything), timeout=60,
         what="the replicas and the front gone with their supervisor")
    assert user.list()["ha"]["status"] == "Failed"
    out = user.vkube("delete", "ha", timeout=180).stdout
    # the store is the user's database: delete leaves its data and says how to remove it
    tool = "psql" if shared_store.startswith("postgres") else "etcdctl"
    assert "ha's objects are still in the store" in out and tool in out, out
    if tool == "psql" and shutil.which("psql"):  # and the command it gives does remove them
        command = out.split("remove them with: ", 1)[1].strip()
        subprocess.run(command, shell=True, check=True, capture_output=True, timeout=60)
        left = subprocess.run(["psql", shared_store, "-Atc", "SELECT to_regclass('kv')"],
                              check=True, capture_output=True, text=True, timeout=60).stdout
        assert left.strip() == "", left
    assert "ha" not in user.list()
