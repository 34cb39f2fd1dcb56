"""The values file (``vkube create NAME -f values.yaml``): parsed into frozen dataclasses.

The dataclasses *are* the schema: a field's YAML key is its ``key`` metadata (camelCase) or its
name; its default is the documented default. Unknown keys and wrong types are errors naming the
key path (``sync.nodes.syncAll: unknown key``), never silently ignored.

Defaults: pods, configmaps, secrets (only those used by synced pods, unless ``all``), services,
endpoints, persistentvolumeclaims, ingresses, networkpolicies and events sync; persistentvolumes,
storageclasses, serviceaccounts and priorityclasses do not; nodes are fake (one per host node
running synced pods); host access (hostPath/hostNetwork/hostPID/hostIPC/hostPort) is rejected.
"""

from __future__ import annotations

import dataclasses
import re
import typing
from dataclasses import dataclass, field
from typing import Any, Literal

import yaml


class ValuesError(ValueError):
    """A values file that does not fit the schema; the message names the key path."""


def _k(key: str, default: Any = dataclasses.MISSING, **kw: Any) -> Any:
    if isinstance(default, (list, dict)) or (dataclasses.is_dataclass(default)):
        val = default
        return field(default_factory=lambda: val, metadata={"key": key}, **kw)
    return field(default=default, metadata={"key": key}, **kw)


@dataclass(frozen=True)
class Toggle:
    enabled: bool = True


@dataclass(frozen=True)
class Off:
    enabled: bool = False


@dataclass(frozen=True)
class PodsSync:
    enabled: bool = True
    host_access: Literal["reject", "strip", "allow"] = _k("hostAccess", "reject")


@dataclass(frozen=True)
class ObjectsSync:
    enabled: bool = True
    all: bool = False  # sync every object, not only those used by synced pods


@dataclass(frozen=True)
class NodesSync:
    enabled: bool = False  # real nodes instead of fake ones
    sync_all_nodes: bool = _k("syncAllNodes", False)
    node_selector: str = _k("nodeSelector", "")
    enable_scheduler: bool = _k("enableScheduler", False)
    clear_image_status: bool = _k("clearImageStatus", True)

    def selector(self) -> dict[str, str]:
        """``"k1=v1,k2=v2"`` → ``{k1: v1, k2: v2}``."""
        out: dict[str, str] = {}
        for term in filter(None, (t.strip() for t in self.node_selector.split(","))):
            k, _, v = term.partition("=")
            out[k.strip()] = v.strip()
        return out


@dataclass(frozen=True)
class Sync:
    pods: PodsSync = _k("pods", PodsSync())
    configmaps: ObjectsSync = _k("configmaps", ObjectsSync())
    secrets: ObjectsSync = _k("secrets", ObjectsSync())
    services: Toggle = _k("services", Toggle())
    endpoints: Toggle = _k("endpoints", Toggle())
    persistentvolumeclaims: Toggle = _k("persistentvolumeclaims", Toggle())
    persistentvolumes: Off = _k("persistentvolumes", Off())
    storageclasses: Off = _k("storageclasses", Off())
    ingresses: Toggle = _k("ingresses", Toggle())
    networkpolicies: Toggle = _k("networkpolicies", Toggle())
    serviceaccounts: Off = _k("serviceaccounts", Off())
    priorityclasses: Off = _k("priorityclasses", Off())
    events: Toggle = _k("events", Toggle())
    nodes: NodesSync = _k("nodes", NodesSync())


@dataclass(frozen=True)
class ServiceMapping:
    from_: str = _k("from")
    to: str = _k("to")


@dataclass(frozen=True)
class MapServices:
    from_host: tuple[ServiceMapping, ...] = _k("fromHost", ())
    from_virtual: tuple[ServiceMapping, ...] = _k("fromVirtual", ())


@dataclass(frozen=True)
class Isolation:
    enabled: bool = False
    pod_security_standard: Literal["privileged", "baseline", "restricted"] = _k(
        "podSecurityStandard", "baseline")
    resource_quota: Toggle = _k("resourceQuota", Toggle())
    limit_range: Toggle = _k("limitRange", Toggle())
    network_policy: Toggle = _k("networkPolicy", Toggle())


@dataclass(frozen=True)
class Values:
    sync: Sync = _k("sync", Sync())
    map_services: MapServices = _k("mapServices", MapServices())
    isolation: Isolation = _k("isolation", Isolation())
    enable_ha: bool = _k("enableHA", False)
    replicas: int = 1

    @property
    def host_access(self) -> str:
        """Isolation always rejects host access, whatever ``sync.pods.hostAccess`` says."""
        return "reject" if self.isolation.enabled else self.sync.pods.host_access


def _key_of(f: dataclasses.Field[Any]) -> str:
    return f.metadata.get("key", f.name)


def _convert(tp: Any, value: Any, path: str) -> Any:
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, path)
    if origin is Literal:
        if value not in typing.get_args(tp):
            raise ValuesError(f"{path}: must be one of {', '.join(map(str, typing.get_args(tp)))}"
                              f", not {value!r}")
        return value
    if origin is tuple:
        inner = typing.get_args(tp)[0]
        if not isinstance(value, list):
            raise ValuesError(f"{path}: must be a list")
        return tuple(_convert(inner, v, f"{path}[{i}]") for i, v in enumerate(value))
    if tp is bool:
        if not isinstance(value, bool):
            raise ValuesError(f"{path}: must be true or false, not {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValuesError(f"{path}: must be an integer, not {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ValuesError(f"{path}: must be a string, not {value!r}")
        return value
    raise ValuesError(f"{path}: unsupported type")  # pragma: no cover


def _build(cls: Any, data: Any, path: str) -> Any:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ValuesError(f"{path or 'values'}: must be a mapping, not {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {_key_of(f): f for f in dataclasses.fields(cls)}
    for key in data:
        if key not in fields:
            where = f"{path}.{key}" if path else str(key)
            raise ValuesError(f"{where}: unknown key (known: {', '.join(sorted(fields))})")
    kwargs = {}
    for key, f in fields.items():
        where = f"{path}.{key}" if path else key
        if key in data:
            kwargs[f.name] = _convert(hints[f.name], data[key], where)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ValuesError(f"{where}: required")
    return cls(**kwargs)


_MAPPING_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(/[a-z0-9]([-a-z0-9]*[a-z0-9])?)?$")


def parse_values(data: Any) -> Values:
    """Validate a loaded YAML document into ``Values``."""
    values: Values = _build(Values, data, "")
    for side, items in (("fromHost", values.map_services.from_host),
                        ("fromVirtual", values.map_services.from_virtual)):
        for i, m in enumerate(items):
            for attr, key in (("from_", "from"), ("to", "to")):
                if not _MAPPING_RE.match(getattr(m, attr)):
                    raise ValuesError(f"mapServices.{side}[{i}].{key}: must be NAMESPACE/NAME "
                                      f"or NAME, not {getattr(m, attr)!r}")
    for term in filter(None, values.sync.nodes.node_selector.split(",")):
        if "=" not in term:
            raise ValuesError(f"sync.nodes.nodeSelector: {term!r} is not key=value")
    if values.replicas < 1:
        raise ValuesError("replicas: must be at least 1")
    return values


def load_values(text: str) -> Values:
    """Parse values YAML text (empty text gives the defaults)."""
    try:
        data = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError as e:
        raise ValuesError(f"values: not valid YAML: {e}") from e
    return parse_values(data)


def dump_values(values: Values) -> dict[str, Any]:
    """The full values document (defaults filled in), camelCase keys: for display/storage."""
    def conv(v: Any) -> Any:
        if dataclasses.is_dataclass(v):
            return {_key_of(f): conv(getattr(v, f.name)) for f in dataclasses.fields(v)}
        if isinstance(v, tuple):
            return [conv(x) for x in v]
        return v
    return conv(values)
