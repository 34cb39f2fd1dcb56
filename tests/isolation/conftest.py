"""The CLI fixtures (an embedded host per module, users with their own VKUBE_HOME)."""

from tests.cli.conftest import User, cleanup, eventually, make_user, shared_host  # noqa: F401
