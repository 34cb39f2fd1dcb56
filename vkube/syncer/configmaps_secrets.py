"""ConfigMaps and Secrets: copied to the host only while a synced pod (or ingress, for TLS
secrets, or a synced custom resource whose patches reference them) uses them, kept in sync,
removed when nothing uses them any more.

Secrets never reach the host as ``kubernetes.io/service-account-token``: the host's token
controller would fill such a Secret with a token of a *host* service account.
"""

from __future__ import annotations

from typing import Any

from vkube.api.meta import Obj, ref_key
from vkube.client.resources import CONFIGMAPS, INGRESSES, PODS, SECRETS
from vkube.syncer.base import DownSyncer, SyncContext
from vkube.api.ingressannotations import secret_refs
from vkube.syncer.podrewrite import referenced_objects

_SA_TOKEN = "kubernetes.io/service-account-token"


def _pod_configmaps(pod: Obj) -> list[str]:
    ns = pod["metadata"].get("namespace")
    return [ref_key(ns, n) for n in referenced_objects(pod)[0]]


def _pod_secrets(pod: Obj) -> list[str]:
    ns = pod["metadata"].get("namespace")
    return [ref_key(ns, n) for n in referenced_objects(pod)[1]]


def _ingress_secrets(ing: Obj) -> list[str]:
    ns = ing["metadata"].get("namespace")
    return [ref_key(ns, t["secretName"]) for t in (ing.get("spec") or {}).get("tls") or []
            if t.get("secretName")] + [  # auth-secret, auth-tls-secret, proxy-ssl-secret
        ref_key(ns, n) for n in secret_refs(ing["metadata"].get("annotations") or {}, ns or "")]


class _UsedBy(DownSyncer):
    index = ""
    index_fn: Any = None
    replace_on_invalid = True  # immutable ConfigMaps/Secrets: the virtual one is the truth
    option = ""

    def __init__(self, ctx: SyncContext) -> None:
        super().__init__(ctx)
        self.sync_all = getattr(ctx.values.sync, self.option).all
        #: objects used by other synced objects (custom resources' references): user → keys
        self.used_by: dict[str, frozenset[str]] = {}

    def use(self, user: str, keys: set[str]) -> None:
        """``user`` (another synced object) now uses ``keys``: sync those, drop what it no
        longer uses."""
        old, new = self.used_by.get(user, frozenset()), frozenset(keys)
        if old == new:
            return
        if new:
            self.used_by[user] = new
        else:
            self.used_by.pop(user, None)
        for key in old ^ new:
            self.enqueue(key)

    def setup(self) -> None:
        super().setup()
        self.pods = self.ctx.informers.virtual(PODS)
        self.pods.add_index(self.index, type(self).index_fn)
        self.pods.add_handler(self._on_user)

    def _on_user(self, typ: str, obj: Obj, old: Obj | None) -> None:
        if typ == "MODIFIED" and old is not None and old.get("spec") == obj.get("spec"):
            return  # metadata or status only: what it references lives in its spec
        keys = set(type(self).index_fn(obj))
        if old is not None:
            old_keys = set(type(self).index_fn(old))
            if typ == "MODIFIED" and old_keys == keys:
                return  # a status update: what the pod uses did not change
            keys |= old_keys
        for k in keys:
            self.enqueue(k)

    def wanted(self, vobj: Obj) -> bool:
        if self.sync_all:
            return True
        meta = vobj["metadata"]
        key = ref_key(meta.get("namespace"), meta["name"])
        return bool(self.pods.by_index(self.index, key)) or any(key in keys for keys in self.used_by.values())

    def initial_keys(self) -> list[str]:
        keys = set(super().initial_keys())
        if not self.sync_all:  # only referenced ones matter; orphans come from the host list
            keys = {k for k in keys if self.hinf.get(self.host_name(*_rev(k)),
                                                     self.ctx.host_namespace) is not None}
            for pod in self.pods.list():
                keys.update(type(self).index_fn(pod))
        return sorted(keys)


def _rev(key: str) -> tuple[str, str]:
    ns, _, name = key.rpartition("/")
    return name, ns


class ConfigMapSyncer(_UsedBy):
    kind = "configmaps"
    vres = hres = CONFIGMAPS
    fields = ("data", "binaryData", "immutable")
    index = "configmaps"
    index_fn = staticmethod(_pod_configmaps)
    option = "configmaps"


class SecretSyncer(_UsedBy):
    kind = "secrets"
    vres = hres = SECRETS
    fields = ("data", "type", "immutable")
    index = "secrets"
    index_fn = staticmethod(_pod_secrets)
    option = "secrets"

    def setup(self) -> None:
        super().setup()
        if self.ctx.values.sync.ingresses.enabled:
            self.ingresses = self.ctx.informers.virtual(INGRESSES)
            self.ingresses.add_index("tls-secrets", _ingress_secrets)
            self.ingresses.add_handler(
                lambda t, o, old: [self.enqueue(k) for k in
                                   set(_ingress_secrets(o)) | set(_ingress_secrets(old or o))])
        else:
            self.ingresses = None

    def wanted(self, vobj: Obj) -> bool:
        if super().wanted(vobj):
            return True
        meta = vobj["metadata"]
        key = ref_key(meta.get("namespace"), meta["name"])
        return bool(self.ingresses and self.ingresses.by_index("tls-secrets", key))

    def desired(self, vobj: Obj) -> Obj:
        out = super().desired(vobj)
        if out.get("type") == _SA_TOKEN:
            out["type"] = "Opaque"
        ann = out["metadata"]["annotations"]
        for k in [k for k in ann if k.startswith("kubernetes.io/service-account.")]:
            del ann[k]
        return out
