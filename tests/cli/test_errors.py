"""Exit codes scripts can rely on (0 ok, 1 error, 2 usage), one-sentence errors with the fix,
and ``--help`` with examples on every command."""

from __future__ import annotations

import pytest

from tests.cli.conftest import make_user

COMMANDS = ["create", "connect", "disconnect", "list", "pause", "resume", "delete", "describe",
            "logs", "render", "values"]


@pytest.mark.parametrize("command", COMMANDS)
def test_help_has_examples(tmp_path, command):
    out = make_user(tmp_path).vkube(command, "--help")
    assert "examples:" in out.stdout and f"vkube {command}" in out.stdout
    # every address vkube serves is TLS: a help text naming http:// sends users the wrong way
    assert "http://" not in out.stdout


def test_usage_errors_exit_2(tmp_path):
    u = make_user(tmp_path)
    assert u.vkube("create", check=False).returncode == 2
    assert u.vkube("list", "-o", "yaml", check=False).returncode == 2
    assert u.vkube("create", "x", "--connect=maybe", check=False).returncode == 2


def test_invalid_names_and_unknown_clusters(tmp_path):
    u = make_user(tmp_path)
    bad = u.vkube("create", "My_Cluster", check=False)
    assert bad.returncode == 1 and "invalid virtual cluster name 'My_Cluster'" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1
    for cmd in ("pause", "resume", "describe", "logs", "connect"):
        out = u.vkube(cmd, "nope", check=False)
        assert out.returncode == 1 and "virtual cluster 'nope' not found" in out.stderr, cmd
    assert not (u.home / "host").exists()  # nothing started an embedded host


def test_host_system_namespaces_are_refused(tmp_path):
    """``-n`` naming a namespace of the host's own (``kube-*``, ``default``): one line naming
    ``-n`` and what to run, in every mode, before anything starts."""
    u = make_user(tmp_path)
    for ns in ("kube-system", "kube-public", "kube-node-lease", "kube-anything", "default"):
        for extra in ((), ("--shared",), ("--tenancy", "namespace"), ("--in-cluster",)):
            out = u.vkube("create", "f2", "-n", ns, *extra, check=False)
            assert out.returncode == 1 and out.stderr.startswith(f"error: -n {ns}: "), out.stderr
            assert "vkube create f2 -n f2" in out.stderr and len(out.stderr.splitlines()) == 1
    assert not (u.home / "host").exists() and not (u.home / "clusters" / "f2").exists()


def test_in_cluster_names_fit_the_statefulset_pods_labels(tmp_path):
    """An in-cluster control plane's pods carry ``controller-revision-hash: vkube-NAME-HASH``
    (at most 63): a longer name is refused by render and --in-cluster, before anything starts."""
    u = make_user(tmp_path)
    fits, too_long = "a" * 46, "a" * 47
    assert "kind: StatefulSet" in u.vkube("render", fits).stdout
    for args in (("render", too_long), ("create", too_long, "--in-cluster")):
        out = u.vkube(*args, check=False)
        assert out.returncode == 1 and "at most 46" in out.stderr, out.stderr
        assert len(out.stderr.splitlines()) == 1
    assert not (u.home / "host").exists()


def test_unreachable_host_and_bad_values(tmp_path):
    u = make_user(tmp_path)
    out = u.vkube("create", "x", "--host-kubeconfig", str(u.kubeconfig), check=False)
    assert out.returncode == 1
    assert "no host cluster reachable at" in out.stderr and "vkube host start" in out.stderr
    values = tmp_path / "v.yaml"
    values.write_text("sync:\n  nodes: {syncAll: true}\n")
    out = u.vkube("create", "x", "-f", str(values), check=False)
    assert out.returncode == 1 and "sync.nodes.syncAll: unknown key" in out.stderr
    out = u.vkube("create", "x", "-f", str(tmp_path / "missing.yaml"), check=False)
    assert out.returncode == 1 and "not found" in out.stderr
    assert not (u.home / "clusters" / "x").exists()


def test_list_with_nothing_and_disconnect_when_not_connected(tmp_path):
    u = make_user(tmp_path)
    assert u.list() == {}
    assert "No virtual clusters" in u.vkube("list").stdout
    assert "not connected" in u.vkube("disconnect").stdout


def test_namespace_tenant_verbs_that_need_a_control_plane_say_why(tmp_path, monkeypatch):
    """A namespace tenant has no control plane nor store: sleep, wake and snapshot say that
    (not "dedicated mode" or "no store yet"), before any host is contacted."""
    from vkube.cli.state import RUNNING, ClusterState

    u = make_user(tmp_path)
    monkeypatch.setenv("VKUBE_HOME", str(u.home))
    ClusterState(name="team-a", namespace="team-a", host_kubeconfig=str(u.kubeconfig),
                 status=RUNNING, tenancy="namespace").save()
    for cmd, fix in ((["sleep", "team-a"], "`vkube pause team-a`"),
                     (["wake", "team-a"], "`vkube resume team-a`")):
        out = u.vkube(*cmd, check=False)
        assert out.returncode == 1 and len(out.stderr.strip().splitlines()) == 1, out.stderr
        assert "'team-a' is a namespace tenant" in out.stderr and fix in out.stderr
        assert "dedicated" not in out.stderr
    for action in ("save", "restore"):
        out = u.vkube("snapshot", action, "team-a", str(tmp_path / "snap"), check=False)
        assert out.returncode == 1 and "'team-a' is a namespace tenant" in out.stderr
        assert "host namespace team-a" in out.stderr and "state.db" not in out.stderr


def test_output_into_a_closed_pipe_stops_quietly(tmp_path):
    """``vkube render x | head -c 20``: the reader leaves early; vkube stops as a tool killed
    by SIGPIPE does (exit 141), never with a traceback."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "VKUBE_HOME": str(tmp_path / "home"), "KUBECONFIG": str(tmp_path / "kc")}
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before vkube writes a byte: deterministic EPIPE
    try:
        proc = subprocess.run([sys.executable, "-m", "vkube", "render", "x"], env=env,
                              stdout=write_end, stderr=subprocess.PIPE, timeout=60)
    finally:
        os.close(write_end)
    err = proc.stderr.decode()
    assert proc.returncode == 141 and "Traceback" not in err, err
