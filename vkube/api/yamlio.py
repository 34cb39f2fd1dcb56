"""YAML in and out through libyaml when PyYAML was built with it (``CSafeLoader``/``CSafeDumper``).

Why: PyYAML's pure-Python safe loader and dumper are 10–50× slower. A kubeconfig of a dozen
contexts (embedded certificates) took 85 ms to load and 39 ms to dump in pure Python and 3 ms /
0.7 ms through libyaml, and ``vkube create`` reads and writes several. Both sides are the
*safe* variants (plain data only) and emit the same text as ``yaml.safe_dump`` (for mappings and lists; a lone
scalar lacks the ``...`` end marker); without
libyaml the pure-Python classes are used.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import IO, Any

import yaml

__all__ = ["Loader", "Dumper", "load", "load_all", "dump", "dump_all"]

Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
Dumper: Any = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def load(stream: str | bytes | IO[Any]) -> Any:
    """``yaml.safe_load``, faster."""
    return yaml.load(stream, Loader=Loader)  # noqa: S506 — a safe loader


def load_all(stream: str | bytes | IO[Any]) -> Iterator[Any]:
    """``yaml.safe_load_all``, faster."""
    return yaml.load_all(stream, Loader=Loader)  # noqa: S506 — a safe loader


def dump(data: Any, stream: IO[Any] | None = None, **kw: Any) -> Any:
    """``yaml.safe_dump``, faster: the text when ``stream`` is None."""
    return yaml.dump(data, stream, Dumper=Dumper, **kw)


def dump_all(documents: Iterable[Any], stream: IO[Any] | None = None, **kw: Any) -> Any:
    """``yaml.safe_dump_all``, faster."""
    return yaml.dump_all(documents, stream, Dumper=Dumper, **kw)
