"""Discovery documents: legacy (/api, /apis, /apis/G/V) and aggregated (apidiscovery.k8s.io/v2),
computed from the control plane's Registry and cached until it changes."""

from __future__ import annotations

import hashlib
from typing import Any

from vkube.api.kinds import Registry, ResourceSpec
from vkube.api.meta import Obj


# subresource -> (group, version, kind or "" for the parent's kind, verbs)
_SUBRESOURCES: dict[str, tuple[str, str, str, tuple[str, ...]]] = {
    "status": ("", "", "", ("get", "patch", "update")),
    "scale": ("autoscaling", "v1", "Scale", ("get", "patch", "update")),
    "log": ("", "v1", "Pod", ("get",)),
    "binding": ("", "v1", "Binding", ("create",)),
    "eviction": ("policy", "v1", "Eviction", ("create",)),
    "exec": ("", "v1", "PodExecOptions", ("create", "get")),
    "attach": ("", "v1", "PodAttachOptions", ("create", "get")),
    "portforward": ("", "v1", "PodPortForwardOptions", ("create", "get")),
    "ephemeralcontainers": ("", "", "", ("get", "patch", "update")),
    "finalize": ("", "", "", ("update",)),
    "token": ("authentication.k8s.io", "v1", "TokenRequest", ("create",)),
    "proxy": ("", "v1", "", ("create", "delete", "get", "patch", "update")),
}


def storage_version_hash(spec: ResourceSpec) -> str:
    digest = hashlib.sha256(f"{spec.group}/{spec.version}/{spec.kind}".encode()).digest()
    import base64

    return base64.b64encode(digest[:8]).decode()


def _sub_info(spec: ResourceSpec, sub: str) -> tuple[str, str, str, tuple[str, ...]]:
    group, version, kind, verbs = _SUBRESOURCES.get(sub, ("", "", "", ("get",)))
    if not kind:
        group, version, kind = spec.group, spec.version, spec.kind
    return group, version, kind, verbs


class Discovery:
    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self._cache: dict[str, Obj] = {}
        self._generation = -1

    def _cached(self, key: str, build: Any) -> Obj:
        if self._generation != self.registry.generation:
            self._cache.clear()
            self._generation = self.registry.generation
        doc = self._cache.get(key)
        if doc is None:
            doc = self._cache[key] = build()
        return doc

    def _specs(self, group: str, version: str) -> list[ResourceSpec]:
        return [s for s in self.registry.all() if s.group == group and s.version == version]

    # ---------------------------------------------------------------- legacy
    def api_versions(self) -> Obj:
        return {"kind": "APIVersions", "versions": ["v1"],
                "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]}

    def _group(self, group: str, versions: list[str]) -> Obj:
        vs = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
        return {"name": group, "versions": vs, "preferredVersion": vs[0]}

    def api_group_list(self) -> Obj:
        def build() -> Obj:
            groups = [self._group(g, vs) for g, vs in self.registry.groups().items() if g]
            return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}
        return self._cached("groups", build)

    def api_group(self, group: str) -> Obj | None:
        versions = self.registry.groups().get(group)
        if not group or not versions:
            return None
        return {"kind": "APIGroup", "apiVersion": "v1", **self._group(group, versions)}

    def resource_list(self, group: str, version: str) -> Obj | None:
        def build() -> Obj:
            resources = []
            for spec in self._specs(group, version):
                resources.append({
                    "name": spec.plural, "singularName": spec.singular,
                    "namespaced": spec.namespaced, "kind": spec.kind, "verbs": list(spec.verbs),
                    **({"shortNames": list(spec.short_names)} if spec.short_names else {}),
                    **({"categories": list(spec.categories)} if spec.categories else {}),
                    "storageVersionHash": storage_version_hash(spec),
                })
                for sub in spec.subresources:
                    g, v, k, verbs = _sub_info(spec, sub)
                    entry: Obj = {"name": f"{spec.plural}/{sub}", "singularName": "",
                                  "namespaced": spec.namespaced, "kind": k, "verbs": list(verbs)}
                    if g != spec.group or v != spec.version:
                        entry.update(group=g, version=v)
                    resources.append(entry)
            gv = f"{group}/{version}" if group else version
            return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv,
                    "resources": resources}
        if not self._specs(group, version):
            return None
        return self._cached(f"rl/{group}/{version}", build)

    # ---------------------------------------------------------------- aggregated (v2)
    def aggregated(self, core: bool, version: str = "v2") -> Obj:
        def build() -> Obj:
            items = []
            for group, versions in self.registry.groups().items():
                if bool(group) == core:
                    continue
                items.append({
                    "metadata": {"name": group, "creationTimestamp": None},
                    "versions": [
                        {"version": v, "resources": [self._agg_resource(s) for s in self._specs(group, v)],
                         "freshness": "Current"}
                        for v in versions
                    ],
                })
            return {"kind": "APIGroupDiscoveryList", "apiVersion": f"apidiscovery.k8s.io/{version}",
                    "metadata": {}, "items": items}
        return self._cached(f"agg/{core}/{version}", build)

    def _agg_resource(self, spec: ResourceSpec) -> Obj:
        res: Obj = {
            "resource": spec.plural,
            "responseKind": {"group": spec.group, "version": spec.version, "kind": spec.kind},
            "scope": "Namespaced" if spec.namespaced else "Cluster",
            "singularResource": spec.singular,
            "verbs": list(spec.verbs),
        }
        if spec.short_names:
            res["shortNames"] = list(spec.short_names)
        if spec.categories:
            res["categories"] = list(spec.categories)
        subs = []
        for sub in spec.subresources:
            g, v, k, verbs = _sub_info(spec, sub)
            subs.append({"subresource": sub, "responseKind": {"group": g, "version": v, "kind": k},
                         "verbs": list(verbs)})
        if subs:
            res["subresources"] = subs
        return res
