"""Per-namespace defaults every namespace gets in Kubernetes: the ``default`` ServiceAccount
(serviceaccounts-controller) and the ``kube-root-ca.crt`` ConfigMap (root-ca-cert-publisher)
with the cluster CA, so pods can trust the API server."""

from __future__ import annotations

from vkube.api import errors
from vkube.client.resources import CONFIGMAPS, NAMESPACES, SERVICEACCOUNTS
from vkube.controllers.runtime import Controller, Obj
from vkube.controllers.vanished import quiet_when_vanished

ROOT_CA_NAME = "kube-root-ca.crt"
ROOT_CA_KEY = "ca.crt"
DEFAULT_SA = "default"


def _active(ns: Obj | None) -> bool:
    return ns is not None and not ns["metadata"].get("deletionTimestamp") and (
        (ns.get("status") or {}).get("phase") != "Terminating")


class ServiceAccountController(Controller):
    name = "serviceaccount-controller"

    def setup(self) -> None:
        self.namespaces = self.mgr.informer(NAMESPACES)
        self.sas = self.mgr.informer(SERVICEACCOUNTS)
        self.namespaces.add_handler(self.handler)
        self.sas.add_handler(self._on_sa)

    def _on_sa(self, typ: str, obj: Obj, old: Obj | None) -> None:
        if typ == "DELETED" and obj["metadata"]["name"] == DEFAULT_SA:
            self.queue.add(obj["metadata"]["namespace"])

    @quiet_when_vanished("namespaces")
    async def reconcile(self, key: str) -> float | None:
        if not _active(self.namespaces.get(key)) or self.sas.get(DEFAULT_SA, key) is not None:
            return None
        try:
            await self.client.create(SERVICEACCOUNTS, {
                "apiVersion": "v1", "kind": "ServiceAccount",
                "metadata": {"name": DEFAULT_SA, "namespace": key}})
        except errors.AlreadyExists:
            pass
        except errors.Forbidden:
            return None  # namespace is terminating on the server side
        return None


class RootCAConfigMapController(Controller):
    name = "root-ca-cert-publisher"

    def setup(self) -> None:
        self.namespaces = self.mgr.informer(NAMESPACES)
        self.cms = self.mgr.informer(CONFIGMAPS, field_selector=f"metadata.name={ROOT_CA_NAME}")
        self.namespaces.add_handler(self.handler)
        self.cms.add_handler(lambda typ, obj, old: self.queue.add(obj["metadata"]["namespace"]))

    @quiet_when_vanished("namespaces")
    async def reconcile(self, key: str) -> float | None:
        if not _active(self.namespaces.get(key)):
            return None
        want = {ROOT_CA_KEY: self.mgr.root_ca_pem}
        cm = self.cms.get(ROOT_CA_NAME, key)
        try:
            if cm is None:
                await self.client.create(CONFIGMAPS, {
                    "apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": ROOT_CA_NAME, "namespace": key,
                                 "annotations": {"kubernetes.io/description": (
                                     "Contains a CA bundle that can be used to verify the "
                                     "kube-apiserver when using internal endpoints such as the "
                                     "internal service IP or kubernetes.default.svc. No other "
                                     "usage is guaranteed across distributions of Kubernetes "
                                     "clusters.")}},
                    "data": want})
            elif cm.get("data") != want:
                await self.client.patch(CONFIGMAPS, ROOT_CA_NAME, {
                    "metadata": {"resourceVersion": cm["metadata"]["resourceVersion"]},
                    "data": {**{k: None for k in cm.get("data") or {}}, **want}},
                    namespace=key)
        except (errors.AlreadyExists, errors.NotFound):
            pass  # the informer will bring the newer state
        except errors.Forbidden:
            pass  # namespace terminating
        return None
