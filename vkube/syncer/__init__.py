"""The syncer: copies a virtual cluster's low-level objects into one host namespace and
reflects the host's reality back, speaking only the Kubernetes API to both sides."""

from vkube.syncer.syncer import Syncer, build_syncers, cleanup_host
from vkube.syncer.translate import Translator
from vkube.syncer.values import Values, ValuesError, load_values, parse_values

__all__ = ["Syncer", "Translator", "Values", "ValuesError", "build_syncers", "cleanup_host",
           "load_values", "parse_values"]
