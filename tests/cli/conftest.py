"""The vkube CLI as a user runs it: ``python -m vkube ...`` subprocesses with their own
VKUBE_HOME and KUBECONFIG, checked with the real kubectl."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import kubectl


@dataclass
class User:
    """One user's machine: a VKUBE_HOME and a kubeconfig."""

    home: Path
    kubeconfig: Path

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "VKUBE_HOME": str(self.home), "KUBECONFIG": str(self.kubeconfig),
                "VKUBE_HOST_NODES": "2"}

    def vkube(self, *args: str, check: bool = True,
              timeout: float = 90) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([sys.executable, "-m", "vkube", *args], env=self.env,
                              capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"vkube {' '.join(args)} failed ({proc.returncode}):\n"
                                 f"{proc.stderr}{proc.stdout}")
        return proc

    def kubectl(self, *args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
        return kubectl(self.kubeconfig, *args, **kw)

    def list(self, *extra: str) -> dict[str, dict[str, Any]]:
        return {r["name"]: r for r in json.loads(self.vkube("list", "-o", "json", *extra).stdout)}

    def describe(self, name: str) -> dict[str, Any]:
        return json.loads(self.vkube("describe", name, "-o", "json").stdout)

    def current_context(self) -> str:
        return (yaml.safe_load(self.kubeconfig.read_text()) or {}).get("current-context") or ""


def make_user(root: Path) -> User:
    """A user whose current context points at nothing (so it is never taken as the host)."""
    root.mkdir(parents=True, exist_ok=True)
    kc = root / "kube" / "config"
    kc.parent.mkdir()
    kc.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "previous", "cluster": {"server": "http://127.0.0.1:1"}}],
        "users": [{"name": "previous", "user": {"token": "x"}}],
        "contexts": [{"name": "previous", "context": {"cluster": "previous", "user": "previous"}}],
        "current-context": "previous"}))
    return User(root / "vkube-home", kc)


@pytest.fixture
def user(tmp_path: Path) -> Iterator[User]:
    u = make_user(tmp_path / "user")
    yield u
    cleanup(u)


def cleanup(u: User) -> None:
    """Stop whatever the test left running: virtual clusters, then the embedded host."""
    clusters = u.home / "clusters"
    if clusters.exists():
        for d in clusters.iterdir():
            u.vkube("delete", d.name, "--force", check=False)  # also with the host down
    if (u.home / "host").exists():
        u.vkube("host", "stop", "--force", check=False)  # pauses any delete left behind


@pytest.fixture(scope="module")
def shared_host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """An embedded host for a whole module; yields its kubeconfig."""
    owner = make_user(tmp_path_factory.mktemp("host-owner"))
    owner.vkube("host", "start", "--nodes", "2")
    try:
        yield owner.home / "host" / "kubeconfig"
    finally:
        owner.vkube("host", "stop", check=False)


def eventually(check: Callable[[], Any], *, timeout: float = 20.0, delay: float = 0.1) -> Any:
    """Retry ``check`` until it stops raising AssertionError (or the attempts run out)."""
    attempts = max(1, int(timeout / delay))
    for i in range(attempts):
        try:
            return check()
        except AssertionError:
            if i == attempts - 1:
                raise
            time.sleep(delay)


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"
