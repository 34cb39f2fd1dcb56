"""Composition: one object per cluster. ``VirtualCluster`` builds a virtual cluster (control
plane, controllers, syncer, virtual scheduler) from one ``ClusterConfig``;
``EmbeddedHostCluster`` builds the embedded host. Above apiserver, controllers, syncer and
host; below the CLI, which only parses arguments into a configuration.

The names are imported on first use (PEP 562): the CLI imports light modules of this package
(``vkube.cluster.config`` to check a flag) without the API server, controllers and syncer
behind ``host`` and ``virtual`` (~0.4 s of CPU, on ``vkube host start``'s critical path)."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vkube.cluster.config import ClusterConfig, HostConnection, HostFromFile
    from vkube.cluster.host import EmbeddedHostCluster, HostConfig
    from vkube.cluster.virtual import VirtualCluster

__all__ = ["ClusterConfig", "EmbeddedHostCluster", "HostConfig", "HostConnection",
           "HostFromFile", "VirtualCluster"]

_WHERE = {"ClusterConfig": "config", "HostConnection": "config", "HostFromFile": "config",
          "EmbeddedHostCluster": "host", "HostConfig": "host", "VirtualCluster": "virtual"}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:  # submodules (``from vkube.cluster import stores``) import as usual
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
