"""ServiceAccount (``plugin/pkg/admission/serviceaccount``): a pod runs as an existing service
account (``default`` unless named; refused when it does not exist), inherits its image pull
secrets, and gets the projected ``kube-api-access-XXXXX`` volume (token, ``kube-root-ca.crt``,
namespace) mounted read-only at the well-known path in every container — unless automount is
off on the pod or the service account, or a container already mounts something there."""

from __future__ import annotations

from vkube.api import errors
from vkube.api.forbidden import forbidden
from vkube.api.meta import Obj
from vkube.apiserver.context import AdmissionRequest, Context
from vkube.apiserver.objects import random_suffix
from vkube.apiserver.request import internal_context

DEFAULT_SA = "default"
VOLUME_PREFIX = "kube-api-access-"
TOKEN_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"
MIRROR = "kubernetes.io/config.mirror"
TOKEN_EXPIRATION = 3607  # serviceaccount.WarnOnlyBoundTokenExpirationSeconds


def token_volume(name: str) -> Obj:
    return {"name": name, "projected": {"defaultMode": 0o644, "sources": [
        {"serviceAccountToken": {"path": "token", "expirationSeconds": TOKEN_EXPIRATION}},
        {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
        {"downwardAPI": {"items": [{"path": "namespace",
                                    "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}},
    ]}}


def _is_pod_create(req: AdmissionRequest) -> bool:
    return (req.spec.group == "" and req.spec.kind == "Pod" and req.operation == "CREATE"
            and not req.subresource and req.obj is not None)


class ServiceAccount:
    """Where upstream waits (retrying for a while) for the serviceaccount controller to make a
    new namespace's ``default`` account, this plugin makes it itself — the controller's very
    action, done at once — so a pod never races a fresh namespace. Any other account must
    exist, or the pod is refused."""

    def __init__(self, *, mount_token: bool = True) -> None:
        self.mount_token = mount_token

    async def _lookup(self, ctx: Context, req: AdmissionRequest, name: str) -> Obj | None:
        storage, cache = ctx.storage_for("", "ServiceAccount"), ctx.cache_for("", "ServiceAccount")
        if storage is None or cache is None:
            return {}
        sa = await cache.get(req.request, req.namespace, name)
        if sa is not None or name != DEFAULT_SA:
            return sa
        if req.dry_run:
            return {}  # the real request would make it: a dry run writes nothing
        rc = internal_context("create", resource="serviceaccounts", version="v1", namespace=req.namespace or "",
                              field_manager="serviceaccount-admission")
        try:
            return await storage.create(rc, req.namespace, {"apiVersion": "v1", "kind": "ServiceAccount",
                                                            "metadata": {"name": DEFAULT_SA}})
        except errors.AlreadyExists:
            return await storage.get_or_none(req.request, req.namespace, name)
        except errors.Forbidden:
            return None  # the namespace is terminating

    async def mutate(self, ctx: Context, req: AdmissionRequest) -> None:
        if not _is_pod_create(req):
            return
        pod = req.obj
        assert pod is not None
        if MIRROR in ((pod.get("metadata") or {}).get("annotations") or {}):
            return
        spec = pod.setdefault("spec", {})
        name = spec.get("serviceAccountName") or DEFAULT_SA
        spec["serviceAccountName"] = spec["serviceAccount"] = name
        sa = await self._lookup(ctx, req, name)
        if sa is None:
            raise forbidden("pods", req.name, f"error looking up service account {req.namespace}/{name}: "
                            f'serviceaccount "{name}" not found')
        automount = spec.get("automountServiceAccountToken")
        if automount is None:
            automount = sa.get("automountServiceAccountToken", True)
        if self.mount_token and automount is not False:
            self._mount(spec)
        if not spec.get("imagePullSecrets") and sa.get("imagePullSecrets"):
            spec["imagePullSecrets"] = [{"name": s.get("name", "")} for s in sa["imagePullSecrets"]]

    @staticmethod
    def _mount(spec: Obj) -> None:
        volumes = spec.get("volumes") or []
        existing = next((v.get("name") for v in volumes if str(v.get("name", "")).startswith(VOLUME_PREFIX)), None)
        vol_name = existing or VOLUME_PREFIX + random_suffix()
        needs = False
        for key in ("initContainers", "containers"):
            for c in spec.get(key) or []:
                mounts = c.setdefault("volumeMounts", [])
                if any(m.get("mountPath") == TOKEN_PATH for m in mounts):
                    continue
                mounts.append({"name": vol_name, "readOnly": True, "mountPath": TOKEN_PATH})
                needs = True
        if needs and existing is None:
            spec.setdefault("volumes", []).append(token_volume(vol_name))

    async def validate(self, ctx: Context, req: AdmissionRequest) -> None:
        if not _is_pod_create(req):
            return
        pod = req.obj
        assert pod is not None
        if MIRROR in ((pod.get("metadata") or {}).get("annotations") or {}):
            spec = pod.get("spec") or {}
            if spec.get("serviceAccountName") not in (None, "", DEFAULT_SA) and spec.get("serviceAccountName"):
                raise forbidden("pods", req.name, "a mirror pod may not reference service accounts")
            return
        if not (pod.get("spec") or {}).get("serviceAccountName"):
            raise forbidden("pods", req.name, "no service account specified for pod "
                            f"{req.namespace}/{req.name}")
