"""Aggregator tests run clusters through the CLI, as tests/cli does."""

from tests.cli.conftest import shared_host, user  # noqa: F401 - fixtures for this directory
