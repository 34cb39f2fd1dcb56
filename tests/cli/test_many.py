"""Several virtual clusters on one host, seen from two machines; supervision of the control
plane process; connect variants."""

from __future__ import annotations

import json
import os
import signal

import pytest
import yaml

from tests.cli.conftest import User, alive, cleanup, eventually, make_user
from tests.conftest import kubectl


def configmap(name: str, **data: str) -> str:
    """kubectl apply input (``kubectl create configmap`` needs protobuf, which we do not serve)."""
    return json.dumps({"apiVersion": "v1", "kind": "ConfigMap",
                       "metadata": {"name": name, "namespace": "default"}, "data": data})


def test_ten_clusters_in_a_row_all_work_and_are_listed(shared_host, tmp_path):
    u = make_user(tmp_path / "a")
    other = make_user(tmp_path / "b")  # another machine: no local state, same host
    names = [f"vc-{i}" for i in range(10)]
    try:
        for name in names:
            u.vkube("create", name, "--host-kubeconfig", str(shared_host), "--connect=false")
        assert u.current_context() == "previous"
        listed = u.list()
        assert sorted(listed) == names
        assert {r["status"] for r in listed.values()} == {"Running"}
        for name in names:
            kc = tmp_path / f"{name}.yaml"
            kc.write_text(u.vkube("connect", name, "--print").stdout)
            kubectl(kc, "apply", "-f", "-", input=configmap("who", vc=name))
        for name in names:  # each one is its own cluster
            kc = tmp_path / f"{name}.yaml"
            assert kubectl(kc, "get", "configmap", "who", "-o", "jsonpath={.data.vc}").stdout == name
        remote = other.list("--host-kubeconfig", str(shared_host))
        assert sorted(remote) == names
        assert all(r["local"] is False and r["status"] == "Running" for r in remote.values())
        assert remote["vc-3"]["namespace"] == "vkube-vc-3"
    finally:
        cleanup(u)
    assert other.list("--host-kubeconfig", str(shared_host)) == {}


def test_supervisor_restarts_a_crashed_control_plane(shared_host, tmp_path):
    u = make_user(tmp_path / "u")
    try:
        u.vkube("create", "crashy", "--host-kubeconfig", str(shared_host))
        u.kubectl("apply", "-f", "-", input="{apiVersion: v1, kind: Namespace, metadata: {name: kept}}")
        supervisor, serve = u.describe("crashy")["process"]["pids"]
        os.kill(serve, signal.SIGKILL)

        def restarted() -> None:
            d = u.describe("crashy")
            assert d["status"] == "Running" and len(d["process"]["pids"]) == 2
            assert d["process"]["pids"][0] == supervisor and d["process"]["pids"][1] != serve
            assert d["process"]["rssBytes"] > 0
        eventually(restarted)
        eventually(lambda: u.kubectl("get", "namespace", "kept"))
        assert "restarting" in u.vkube("logs", "crashy").stdout
        assert len(u.vkube("logs", "crashy", "--tail", "3").stdout.splitlines()) == 3
    finally:
        cleanup(u)
    assert not alive(supervisor)


def test_connect_variants_and_kubeconfig_hygiene(shared_host, tmp_path):
    u = make_user(tmp_path / "u")
    # an unrelated entry the CLI must leave alone
    doc = yaml.safe_load(u.kubeconfig.read_text())
    doc["contexts"].append({"name": "other", "context": {"cluster": "previous", "user": "previous"}})
    u.kubeconfig.write_text(yaml.safe_dump(doc))
    try:
        u.vkube("create", "cx", "--host-kubeconfig", str(shared_host), "--connect=false")
        assert u.current_context() == "previous"
        again = u.vkube("create", "cx", "--host-kubeconfig", str(shared_host), check=False)
        assert again.returncode == 1 and "already exists" in again.stderr and "--upgrade" in again.stderr
        u.vkube("connect", "cx", "--kube-config-context-name", "dev")
        assert u.current_context() == "dev"
        u.kubectl("get", "ns", "default")
        assert u.list()["cx"]["connected"] is True
        printed = yaml.safe_load(u.vkube("connect", "cx", "--print", "--server",
                                         "https://vc.example:443").stdout)
        assert printed["clusters"][0]["cluster"]["server"] == "https://vc.example:443"
        assert printed["current-context"] == "vkube_cx"
        u.vkube("disconnect")
        assert u.current_context() == "previous"
        assert "not connected" in u.vkube("disconnect").stdout
        u.vkube("delete", "cx")
        contexts = u.kubectl("config", "get-contexts", "-o", "name").stdout.split()
        assert sorted(contexts) == ["other", "previous"]
    finally:
        cleanup(u)


def test_describe_reports_sync_counts_and_namespace_option(shared_host, tmp_path):
    u = make_user(tmp_path / "u")
    values = tmp_path / "v.yaml"
    values.write_text("sync:\n  configmaps: {all: true}\n")
    try:
        u.vkube("create", "desc", "-n", "tenant-desc", "-f", str(values),
                "--host-kubeconfig", str(shared_host))
        u.kubectl("apply", "-f", "-", input=configmap("one", a="b"))

        def synced() -> None:
            d = u.describe("desc")
            assert d["synced"].get("ConfigMap", 0) >= 1, d["synced"]
        eventually(synced)
        d = u.describe("desc")
        assert d["host"]["namespace"] == "tenant-desc"
        assert d["apiServer"].startswith("https://127.0.0.1:")
        assert d["effectiveValues"]["sync"]["configmaps"]["all"] is True
        text = u.vkube("describe", "desc").stdout
        assert "Host namespace: tenant-desc" in text and "ConfigMap" in text
    finally:
        cleanup(u)
    assert kubectl(shared_host, "get", "ns", "tenant-desc", check=False).returncode != 0


def test_delete_keep_namespace_and_adopted_namespace(shared_host, tmp_path):
    u: User = make_user(tmp_path / "u")
    kubectl(shared_host, "apply", "-f", "-",
            input="{apiVersion: v1, kind: Namespace, metadata: {name: pre-existing}}")
    try:
        u.vkube("create", "adopt", "-n", "pre-existing", "--host-kubeconfig", str(shared_host),
                "--connect=false")
        u.vkube("create", "keep", "--host-kubeconfig", str(shared_host), "--connect=false")
        u.vkube("delete", "adopt")
        u.vkube("delete", "keep", "--keep-namespace")
        for ns in ("pre-existing", "vkube-keep"):  # not created by vkube / asked to keep
            obj = json.loads(kubectl(shared_host, "get", "ns", ns, "-o", "json").stdout)
            assert "vkube.io/vcluster" not in (obj["metadata"].get("labels") or {})
    finally:
        cleanup(u)
        kubectl(shared_host, "delete", "ns", "pre-existing", "vkube-keep", check=False)


def test_create_in_cluster_is_refused_on_an_embedded_host(shared_host, tmp_path):
    """The embedded host's kubelets are simulated: a control plane pod applied there would show
    Running and serve nothing. Refused by name (any user's embedded host, by its nodes), and
    for a user without a host none is started for it; nothing is applied or kept."""
    u = make_user(tmp_path / "u")
    try:
        out = u.vkube("create", "inc", "--in-cluster", "--host-kubeconfig", str(shared_host),
                      check=False)
        assert out.returncode == 1, out.stdout
        err = out.stderr.strip().splitlines()[-1]
        assert "embedded host" in err and "--in-cluster" in err and "runs no image" in err, err
        assert "`vkube create inc` without --in-cluster" in err and "--host-kubeconfig" in err
        assert kubectl(shared_host, "get", "ns", "vkube-inc", check=False).returncode != 0
        assert "inc" not in u.list()
        # no host at all: refused without starting the embedded one
        out = u.vkube("create", "inc", "--in-cluster", check=False)
        assert out.returncode == 1 and "--in-cluster needs a real host cluster" in out.stderr
        assert not (u.home / "host").exists()
        # a values file asking for shared mode cannot be rendered into a StatefulSet
        shared = tmp_path / "shared.yaml"
        shared.write_text("controlPlane: {mode: shared}\n")
        for cmd in (["render", "r2", "-f", str(shared)],
                    ["create", "inc", "--in-cluster", "-f", str(shared)]):
            out = u.vkube(*cmd, check=False)
            assert out.returncode == 1 and "controlPlane.mode: shared" in out.stderr, cmd
            assert "dedicated StatefulSet" in out.stderr and out.stdout == "", cmd
    finally:
        cleanup(u)


def test_host_from_current_context_stays_pinned_after_connect(shared_host, tmp_path):
    """The host came from the user's current context; `create` then switches that context to
    the virtual cluster. A restarted control plane must still sync to the host, not itself."""
    u = make_user(tmp_path / "u")
    host_cfg = yaml.safe_load(shared_host.read_text())
    host_cfg["contexts"][0]["name"] = "my-host"
    host_cfg["current-context"] = "my-host"
    u.kubeconfig.write_text(yaml.safe_dump(host_cfg))
    try:
        u.vkube("create", "pinned")
        assert u.current_context() == "vkube_pinned"
        supervisor, serve = u.describe("pinned")["process"]["pids"]
        os.kill(serve, signal.SIGKILL)

        def restarted() -> None:
            d = u.describe("pinned")
            assert d["status"] == "Running" and d["process"]["pids"][1] != serve
        eventually(restarted)
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "default"},
               "spec": {"containers": [{"name": "c", "image": "nginx"}]}}
        eventually(lambda: u.kubectl("apply", "-f", "-", input=json.dumps(pod)))
        eventually(lambda: kubectl(shared_host, "get", "pod", "p-x-default-x-pinned", "-n", "vkube-pinned"))
        assert "vkube-pinned" not in u.kubectl("get", "ns", "-o", "name").stdout
    finally:
        cleanup(u)
