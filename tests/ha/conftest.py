"""Fixtures for the HA tests: PostgreSQL and etcd servers (the ones ``.ci/run`` started, else
our own) and a CLI user with their own VKUBE_HOME and kubeconfig."""

from tests.cli.conftest import user  # noqa: F401  (fixture)
from tests.store.conftest import etcd_server, postgres_server  # noqa: F401  (fixtures)
