"""The admission chain in kube-apiserver's default plugin order: every mutating plugin first
(LimitRanger, ServiceAccount, Priority, DefaultTolerationSeconds, DefaultStorageClass,
StorageObjectInUseProtection), then every validating one (NamespaceLifecycle, LimitRanger,
ServiceAccount, PodSecurity, Priority, ResourceQuota) — ``admission.chainAdmissionHandler``.
A plugin has ``mutate`` and/or ``validate``; both see one ``AdmissionRequest``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from vkube.apiserver.admission.draadmin import DRAAdminAccess
from vkube.apiserver.admission.lifecycle import NamespaceLifecycle, ServiceAllocation
from vkube.apiserver.admission.limitranger import LimitRanger
from vkube.apiserver.admission.noderestriction import NodeRestriction
from vkube.apiserver.admission.pods import DefaultTolerationSeconds, Priority
from vkube.apiserver.admission.podsecurity import PodSecurity
from vkube.apiserver.admission.quota import ResourceQuota
from vkube.apiserver.admission.runtimeclass import RuntimeClass
from vkube.apiserver.admission.serviceaccount import ServiceAccount
from vkube.apiserver.admission.storageclass import DefaultStorageClass, StorageObjectInUseProtection
from vkube.apiserver.context import AdmissionRequest, Context

__all__ = ["AdmissionChain", "default_chain", "NamespaceLifecycle", "ServiceAllocation", "LimitRanger",
           "ServiceAccount", "NodeRestriction", "PodSecurity", "Priority", "DefaultTolerationSeconds",
           "DefaultStorageClass", "StorageObjectInUseProtection", "RuntimeClass", "ResourceQuota",
           "DRAAdminAccess"]


class AdmissionChain:
    """The plugins in order; ``mutate`` runs each one's mutating phase, ``validate`` each one's
    validating phase (storage calls the two around the kind's own validation)."""

    def __init__(self, plugins: Sequence[Any]) -> None:
        self.plugins = list(plugins)
        self._mutating = [p.mutate for p in self.plugins if hasattr(p, "mutate")]
        self._validating = [p.validate if hasattr(p, "validate") else p.admit
                            for p in self.plugins if hasattr(p, "validate") or hasattr(p, "admit")]

    def get(self, cls: type) -> Any:
        return next((p for p in self.plugins if isinstance(p, cls)), None)

    async def mutate(self, ctx: Context, req: AdmissionRequest) -> None:
        """Upstream's ``reinvoker``: when a webhook or policy changed the object, every
        mutating plugin runs once more (the dynamic ones pick their IfNeeded invocations)."""
        for step in self._mutating:
            await step(ctx, req)
        if req.reinvocation.wanted and not req.reinvocation.second_round:
            req.reinvocation.second_round = True
            for step in self._mutating:
                await step(ctx, req)

    async def validate(self, ctx: Context, req: AdmissionRequest) -> None:
        for step in self._validating:
            await step(ctx, req)

    async def admit(self, ctx: Context, req: AdmissionRequest) -> None:
        """Both phases at once (callers without a validation step of their own)."""
        await self.mutate(ctx, req)
        await self.validate(ctx, req)


def default_chain(*, pod_security: PodSecurity | None = None, dynamic: Sequence[Any] = ()) -> AdmissionChain:
    """kube-apiserver's default enabled plugins that vkube implements, in upstream order;
    ``dynamic`` (MutatingAdmissionPolicy, MutatingAdmissionWebhook, ValidatingAdmissionPolicy,
    ValidatingAdmissionWebhook) comes last but for ResourceQuota, as upstream orders them."""
    return AdmissionChain([
        NamespaceLifecycle(), LimitRanger(), ServiceAccount(), NodeRestriction(), pod_security or PodSecurity(),
        Priority(), DefaultTolerationSeconds(), DefaultStorageClass(), StorageObjectInUseProtection(),
        RuntimeClass(), DRAAdminAccess(), *dynamic, ResourceQuota(),
    ])
