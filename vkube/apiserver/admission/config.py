"""kube-apiserver's ``--admission-control-config-file``: an ``AdmissionConfiguration`` whose
plugins carry their own configuration, inline (``configuration``) or in a file (``path``).
vkube reads the one it can act on — ``PodSecurity``'s ``PodSecurityConfiguration`` (cluster-wide
``defaults`` for namespaces without labels, ``exemptions`` by username, namespace and
runtimeClassName) — and refuses any other plugin's configuration by name."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from vkube.api import yamlio

from vkube.api.podsecurity import Exemptions, policy_to_evaluate
from vkube.api.podsecurity.policy import LABEL_PREFIX
from vkube.apiserver.admission.podsecurity import PodSecurity

_MODES = ("enforce", "enforce-version", "audit", "audit-version", "warn", "warn-version")


class AdmissionConfigError(ValueError):
    """The file cannot be used; the message names the field."""


def _read(path: Path) -> Any:
    try:
        return yamlio.load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise AdmissionConfigError(f"cannot read admission config {path}: {exc}") from None


def pod_security_from(doc: Any, where: str = "configuration") -> PodSecurity:
    if not isinstance(doc, Mapping) or doc.get("kind") != "PodSecurityConfiguration":
        raise AdmissionConfigError(f"{where}.kind: must be PodSecurityConfiguration "
                                   "(apiVersion pod-security.admission.config.k8s.io/v1)")
    defaults = doc.get("defaults") or {}
    unknown = sorted(set(defaults) - set(_MODES))
    if unknown:
        raise AdmissionConfigError(f'{where}.defaults: Unsupported value: "{unknown[0]}": supported values: '
                                   + ", ".join(f'"{m}"' for m in _MODES))
    policy, errors = policy_to_evaluate({LABEL_PREFIX + k: str(v) for k, v in defaults.items()})
    if errors:
        field = errors[0].get("field", "").replace(f"metadata.labels[{LABEL_PREFIX}", f"{where}.defaults[")
        message = errors[0]["message"]
        raise AdmissionConfigError(message if message.startswith(field) else f"{field}: {message}")
    ex = doc.get("exemptions") or {}
    exemptions = Exemptions(usernames=frozenset(map(str, ex.get("usernames") or ())),
                            namespaces=frozenset(map(str, ex.get("namespaces") or ())),
                            runtime_classes=frozenset(map(str, ex.get("runtimeClasses") or ())))
    return PodSecurity(defaults=policy, exemptions=exemptions)


def load(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Plugin name → its configured instance (only PodSecurity for now)."""
    path = Path(path)
    doc = _read(path)
    if not isinstance(doc, Mapping) or doc.get("kind") != "AdmissionConfiguration":
        raise AdmissionConfigError("kind: must be AdmissionConfiguration (apiVersion apiserver.config.k8s.io/v1)")
    out: dict[str, Any] = {}
    for i, plugin in enumerate(doc.get("plugins") or []):
        name = (plugin or {}).get("name")
        where = f"plugins[{i}]"
        if name != "PodSecurity":
            raise AdmissionConfigError(f'{where}.name: configuration of "{name}" is not supported by vkube '
                                       '(only "PodSecurity" is configurable)')
        conf = plugin.get("configuration")
        if conf is None and plugin.get("path"):
            ref = Path(plugin["path"])
            conf = _read(ref if ref.is_absolute() else path.parent / ref)
        if conf is None:
            raise AdmissionConfigError(f"{where}: configuration or path: Required value")
        out[name] = pod_security_from(conf, f"{where}.configuration")
    return out
