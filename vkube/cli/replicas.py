"""How many API server replicas a virtual cluster runs where ``vkube`` puts it (``enableHA``).

In a host cluster (``render``, ``--in-cluster``) the StatefulSet runs ``replicas`` pods on the
shared store. A local ``vkube create`` supervises one ``serve`` process; several local replicas
are not built yet, so asking for them is refused by name rather than silently run as one."""

from __future__ import annotations

from typing import Any

from vkube.cli.output import CLIError


def wanted(values: dict[str, Any]) -> int:
    """API server replicas the (raw) values ask for: more than one only with ``enableHA``."""
    n = values.get("replicas", 1)
    return n if values.get("enableHA") and isinstance(n, int) and not isinstance(n, bool) else 1


def refuse_local(values: dict[str, Any]) -> None:
    n = wanted(values)
    if n > 1:
        from vkube.cli.values_files import validate

        validate(values)  # invalid values (HA on SQLite) say so first
        raise CLIError(f"replicas: {n} API server replicas run in a host cluster "
                       "(`vkube create NAME --in-cluster -f values.yaml`) or as one `vkube serve "
                       "-f values.yaml` per replica on the shared store; a local `vkube create` "
                       "runs one — set replicas: 1 (enableHA: true keeps its leader election)")
