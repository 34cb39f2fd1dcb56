"""The user's kubeconfig: vkube adds and removes only its own entries and remembers the
context to return to."""

from __future__ import annotations

import yaml

from vkube.cli import kubeconfigs

USER = {"client-certificate-data": "Q0VSVA==", "client-key-data": "S0VZ"}


def test_add_switch_remove_keeps_other_entries(tmp_path, monkeypatch):
    first, second = tmp_path / "a" / "config", tmp_path / "b" / "config"
    monkeypatch.setenv("KUBECONFIG", f"{first}:{second}")
    monkeypatch.setenv("VKUBE_HOME", str(tmp_path / "home"))
    assert kubeconfigs.user_kubeconfig_path() == first
    first.parent.mkdir()
    first.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "work",
        "clusters": [{"name": "work", "cluster": {"server": "https://work:6443"}}],
        "users": [{"name": "work", "user": {"token": "t"}}],
        "contexts": [{"name": "work", "context": {"cluster": "work", "user": "work"}}]}))
    kubeconfigs.add_context("vkube_a", {"server": "https://127.0.0.1:1234", "certificate-authority-data": "Q0E="}, USER, switch=True)
    kubeconfigs.add_context("vkube_b", {"server": "https://127.0.0.1:5678", "certificate-authority-data": "Q0E="}, USER, switch=True)
    doc = yaml.safe_load(first.read_text())
    assert doc["current-context"] == "vkube_b"
    assert [c["name"] for c in doc["contexts"]] == ["work", "vkube_a", "vkube_b"]
    assert (first.stat().st_mode & 0o777) == 0o600
    # disconnect returns to the context current before: the other virtual cluster, then work
    assert kubeconfigs.switch_back() == "vkube_a"
    assert kubeconfigs.switch_back() == "work"
    kubeconfigs.add_context("vkube_a", {"server": "https://127.0.0.1:4321", "certificate-authority-data": "Q0E="}, USER, switch=True)
    assert kubeconfigs.remove_context("vkube_a") is True
    doc = yaml.safe_load(first.read_text())
    assert doc["current-context"] == "work"
    assert [c["name"] for c in doc["clusters"]] == ["work", "vkube_b"]
    assert not second.exists()


def test_previous_context_from_any_kubeconfig_file_and_any_vkube_context(tmp_path, monkeypatch):
    """``KUBECONFIG=a:b`` with the previous context defined only in ``b`` (set current in
    either file) comes back; so does a previous context that is another virtual cluster's
    (made current with kubectl, not ``vkube connect``)."""
    first, second = tmp_path / "a", tmp_path / "b"
    monkeypatch.setenv("KUBECONFIG", f"{first}:{second}")
    monkeypatch.setenv("VKUBE_HOME", str(tmp_path / "home"))
    second.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "far",
        "clusters": [{"name": "far", "cluster": {"server": "https://far:6443"}}],
        "users": [{"name": "far", "user": {"token": "t"}}],
        "contexts": [{"name": "far", "context": {"cluster": "far", "user": "far"}}]}))
    cluster = {"server": "https://127.0.0.1:1", "certificate-authority-data": "Q0E="}
    for current_in_first in (False, True):  # b's current (a sets none), then a's naming b's
        if current_in_first:
            doc = yaml.safe_load(first.read_text())
            doc["current-context"] = "far"
            first.write_text(yaml.safe_dump(doc))
        kubeconfigs.add_context("vkube_x", cluster, USER, switch=True)
        assert kubeconfigs.switch_back() == "far"
        assert yaml.safe_load(first.read_text())["current-context"] == "far"
    # `kubectl config use-context vkube_x; vkube connect y; vkube disconnect` -> vkube_x
    doc = yaml.safe_load(first.read_text())
    doc["current-context"] = "vkube_x"
    first.write_text(yaml.safe_dump(doc))
    kubeconfigs.add_context("vkube_y", cluster, USER, switch=True)
    assert kubeconfigs.switch_back() == "vkube_x"
    # deleting the current cluster returns to the one before it too
    kubeconfigs.add_context("vkube_y", cluster, USER, switch=True)
    assert kubeconfigs.remove_context("vkube_y") is True
    assert yaml.safe_load(first.read_text())["current-context"] == "vkube_x"
    assert yaml.safe_load(second.read_text())["current-context"] == "far"  # never written


def test_missing_kubeconfig_is_created(tmp_path, monkeypatch):
    path = tmp_path / "nested" / "config"
    monkeypatch.setenv("KUBECONFIG", str(path))
    monkeypatch.setenv("VKUBE_HOME", str(tmp_path / "home"))
    kubeconfigs.add_context("vkube_x", {"server": "https://127.0.0.1:1", "certificate-authority-data": "Q0E="}, USER, switch=True)
    doc = yaml.safe_load(path.read_text())
    assert doc["current-context"] == "vkube_x" and doc["kind"] == "Config"
    assert kubeconfigs.switch_back() is None  # there was nothing before
    assert kubeconfigs.remove_context("vkube_x") is True
    assert yaml.safe_load(path.read_text())["current-context"] == ""


def test_host_context_copies_the_embedded_hosts_entry(tmp_path, monkeypatch):
    """`vkube-host` mirrors the host's kubeconfig; relative file references become absolute;
    refreshing an unchanged entry does not rewrite the file."""
    import yaml as _yaml

    from vkube.cli import kubeconfigs

    user_kc = tmp_path / "user" / "config"
    monkeypatch.setenv("KUBECONFIG", str(user_kc))
    monkeypatch.setenv("VKUBE_HOME", str(tmp_path / "home"))
    host_kc = tmp_path / "home" / "host" / "kubeconfig"
    host_kc.parent.mkdir(parents=True)
    host_kc.write_text(_yaml.safe_dump({
        "clusters": [{"name": "h", "cluster": {"server": "https://127.0.0.1:7000",
                                               "certificate-authority": "ca.crt"}}],
        "users": [{"name": "h", "user": {"token": "t"}}],
        "contexts": [{"name": "h", "context": {"cluster": "h", "user": "h"}}],
        "current-context": "h"}))
    assert kubeconfigs.add_host_context(host_kc) is True
    doc = _yaml.safe_load(user_kc.read_text())
    cluster = next(c["cluster"] for c in doc["clusters"] if c["name"] == "vkube-host")
    assert cluster == {"server": "https://127.0.0.1:7000",
                       "certificate-authority": str(host_kc.parent / "ca.crt")}
    assert not doc.get("current-context"), "adding the host context does not switch to it"
    assert kubeconfigs.add_host_context(host_kc) is False
    assert kubeconfigs.switch_back() == "vkube-host"  # nothing remembered: land on the host
    assert kubeconfigs.add_host_context(tmp_path / "missing") is False


def test_concurrent_vkube_commands_keep_every_context(tmp_path):
    """Several ``vkube`` processes (create, delete, connect at once) edit one kubeconfig: none
    fails on another's temp file and none loses another's context (each read-modify-write
    holds the file's lock — the same one when half of them name it through a symlink)."""
    import os
    import subprocess
    import sys

    kc = tmp_path / "config"
    link = tmp_path / "linked"
    link.symlink_to(kc)
    env = {**os.environ, "VKUBE_HOME": str(tmp_path / "home")}
    script = ("import sys\nfrom vkube.cli import kubeconfigs\nn = sys.argv[1]\n"
              "for i in range(15):\n"
              "    kubeconfigs.add_context(f'vkube_{n}-{i}', {'server': 'https://127.0.0.1:1'}, "
              "{'token': 't'}, switch=True)\n"
              "    if i % 3 == 0:\n"
              "        kubeconfigs.remove_context(f'vkube_{n}-{i}')\n")
    procs = [subprocess.Popen([sys.executable, "-c", script, str(n)],
                              env={**env, "KUBECONFIG": str(link if n % 2 else kc)},
                              stderr=subprocess.PIPE, text=True) for n in range(6)]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    names = {c["name"] for c in yaml.safe_load(kc.read_text())["contexts"]}
    assert names == {f"vkube_{n}-{i}" for n in range(6) for i in range(15) if i % 3}
    assert not [p for p in tmp_path.iterdir() if ".vkube-tmp" in p.name]
    assert link.is_symlink()


def test_a_symlinked_kubeconfig_is_written_through_its_link(tmp_path, monkeypatch):
    """As kubectl does: the target changes, the link stays a link (dotfiles setups); the lock
    is the target's, so every link to one file shares it; the temp file is a new 0600 file,
    never one someone planted at a predictable name."""
    import os
    import threading

    target = tmp_path / "dotfiles" / "kubeconfig"
    target.parent.mkdir()
    target.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "Config", "clusters": [],
                                      "users": [], "contexts": [], "current-context": "work"}))
    link = tmp_path / "kube" / "config"
    link.parent.mkdir()
    link.symlink_to(target)
    monkeypatch.setenv("KUBECONFIG", str(link))
    monkeypatch.setenv("VKUBE_HOME", str(tmp_path / "home"))
    # what the old predictable temp name would have been: a link to a file not ours to write
    victim = tmp_path / "victim"
    victim.write_text("untouched\n")
    for d in (link.parent, target.parent):
        (d / f"config.vkube-tmp.{os.getpid()}.{threading.get_ident()}").symlink_to(victim)
        (d / f"kubeconfig.vkube-tmp.{os.getpid()}.{threading.get_ident()}").symlink_to(victim)
    old_umask = os.umask(0o022)
    try:
        kubeconfigs.add_context("vkube_a", {"server": "https://127.0.0.1:1"}, USER, switch=True)
    finally:
        os.umask(old_umask)
    assert link.is_symlink() and link.resolve() == target.resolve()
    doc = yaml.safe_load(target.read_text())
    assert doc["current-context"] == "vkube_a" and [c["name"] for c in doc["contexts"]] == ["vkube_a"]
    assert (target.stat().st_mode & 0o777) == 0o600
    assert victim.read_text() == "untouched\n"
    # one lock, the target's, whichever path names it
    assert (target.parent / "kubeconfig.vkube-lock").exists()
    assert not (link.parent / "config.vkube-lock").exists()
    assert not [p for d in (link.parent, target.parent) for p in d.iterdir()
                if ".vkube-tmp" in p.name and not p.is_symlink()]
    assert kubeconfigs.remove_context("vkube_a") is True
    assert link.is_symlink() and yaml.safe_load(target.read_text())["contexts"] == []
    # a link that loops is one line naming the path, not a traceback
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    monkeypatch.setenv("KUBECONFIG", str(loop))
    import pytest

    from vkube.cli.output import CLIError
    with pytest.raises(CLIError, match="cannot follow kubeconfig"):
        kubeconfigs.add_context("vkube_b", {"server": "https://127.0.0.1:1"}, USER, switch=True)
