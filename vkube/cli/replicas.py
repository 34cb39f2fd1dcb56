"""How many API server replicas a virtual cluster runs where ``vkube`` puts it (``enableHA``).

In a host cluster (``render``, ``--in-cluster``) the StatefulSet runs ``replicas`` pods on the
shared store. A local ``vkube create`` runs ``replicas`` supervised ``serve`` processes on the
shared store behind one loopback front (``process``, ``front``)."""

from __future__ import annotations

from typing import Any


def wanted(values: dict[str, Any]) -> int:
    """API server replicas the (raw) values ask for: more than one only with ``enableHA``."""
    n = values.get("replicas", 1)
    return n if values.get("enableHA") and isinstance(n, int) and not isinstance(n, bool) else 1


def check_local(values: dict[str, Any]) -> None:
    """Several local replicas need values that hold up (a shared store: HA on SQLite is
    refused with its reason) before any process starts."""
    if wanted(values) > 1:
        from vkube.cli.values_files import validate

        validate(values)
