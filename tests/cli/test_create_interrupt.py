"""Ctrl-C (SIGINT) during ``vkube create``: the create ends with 130 and removes what it had
applied — no processes, cluster directory, host namespace or cluster-scoped RBAC stay, and
the same name can be created again — as a failed create does (and ``kind`` on SIGINT).

The signal is sent at each stage of a create, found by polling what the create has made so
far (never by sleeping a fixed time), through the spare (the command forwarded to the host's
spare) and without it (``VKUBE_NO_SPARE=1``: the CLI process runs it)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.cli.conftest import User, cleanup, make_user
from tests.conftest import kubectl


@pytest.fixture(scope="module")
def user(tmp_path_factory: pytest.TempPathFactory) -> Iterator[User]:
    u = make_user(tmp_path_factory.mktemp("interrupt"))
    u.vkube("host", "start", "--nodes", "2", timeout=300)
    yield u
    cleanup(u)


def _processes_of(path: Path) -> list[int]:
    """Live processes whose command line names ``path`` (supervisor, serve)."""
    out = []
    needle = str(path).encode()
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            if needle in (d / "cmdline").read_bytes():
                out.append(int(d.name))
        except OSError:
            continue
    return [p for p in out if p != os.getpid()]


def _interrupt(user: User, name: str, ready: Callable[[Path], bool],
               env: dict[str, str]) -> tuple[subprocess.CompletedProcess[str], bool]:
    """Start ``vkube create NAME``, SIGINT it once ``ready(cluster dir)``; the result, and
    whether the signal was sent before the create ended on its own."""
    proc = subprocess.Popen([sys.executable, "-m", "vkube", "create", name, "--connect=false"],
                            env={**user.env, **env}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    cdir = user.home / "clusters" / name
    deadline = time.monotonic() + 120
    sent = False
    while proc.poll() is None and time.monotonic() < deadline:
        if ready(cdir):
            proc.send_signal(signal.SIGINT)
            sent = True
            break
        time.sleep(0.005)
    out, err = proc.communicate(timeout=120)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err), sent


def _assert_all_or_nothing(user: User, name: str, result: subprocess.CompletedProcess[str],
                           sent: bool) -> bool:
    """Either the create finished (0, listed) or nothing of it is left (130). Returns whether
    the create was undone."""
    host = user.home / "host" / "kubeconfig"
    listed = {r["name"] for r in json.loads(user.vkube("list", "-o", "json").stdout)}
    if result.returncode == 0:
        assert name in listed
        user.vkube("delete", name)
        return False
    assert sent and result.returncode == 130, (result.returncode, result.stderr)
    assert "interrupted" in result.stderr and "Traceback" not in result.stderr, result.stderr
    assert name not in listed
    assert not (user.home / "clusters" / name).exists()
    deadline = time.monotonic() + 60  # a spare-forked serve stops on its supervisor's EOF
    while _processes_of(user.home / "clusters" / name) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _processes_of(user.home / "clusters" / name) == []
    ns = kubectl(host, "get", "ns", f"vkube-{name}", "-o", "json", check=False)
    if ns.returncode == 0:  # being deleted (Terminating) is gone for the user's purposes
        assert json.loads(ns.stdout)["status"].get("phase") == "Terminating", ns.stdout
    roles = kubectl(host, "get", "clusterroles,clusterrolebindings", "-o", "name").stdout
    assert f".{name}" not in roles, roles
    return True


STAGES: dict[str, Callable[[Path], bool]] = {
    # the control plane is spawned, nothing is on the host yet
    "spawned": lambda d: d.exists(),
    # the host namespace is claimed (the state file is written then)
    "claimed": lambda d: (d / "state.json").exists(),
    # the control plane answered: the create waits for the syncer
    "ready": lambda d: (d / "data" / "ready").exists(),
}


@pytest.mark.timeout(900)
@pytest.mark.parametrize("spare", [True, False], ids=["spare", "no-spare"])
def test_ctrl_c_during_create_leaves_nothing(user: User, spare: bool) -> None:
    env = {} if spare else {"VKUBE_NO_SPARE": "1"}
    undone = 0
    for i, (stage, ready) in enumerate(STAGES.items()):
        name = f"int-{'s' if spare else 'n'}{i}"
        result, sent = _interrupt(user, name, ready, env)
        undone += _assert_all_or_nothing(user, name, result, sent)
        if stage != "ready":  # the early stages last long enough to be caught every time
            assert result.returncode == 130, (stage, result.stderr)
    # the name is free again: a create after the interrupted one works
    user.vkube("create", f"int-{'s' if spare else 'n'}0", "--connect=false")
    assert undone >= 2
