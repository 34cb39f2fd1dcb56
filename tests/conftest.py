"""Shared fixtures: real control planes on free loopback ports, the real kubectl."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from vkube.apiserver.server import ControlPlane

KUBECTL = str(Path(sys.executable).parent / "kubectl")


@dataclass
class RunningControlPlane:
    """A started control plane: its URL, kubeconfig path, and ways to talk to it."""

    cp: ControlPlane
    kubeconfig: Path

    @property
    def url(self) -> str:
        return self.cp.url

    def client(self, **kw):  # noqa: ANN201 - vkube.client.Client
        """A vkube Client as the cluster admin, over verified TLS."""
        return admin_client(self.cp, **kw)

    def ssl(self, user: str = "kubernetes-admin", groups: tuple[str, ...] = ("system:masters",)):  # noqa: ANN201
        """A TLS context for raw aiohttp calls: trusts the cluster CA, presents ``user``'s cert."""
        return self.cp.client_ssl(user, groups)

    def session(self, **kw):  # noqa: ANN201 - aiohttp.ClientSession
        """An aiohttp session authenticated as the cluster admin."""
        return admin_session(self.cp, **kw)

    def kubectl(self, *args: str, input: str | None = None, check: bool = True,
                timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return kubectl(self.kubeconfig, *args, input=input, check=check, timeout=timeout)


def admin_client(cp: ControlPlane, **kw):  # noqa: ANN201 - vkube.client.Client
    """A vkube Client for a started ControlPlane, authenticated as the cluster admin. With
    ``VKUBE_TEST_IN_PROCESS=1`` it calls the server in process (``vkube.cluster.inprocess``)
    as that same user: the suites that use it then check the transport behaves as HTTPS."""
    from vkube.client import Client

    if os.environ.get("VKUBE_TEST_IN_PROCESS") == "1" and cp.server is not None:
        from vkube.cluster.inprocess import in_process_client
        from vkube.pki.cluster import ADMIN

        return in_process_client(cp.server, ADMIN, url=cp.url, **{"user_agent": "vkube", **kw})
    return Client(cp.url, ssl=cp.client_ssl(), **kw)


def admin_session(cp: ControlPlane, **kw):  # noqa: ANN201 - aiohttp.ClientSession
    import aiohttp

    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=cp.client_ssl()), **kw)


def kubectl(kubeconfig: os.PathLike[str] | str, *args: str, input: str | None = None,
            check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run the pinned kubectl; on failure the assertion shows its stderr."""
    # discovery is cached per host:port; ports are reused by later clusters, so each
    # kubeconfig gets its own cache (a stale one names CRDs the new cluster never had)
    env = {**os.environ, "KUBECONFIG": str(kubeconfig), "KUBECTL_KUBERC": "false",
           "KUBECACHEDIR": str(Path(kubeconfig).parent / ".kubectl-cache")}
    proc = subprocess.run([KUBECTL, *args], input=input, capture_output=True, text=True,
                          env=env, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}{proc.stdout}")
    return proc


@pytest.fixture
async def control_plane(tmp_path: Path) -> AsyncIterator[RunningControlPlane]:
    cp = ControlPlane(data_dir=tmp_path / "cp")
    await cp.start()
    try:
        yield RunningControlPlane(cp, tmp_path / "cp" / "kubeconfig")
    finally:
        await cp.stop()


@pytest.fixture(scope="session")
def kubectl_bin() -> str:
    if not os.path.exists(KUBECTL):
        pytest.fail(f"the pinned kubectl is missing at {KUBECTL}: install the test extras (make test does)")
    return KUBECTL


__all__ = ["RunningControlPlane", "kubectl", "KUBECTL", "shutil", "admin_client", "admin_session"]
