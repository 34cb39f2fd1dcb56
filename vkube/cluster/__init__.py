"""Composition: one object per cluster. ``VirtualCluster`` builds a virtual cluster (control
plane, controllers, syncer, virtual scheduler) from one ``ClusterConfig``;
``EmbeddedHostCluster`` builds the embedded host. Above apiserver, controllers, syncer and
host; below the CLI, which only parses arguments into a configuration."""

from vkube.cluster.config import ClusterConfig, HostConnection, HostFromFile
from vkube.cluster.host import EmbeddedHostCluster, HostConfig
from vkube.cluster.virtual import VirtualCluster

__all__ = ["ClusterConfig", "EmbeddedHostCluster", "HostConfig", "HostConnection",
           "HostFromFile", "VirtualCluster"]
