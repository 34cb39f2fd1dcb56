"""A PersistentVolumeClaim spec as the host sees it: the claims the syncer makes and the ones
the host makes from a pod's generic ephemeral volume template follow one rule.

- ``storageClassName``: ``NAME-x-VC`` when StorageClasses are synced (the host's otherwise).
- ``dataSource`` / ``dataSourceRef``: a claim or snapshot of the claim's own namespace is the
  tenant's host copy. A data source in *another* namespace (``dataSourceRef.namespace``,
  upstream's CrossNamespaceVolumeDataSource) is refused: the host would read it as one of
  its own namespaces, and translated into the single host namespace it would need no
  ReferenceGrant there, skipping the one the source's namespace must give.
- ``selector``: it picks the PersistentVolumes the claim may bind; on the host it picks only
  the volumes this virtual cluster synced down (never the host's own, nor another cluster's).
  A claim of ``storageClassName: ""`` (static provisioning: it binds only existing volumes of
  no class, never provisions) gets that selector even without one of its own: in a virtual
  cluster "an existing volume" means one of its own, not any Available volume of the host.
  Other claims get none (a selector turns dynamic provisioning off).
"""

from __future__ import annotations

from collections.abc import Callable

from vkube.api.meta import Obj
from vkube.syncer.translate import Translator

DATA_SOURCE_KEYS = ("dataSource", "dataSourceRef")


def claim_spec_problems(spec: Obj, namespace: str, field: str = "spec") -> list[str]:
    """Why a claim spec (at ``field``) cannot go to the host, each naming its field."""
    out = []
    for key in DATA_SOURCE_KEYS:
        src = spec.get(key)
        if isinstance(src, dict) and src.get("namespace") and src["namespace"] != namespace:
            out.append(f"{field}.{key}.namespace: data source {src['namespace']}/"
                       f"{src.get('name', '')} is in another namespace; cross-namespace volume "
                       "data sources (and their ReferenceGrants) are not synced to the host — "
                       "copy the source into this namespace")
    return out


def translate_claim_spec(spec: Obj, namespace: str, tr: Translator, *, sync_storage_classes: bool,
                         volume_name: Callable[[str], str | None]) -> None:
    """``spec`` (a copy) rewritten in place for the host; :func:`claim_spec_problems` first.
    ``volume_name``: the host PV behind a virtual one (None: leave the binding to the host)."""
    if spec.get("storageClassName") and sync_storage_classes:
        spec["storageClassName"] = tr.host_cluster_name(spec["storageClassName"])
    if spec.get("volumeName"):
        host_pv = volume_name(spec["volumeName"])
        if host_pv:
            spec["volumeName"] = host_pv
        else:
            spec.pop("volumeName")  # the host binds; the name comes back up
    for key in DATA_SOURCE_KEYS:
        src = spec.get(key)
        if isinstance(src, dict) and src.get("name"):
            src.pop("namespace", None)  # only its own namespace passes the check
            src["name"] = tr.host_name(src["name"], namespace)
    if isinstance(spec.get("selector"), dict):
        spec["selector"] = tr.translate_selector_pv(spec["selector"])
    elif spec.get("storageClassName") == "":
        spec["selector"] = tr.translate_selector_pv({})
