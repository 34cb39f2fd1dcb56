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


def check_local(values: dict[str, Any], name: str | None = None) -> None:
    """Several local replicas need values that hold up (a shared store: HA on SQLite is
    refused with its reason) before any process starts; and a PostgreSQL or etcd store that
    another local cluster already uses is refused (``name``: the cluster being created)."""
    if wanted(values) > 1:
        from vkube.cli.values_files import validate

        validate(values)
    if name is not None:
        check_store_free(name, values)


def _store_of(values: dict[str, Any]) -> str:
    store = (values.get("controlPlane") or {}).get("store")
    return "" if not isinstance(store, str) or store in ("", "sqlite") else store.rstrip("/")


def check_store_free(name: str, values: dict[str, Any]) -> None:
    """One store (database, or etcd key prefix) per virtual cluster: two clusters on one
    would see each other's objects and both sync them to the host."""
    from vkube.cli import state
    from vkube.cli.output import CLIError

    url = _store_of(values)
    if not url:
        return
    for other in state.local_names():
        if other == name:
            continue
        st = state.ClusterState.load(other)
        if st is not None and _store_of(st.values or {}) == url:
            raise CLIError(f"controlPlane.store {url} is already the store of virtual cluster "
                           f"{other!r}: two clusters on one store would share every object — "
                           "give this one its own database (postgres://…/OTHER_DB) or etcd key "
                           "prefix (etcd://HOST:PORT/OTHER_PREFIX)")
