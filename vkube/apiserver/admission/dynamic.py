"""Dynamic admission of one control plane: the configuration source (watched), the webhook
client, and the plugins built on them — MutatingAdmissionPolicy, MutatingAdmissionWebhook,
ValidatingAdmissionPolicy and ValidatingAdmissionWebhook, in kube-apiserver's order
(``plugins`` goes into the chain just before ResourceQuota)."""

from __future__ import annotations

from typing import Any

from vkube.api.admission_authz import Authorize
from vkube.api.jsonvalue import clone
from vkube.apiserver.admission.configsource import ConfigSource
from vkube.apiserver.admission.mutatingpolicies import MutatingPolicies
from vkube.apiserver.admission.policies import ValidatingPolicies
from vkube.apiserver.admission.policystatus import PolicyStatus
from vkube.apiserver.admission.webhookclient import WebhookClient
from vkube.apiserver.admission.webhooks import MutatingWebhooks, ValidatingWebhooks
from vkube.apiserver.context import AdmissionRequest, Context

__all__ = ["DynamicAdmission", "DynamicMutation"]


class DynamicMutation:
    """MutatingAdmissionPolicy then MutatingAdmissionWebhook as one mutating step, so that
    re-invocation crosses them as upstream's reinvocation round does: when the webhooks changed
    the object after an IfNeeded policy ran, those policies run again; if that changes it, the
    IfNeeded webhooks that were called run again (each at most once more)."""

    def __init__(self, policies: MutatingPolicies, webhooks: MutatingWebhooks) -> None:
        self.policies, self.webhooks = policies, webhooks

    async def mutate(self, ctx: Context, req: AdmissionRequest) -> None:
        policies_again = await self.policies.run(ctx, req)
        before = clone(req.obj) if req.obj is not None else None
        hooks_again = await self.webhooks.run(ctx, req)
        if req.obj is None or not policies_again or req.obj == before:
            return
        before = clone(req.obj)
        await self.policies.run(ctx, req, only_if_needed=True)
        if hooks_again and req.obj != before:
            await self.webhooks.reinvoke(ctx, req, hooks_again)


class DynamicAdmission:
    def __init__(self, ctx: Context, *, authorize: Authorize | None = None) -> None:
        """``authorize(user, attributes)``: the control plane's authorizer, for CEL's
        ``authorizer`` variable."""
        self.source = ConfigSource(ctx)
        self.status = PolicyStatus(ctx)  # ValidatingAdmissionPolicy.status (typeChecking)
        self.source.listeners.append(self.status.changed)
        self.client = WebhookClient(ctx)
        self.mutating_policies = MutatingPolicies(self.source, authorize)
        self.mutating = MutatingWebhooks(self.source, self.client, authorize)
        self.policies = ValidatingPolicies(self.source, authorize)
        self.validating = ValidatingWebhooks(self.source, self.client, authorize)

    @property
    def plugins(self) -> list[Any]:
        return [DynamicMutation(self.mutating_policies, self.mutating), self.policies, self.validating]

    async def start(self) -> None:
        self.status.start()
        await self.source.start()

    async def close(self) -> None:
        await self.client.close()
