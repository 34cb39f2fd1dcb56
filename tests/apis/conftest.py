"""One virtual cluster for the package, made as a user makes it: ``vkube create`` (which starts
the embedded host), driven with the real kubectl; deleted, host stopped, at the end."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.cli.conftest import User, cleanup, make_user


@pytest.fixture(scope="package")
def vcluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[User]:
    user = make_user(tmp_path_factory.mktemp("apis"))  # its host: user.home / "host" / "kubeconfig"
    try:
        user.vkube("create", "apis", timeout=180)
        yield user
    finally:
        cleanup(user)
