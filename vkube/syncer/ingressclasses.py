"""IngressClasses, host → virtual (with ``sync.ingressclasses.enabled``): the host's classes are the ones
its ingress controllers serve, so a tenant sees them (same name, spec, default annotation) and
can name them in its Ingresses. The copies carry ``vkube.io/from-host``; the syncer keeps them
equal to the host's and deletes them when the host's go. A class the tenant made itself is
never touched (it names nothing on the host)."""

from __future__ import annotations

import copy

from vkube.api import errors
from vkube.api.meta import Obj, object_key
from vkube.client.resources import INGRESSCLASSES
from vkube.syncer.base import KindSyncer, copy_drifted, delete_ignore_missing

ANN_FROM_HOST = "vkube.io/from-host"
_DEFAULT = "ingressclass.kubernetes.io/is-default-class"


class IngressClassSyncer(KindSyncer):
    kind = "ingressclasses"

    def setup(self) -> None:
        self.vinf = self.ctx.informers.virtual(INGRESSCLASSES)
        self.hinf = self.ctx.informers.host(INGRESSCLASSES, owned=False)
        for inf in (self.vinf, self.hinf):
            inf.add_handler(lambda t, o, old: self.enqueue(object_key(o)))

    def initial_keys(self) -> list[str]:
        return sorted({object_key(o) for o in self.vinf.list()} |
                      {object_key(o) for o in self.hinf.list()})

    def desired(self, hobj: Obj) -> Obj:
        ann = {k: v for k, v in (hobj["metadata"].get("annotations") or {}).items() if k == _DEFAULT}
        return {"apiVersion": INGRESSCLASSES.api_version, "kind": "IngressClass",
                "metadata": {"name": hobj["metadata"]["name"],
                             "labels": dict(hobj["metadata"].get("labels") or {}),
                             "annotations": {**ann, ANN_FROM_HOST: "true"}},
                "spec": copy.deepcopy(hobj.get("spec") or {})}

    async def reconcile(self, key: str) -> None:
        hobj, vobj = self.hinf.get(key), self.vinf.get(key)
        ours = vobj is not None and ANN_FROM_HOST in (vobj["metadata"].get("annotations") or {})
        if hobj is None:
            if ours:
                await delete_ignore_missing(self.ctx.virtual, INGRESSCLASSES, key, None)
            return
        want = self.desired(hobj)
        if vobj is None:
            try:
                await self.ctx.virtual.create(INGRESSCLASSES, want)
            except errors.AlreadyExists:
                pass
            return
        if not ours:
            return  # the tenant's own class of that name wins inside the virtual cluster
        new = copy_drifted(vobj, want)
        if new is not None:
            await self.ctx.virtual.update(INGRESSCLASSES, new)
