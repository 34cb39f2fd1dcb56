"""One process per data directory: concurrent ``vkube create`` start one embedded host and use
it (one with ``syncAllNodes`` returns once the host nodes are there); a second host, dedicated
``serve`` or shared server started by hand on a directory that is in use refuses in one line
naming the pid that holds it."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.cli.conftest import User, eventually
from tests.cli.test_create_overlap import POD, processes_under
from tests.conftest import kubectl


def _hosts(u: User) -> list[str]:
    return [c for c in processes_under(u.home) if "vkube.cli.hosting" in c]


@pytest.mark.timeout(600)
def test_concurrent_creates_share_one_embedded_host_and_second_servers_refuse(user: User, tmp_path):
    nodes = tmp_path / "nodes.yaml"  # create returns once what the values ask for is there
    nodes.write_text("sync:\n  nodes: {enabled: true, syncAllNodes: true}\n")
    creates = [["create", "qa", "--connect=false"], ["create", "qb", "--connect=false"],
               ["create", "qc", "--shared", "--connect=false"], ["create", "nd", "-f", str(nodes)]]
    procs = [subprocess.Popen([sys.executable, "-m", "vkube", *a], env=user.env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for a in creates]
    outs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0, 0], outs
    assert "2 host nodes synced" in outs[3], outs[3]
    user.kubectl("label", "nodes", "vkube-host-node-2", "disktype=ssd")  # at once: no NotFound
    assert user.kubectl("get", "nodes", "-o", "name").stdout.split() == [
        "node/vkube-host-node-1", "node/vkube-host-node-2"]
    hosts = _hosts(user)
    assert len(hosts) == 1, hosts
    host_pid = int((user.home / "host" / "host.pid").read_text())

    listed = user.list()
    assert {n: listed[n]["status"] for n in ("qa", "qb", "qc", "nd")} == \
        {"qa": "Running", "qb": "Running", "qc": "Running", "nd": "Running"}
    host_kc = user.home / "host" / "kubeconfig"
    for name in ("qa", "qb", "qc"):  # each works, and its pods run on the one host
        kc = tmp_path / f"{name}.yaml"
        kc.write_text(user.vkube("connect", name, "--print").stdout)
        kubectl(kc, "apply", "-f", "-", input=POD % "p")
        eventually(lambda kc=kc: _running(kc), timeout=120, delay=0.5)
        pods = json.loads(kubectl(host_kc, "get", "pods", "-n", f"vkube-{name}", "-o",
                                  "json").stdout)["items"]
        assert len(pods) == 1, pods

    # started by hand on directories in use: each refuses, naming the holder; nothing changes
    qa_data = user.home / "clusters" / "qa" / "data"
    serve_pid = int((qa_data / "owner.lock").read_text())
    shared_pid = int((user.home / "shared" / "data" / "owner.lock").read_text())
    seconds = [[sys.executable, "-m", "vkube.cli.hosting", "--home", str(user.home)],
               [sys.executable, "-m", "vkube", "serve", "--name", "qa", "--data-dir",
                str(qa_data), "--port", "0"],
               [sys.executable, "-m", "vkube", "serve", "--shared", "--data-dir",
                str(user.home / "shared" / "data"), "--port", "0"]]
    runs = [subprocess.Popen(c, env=user.env, text=True, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT) for c in seconds]
    said = [r.communicate(timeout=120)[0] for r in runs]
    assert [r.returncode for r in runs] == [1, 1, 1], said
    for out, pid in zip(said, (host_pid, serve_pid, shared_pid)):
        assert f"is in use by another vkube process (pid {pid})" in out, out
        assert "Traceback" not in out
    assert _hosts(user) == hosts
    assert int((user.home / "host" / "host.pid").read_text()) == host_pid
    assert user.vkube("host", "status").returncode == 0

    # wording: a snapshot into a missing directory names the directory; describe of a shared
    # cluster says shared (as list does) and whose memory it shows; a paused current context
    out = user.vkube("snapshot", "save", "qa", str(tmp_path / "no" / "dir" / "x.jsonl"),
                     check=False)
    assert out.returncode == 1 and f"directory {tmp_path / 'no' / 'dir'} does not exist" \
        in out.stderr and "Traceback" not in out.stderr, out.stderr
    text = user.vkube("describe", "qc").stdout
    fields = dict(ln.split(":", 1) for ln in text.splitlines() if ": " in ln and ln[0] != " ")
    assert fields["Mode"].strip() == "shared", text
    assert "(the whole shared server, serving 1 cluster)" in fields["Memory (RSS)"], text
    assert user.vkube("describe", "qa").stdout.split("Mode:", 1)[1].split()[0] == "vcluster"
    user.vkube("connect", "qb")
    user.vkube("pause", "qb", timeout=180)
    assert user.list()["qb"]["currentContext"] is True
    row = next(ln for ln in user.vkube("list").stdout.splitlines() if ln.startswith("qb "))
    assert row.split()[2:5] == ["Paused", "no", "(paused)"], row


def _running(kc) -> None:
    phase = kubectl(kc, "get", "pod", "p", "-o", "jsonpath={.status.phase}").stdout
    assert phase == "Running", phase
