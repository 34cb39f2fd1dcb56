"""References inside custom resources synced to the host (``patches`` of
``sync.toHost.customResources``, as vcluster's generic sync names them): a field that names
another object of the virtual cluster gets that object's host name, so a host operator
finds what the tenant meant.

A patch is a dotted ``path`` (``[*]`` for every item of a list) and the ``reference``'s kind:
a string field holds a name in the custom resource's own namespace; with ``namePath`` (and
``namespacePath``) the field is an object holding the name (and a namespace, which becomes
the host namespace).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from vkube.syncer.translate import DNS_LABEL_MAX, DNS_SUBDOMAIN_MAX, Translator

__all__ = ["ReferencePatcher"]

Obj = dict[str, Any]
#: kinds whose synced host names are DNS labels (everything else: subdomains)
_LABEL_KINDS = {"Service"}


def _locate(obj: Any, parts: list[str]) -> Iterator[tuple[Any, Any]]:
    """(container, key) of every value at ``parts`` (``name[*]`` walks a list)."""
    if not parts:
        return
    head, rest = parts[0], parts[1:]
    many = head.endswith("[*]")
    name = head[:-3] if many else head
    if not isinstance(obj, dict) or name not in obj:
        return
    if not many:
        if rest:
            yield from _locate(obj[name], rest)
        else:
            yield obj, name
        return
    items = obj[name]
    if not isinstance(items, list):
        return
    for i, item in enumerate(items):
        if rest:
            yield from _locate(item, rest)
        else:
            yield items, i


class ReferencePatcher:
    """Applies one kind's patches to the host copy of its objects."""

    def __init__(self, tr: Translator, patches: Any, namespaced: dict[str, bool]) -> None:
        """``namespaced``: for each referenced kind, whether it is namespaced (cluster-scoped
        kinds get ``NAME-x-VC``)."""
        self.tr = tr
        self.patches = tuple(patches)
        self.namespaced = namespaced

    def host_name(self, kind: str, name: str, namespace: str | None) -> str | None:
        limit = DNS_LABEL_MAX if kind in _LABEL_KINDS else DNS_SUBDOMAIN_MAX
        if not self.namespaced.get(kind, True):
            return self.tr.host_cluster_name(name, limit=limit)
        if not namespace:
            return None  # a namespaced object named without a namespace: nothing to translate to
        return self.tr.host_name(name, namespace, limit=limit)

    def apply(self, obj: Obj, namespace: str | None) -> list[tuple[str, str, str]]:
        """Translate every reference of ``obj`` (a host copy, changed in place); returns the
        namespaced objects referenced, as (kind, namespace, name) in the virtual cluster."""
        used: list[tuple[str, str, str]] = []
        for patch in self.patches:
            ref = patch.reference
            for holder, key in list(_locate(obj, patch.path.split("."))):
                value = holder[key]
                if ref.name_path:
                    if not isinstance(value, dict) or not isinstance(value.get(ref.name_path), str):
                        continue
                    ns = (value.get(ref.namespace_path) if ref.namespace_path else None) or namespace
                    vname = value[ref.name_path]
                    hname = self.host_name(ref.kind, vname, ns)
                    if hname is not None:
                        value[ref.name_path] = hname
                        if ns and self.namespaced.get(ref.kind, True):
                            used.append((ref.kind, ns, vname))
                        if ref.namespace_path and self.namespaced.get(ref.kind, True):
                            value[ref.namespace_path] = self.tr.host_namespace
                elif isinstance(value, str) and value:
                    hname = self.host_name(ref.kind, value, namespace)
                    if hname is not None:
                        holder[key] = hname
                        if namespace and self.namespaced.get(ref.kind, True):
                            used.append((ref.kind, namespace, value))
        return used
