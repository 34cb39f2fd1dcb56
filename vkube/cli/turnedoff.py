"""``vkube create NAME --upgrade``: host copies of a kind whose sync the new values turn off go.

The syncer of the new values no longer watches that kind, and a confined syncer
(``vkube.cli.syncercred``) may no longer even list it; left behind, a tenant's NetworkPolicy
would keep shaping traffic and its Ingress routing it, although the values say they are not
synced. So the CLI removes them, with the user's credentials: only copies of tenant objects
(the syncer's owner label and its object-name annotation prove it).

Custom resources dropped from ``sync.toHost.customResources`` go the same way. Kinds whose host
copies other synced objects still use (pods' ConfigMaps, Secrets and token Secrets, Services,
claims and their volumes) are left alone, and the user is told so: see ``KEPT``."""

from __future__ import annotations

from typing import Any

from vkube.api import errors
from vkube.client import Client
from vkube.client.resources import (INGRESSES, NETWORKPOLICIES, PRIORITYCLASSES, STORAGECLASSES,
                                    Resource)

#: sync key → the host kind its copies are
REMOVED = (("networkpolicies", NETWORKPOLICIES), ("ingresses", INGRESSES),
           ("priorityclasses", PRIORITYCLASSES), ("storageclasses", STORAGECLASSES))
#: turned off, their copies stay (data, or still used by running pods)
KEPT = ("pods", "configmaps", "secrets", "services", "endpoints", "persistentvolumeclaims",
        "persistentvolumes", "serviceaccounts", "resourceclaims")


def _on(values: Any, key: str) -> bool:
    return bool(getattr(values.sync, key).enabled)


def _custom(values: Any) -> set[str]:
    return {k for k, v in values.sync.to_host.custom_resources.items() if v.enabled}


def kept_note(old: dict[str, Any], new: dict[str, Any]) -> str | None:
    """One line naming the kinds ``new`` turns off whose host copies stay, and why."""
    from vkube.syncer.values import ValuesError, parse_values

    try:
        before, after = parse_values(dict(old or {})), parse_values(dict(new or {}))
    except ValuesError:
        return None
    def on(values: Any, key: str) -> bool:
        return bool(getattr(getattr(values.sync, key, None), "enabled", False))
    kept = [k for k in KEPT if on(before, k) and not on(after, k)]
    if not kept:
        return None
    return (f"sync turned off for {', '.join(kept)}: their host copies stay (running pods "
            "still use them, or they hold data); `vkube delete` removes them with the cluster")


async def _remove(hc: Client, res: Resource, name: str, namespace: str) -> int:
    """Delete the host copies of tenant objects of ``res`` that cluster ``name`` made."""
    from vkube.syncer.translate import ANN_NAME, LABEL_MANAGED_BY

    ns = namespace if res.namespaced else None
    try:
        items = (await hc.list_all(res, namespace=ns,
                                   label_selector=f"{LABEL_MANAGED_BY}={name}"))["items"]
    except (errors.NotFound, errors.Forbidden):
        return 0
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
    return n


async def remove_turned_off(hc: Client, name: str, namespace: str, old: dict[str, Any],
                            new: dict[str, Any]) -> list[str]:
    """Delete the host copies of every kind in ``REMOVED``, and of every custom resource kind
    of ``sync.toHost.customResources``, that ``old`` synced and ``new`` does not; returns
    ``"KIND (N)"`` for each kind with copies removed."""
    from vkube.syncer.customresources import find_kind
    from vkube.syncer.values import ValuesError, parse_values

    try:
        before, after = parse_values(dict(old or {})), parse_values(dict(new or {}))
    except ValuesError:  # values of an older vkube: nothing known to compare
        return []
    done = []
    for key, res in REMOVED:
        if _on(before, key) and not _on(after, key) and (n := await _remove(hc, res, name, namespace)):
            done.append(f"{res.plural} ({n})")
    for key in sorted(_custom(before) - _custom(after)):
        kind, _, group = key.partition(".")
        try:
            found = await find_kind(hc, kind, group)
        except (errors.NotFound, errors.Forbidden):
            continue
        if found is not None and (n := await _remove(hc, found[0], name, namespace)):
            done.append(f"{key} ({n})")
    return done
