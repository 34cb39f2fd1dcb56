"""The resource model: one frozen ``ResourceSpec`` per served resource, and a ``Registry``.

Per-kind behaviour (defaulting, validation, table columns, field selectors) hangs off
``ResourceSpec.strategy`` so built-in kinds and CRDs go through one pipeline in one order.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

READ_VERBS = ("get", "list", "watch")
_KUBE_VERSION = re.compile(r"^v(\d+)(?:(alpha|beta)(\d+))?\Z")


def version_priority(name: str) -> tuple[int, int, int, str]:
    """Kubernetes' version order, as a sort key: GA before beta before alpha, higher numbers
    first, then any other version names alphabetically (``v2, v1, v1beta1, v1alpha1, foo``)."""
    m = _KUBE_VERSION.match(name)
    if not m:
        return (3, 0, 0, name)
    rank = {None: 0, "beta": 1, "alpha": 2}[m.group(2)]
    return (rank, -int(m.group(1)), -int(m.group(3) or 0), name)
ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


@dataclass(frozen=True, slots=True)
class Column:
    """A Table column, as in CRDs' ``additionalPrinterColumns``. ``priority`` 1 shows only with
    ``-o wide``. ``value`` computes the cell from the object."""

    name: str
    value: Callable[[dict[str, Any]], Any]
    type: str = "string"
    format: str = ""
    description: str = ""
    priority: int = 0


@dataclass(frozen=True, slots=True)
class ScaleSpec:
    """Paths for the ``scale`` subresource (dotted JSON paths, as CRDs declare them)."""

    spec_replicas_path: str = "spec.replicas"
    status_replicas_path: str = "status.replicas"
    label_selector_path: str | None = "status.selector"


@dataclass(frozen=True, slots=True)
class ResourceSpec:
    group: str  # "" for core
    version: str
    kind: str
    plural: str
    singular: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ALL_VERBS
    status_subresource: bool = False
    scale: ScaleSpec | None = None
    extra_subresources: tuple[str, ...] = ()  # e.g. "log", "binding", "eviction", "exec"
    strategy: Any = None  # a vkube.api.strategy.Strategy; set by the registry
    storage_version_hash: str = ""

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def list_kind(self) -> str:
        return self.kind + "List"

    @property
    def group_resource(self) -> str:
        """``deployments.apps`` / ``pods``: the form Kubernetes' messages use."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def subresources(self) -> tuple[str, ...]:
        subs = []
        if self.status_subresource:
            subs.append("status")
        if self.scale is not None:
            subs.append("scale")
        return tuple(subs) + self.extra_subresources

    def key_prefix(self, namespace: str | None = None) -> str:
        """Store key prefix; with a namespace, only that namespace's objects."""
        base = f"/{self.group or 'core'}/{self.plural}/"
        if self.namespaced and namespace:
            return f"{base}{namespace}/"
        return base

    def key(self, namespace: str | None, name: str) -> str:
        if self.namespaced:
            return f"/{self.group or 'core'}/{self.plural}/{namespace}/{name}"
        return f"/{self.group or 'core'}/{self.plural}/{name}"


@dataclass
class Registry:
    """The resources one control plane serves. Not global: each control plane owns one, so
    CRDs of one virtual cluster never leak into another."""

    _by_gvr: dict[tuple[str, str, str], ResourceSpec] = field(default_factory=dict)
    _by_gk: dict[tuple[str, str], ResourceSpec] = field(default_factory=dict)
    generation: int = 0  # bumped on every change, so discovery caches can be invalidated

    def add(self, spec: ResourceSpec) -> None:
        self._by_gvr[(spec.group, spec.version, spec.plural)] = spec
        self._by_gk.setdefault((spec.group, spec.kind), spec)
        self.generation += 1

    def remove(self, group: str, version: str, plural: str) -> None:
        spec = self._by_gvr.pop((group, version, plural), None)
        if spec is not None and self._by_gk.get((spec.group, spec.kind)) is spec:
            del self._by_gk[(spec.group, spec.kind)]
            for other in self._by_gvr.values():
                if (other.group, other.kind) == (spec.group, spec.kind):
                    self._by_gk[(spec.group, spec.kind)] = other
                    break
        self.generation += 1

    def get(self, group: str, version: str, plural: str) -> ResourceSpec | None:
        return self._by_gvr.get((group, version, plural))

    def by_kind(self, group: str, kind: str) -> ResourceSpec | None:
        return self._by_gk.get((group, kind))

    def by_api_version_kind(self, api_version: str, kind: str) -> ResourceSpec | None:
        group, _, version = api_version.rpartition("/")
        spec = self._by_gk.get((group, kind))
        if spec is not None and spec.version != version:
            return self._by_gvr.get((group, version, spec.plural))
        return spec

    def all(self) -> Iterable[ResourceSpec]:
        return self._by_gvr.values()

    def groups(self) -> dict[str, list[str]]:
        """group -> versions (highest priority first, the preferred one), groups in
        first-registered order (core group is "")."""
        out: dict[str, list[str]] = {}
        for spec in self._by_gvr.values():
            versions = out.setdefault(spec.group, [])
            if spec.version not in versions:
                versions.append(spec.version)
        for versions in out.values():  # several CRDs may add versions to one group
            versions.sort(key=version_priority)
        return out
