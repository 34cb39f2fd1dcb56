"""The syncer: copies a virtual cluster's low-level objects into one host namespace and
reflects the host's reality back, speaking only the Kubernetes API to both sides.

Names are resolved on first use (PEP 562): ``vkube serve`` parses its values
(``vkube.syncer.values``) before its API answers and must not pay ~0.2 s for every syncer
module then."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vkube.syncer.syncer import Syncer, build_syncers, cleanup_host
    from vkube.syncer.translate import Translator
    from vkube.syncer.values import Values, ValuesError, load_values, parse_values

_WHERE = {"Syncer": "syncer", "build_syncers": "syncer", "cleanup_host": "syncer",
          "Translator": "translate", "Values": "values", "ValuesError": "values",
          "load_values": "values", "parse_values": "values"}

__all__ = ["Syncer", "Translator", "Values", "ValuesError", "build_syncers", "cleanup_host",
           "load_values", "parse_values"]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'vkube.syncer' has no attribute {name!r}")
    return getattr(importlib.import_module(f"vkube.syncer.{module}"), name)
