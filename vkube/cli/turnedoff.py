"""``vkube create NAME --upgrade``: host copies of a kind whose sync the new values turn off go.

The syncer of the new values no longer watches that kind, and a confined syncer
(``vkube.cli.syncercred``) may no longer even list it; left behind, a tenant's NetworkPolicy
would keep shaping traffic and its Ingress routing it, although the values say they are not
synced. So the CLI removes them, with the user's credentials: only copies of tenant objects
(the syncer's owner label and its object-name annotation prove it).

Kinds whose host copies other synced objects still use (pods' ConfigMaps, Secrets and token
Secrets, Services, claims and their volumes) are left alone: see ``KEPT``."""

from __future__ import annotations

from typing import Any

from vkube.api import errors
from vkube.client import Client
from vkube.client.resources import INGRESSES, NETWORKPOLICIES, PRIORITYCLASSES, STORAGECLASSES

#: sync key → the host kind its copies are
REMOVED = (("networkpolicies", NETWORKPOLICIES), ("ingresses", INGRESSES),
           ("priorityclasses", PRIORITYCLASSES), ("storageclasses", STORAGECLASSES))
#: turned off, their copies stay (data, or still used by running pods)
KEPT = ("pods", "configmaps", "secrets", "services", "endpoints", "persistentvolumeclaims",
        "persistentvolumes", "serviceaccounts", "resourceclaims")


def _on(values: Any, key: str) -> bool:
    return bool(getattr(values.sync, key).enabled)


async def remove_turned_off(hc: Client, name: str, namespace: str, old: dict[str, Any],
                            new: dict[str, Any]) -> list[str]:
    """Delete the host copies of every kind in ``REMOVED`` that ``old`` synced and ``new``
    does not; returns ``"KIND (N)"`` for each kind with copies removed."""
    from vkube.syncer.translate import ANN_NAME, LABEL_MANAGED_BY
    from vkube.syncer.values import ValuesError, parse_values

    try:
        before, after = parse_values(dict(old or {})), parse_values(dict(new or {}))
    except ValuesError:  # values of an older vkube: nothing known to compare
        return []
    done = []
    for key, res in REMOVED:
        if not _on(before, key) or _on(after, key):
            continue
        ns = namespace if res.namespaced else None
        try:
            items = (await hc.list_all(res, namespace=ns,
                                       label_selector=f"{LABEL_MANAGED_BY}={name}"))["items"]
        except (errors.NotFound, errors.Forbidden):
            continue
        n = 0
        for obj in items:
            meta = obj.get("metadata") or {}
            if ANN_NAME not in (meta.get("annotations") or {}):
                continue  # not a tenant object's copy
            try:
                await hc.delete(res, meta["name"], namespace=ns)
                n += 1
            except errors.NotFound:
                pass
        if n:
            done.append(f"{res.plural} ({n})")
    return done
