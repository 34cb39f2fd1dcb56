"""Networking walks use the CLI's users (their own VKUBE_HOME and KUBECONFIG)."""

from tests.cli.conftest import user  # noqa: F401  (the fixture)
