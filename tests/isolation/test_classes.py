"""``isolation.allowedStorageClasses``/``allowedIngressClasses``: other classes are not synced,
with a Warning event on the virtual object naming the field and what is allowed."""

from __future__ import annotations

from vkube.client.resources import EVENTS, INGRESSES, PVCS
from vkube.syncer import load_values

from tests.syncer.conftest import (HOST_NS, VC, eventually, getter, planes,  # noqa: F401
                                   start_syncer, stop_syncer)


def pvc(name: str, cls: str) -> dict:
    return {"metadata": {"name": name, "namespace": "default"}, "spec": {
        "storageClassName": cls, "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": "1Gi"}}}}


def ingress(name: str, cls: str | None, annotation: str | None = None) -> dict:
    meta: dict = {"name": name, "namespace": "default"}
    if annotation:
        meta["annotations"] = {"kubernetes.io/ingress.class": annotation}
    spec: dict = {"defaultBackend": {"service": {"name": "web", "port": {"number": 80}}}}
    if cls:
        spec["ingressClassName"] = cls
    return {"metadata": meta, "spec": spec}


async def test_storage_and_ingress_classes(planes):  # noqa: F811
    vcp, hcp = planes
    values = load_values("isolation: {allowedStorageClasses: [fast], "
                         "allowedIngressClasses: [nginx]}")
    pair = await start_syncer(vcp, hcp, values)
    v, h = pair.virtual, pair.host
    try:
        await v.create(PVCS, pvc("slow", "slow"), namespace="default")
        await v.create(PVCS, pvc("quick", "fast"), namespace="default")
        await v.create(INGRESSES, ingress("public", "traefik"), namespace="default")
        await v.create(INGRESSES, ingress("legacy", None, "haproxy"), namespace="default")
        await v.create(INGRESSES, ingress("ok", "nginx"), namespace="default")
        await eventually(getter(h, PVCS, f"quick-x-default-x-{VC}", HOST_NS), attempts=400)
        await eventually(getter(h, INGRESSES, f"ok-x-default-x-{VC}", HOST_NS), attempts=400)

        async def events():
            evs = {e["involvedObject"]["name"]: e["message"]
                   for e in (await v.list(EVENTS, namespace="default"))["items"]
                   if e["reason"] == "SyncRejected" and e["type"] == "Warning"}
            assert set(evs) == {"slow", "public", "legacy"}, evs
            return evs
        evs = await eventually(events, attempts=400)
        assert evs["slow"] == ("spec.storageClassName: storage class 'slow' is not allowed in "
                               "this virtual cluster (allowed: fast); not synced to the host")
        assert evs["public"].startswith("spec.ingressClassName: ingress class 'traefik' is not "
                                        "allowed in this virtual cluster (allowed: nginx)")
        assert evs["legacy"].startswith(
            "metadata.annotations[kubernetes.io/ingress.class]: ingress class 'haproxy'")
        assert sorted(p["metadata"]["name"] for p in
                      (await h.list(PVCS, namespace=HOST_NS))["items"]) == \
            [f"quick-x-default-x-{VC}"]
        assert sorted(i["metadata"]["name"] for i in
                      (await h.list(INGRESSES, namespace=HOST_NS))["items"]) == \
            [f"ok-x-default-x-{VC}"]
    finally:
        await stop_syncer(pair)
