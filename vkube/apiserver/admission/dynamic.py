"""Dynamic admission of one control plane: the configuration source (watched), the webhook
client, and the plugins built on them — MutatingAdmissionPolicy, MutatingAdmissionWebhook,
ValidatingAdmissionPolicy and ValidatingAdmissionWebhook, in kube-apiserver's order
(``plugins`` goes into the chain just before ResourceQuota)."""

from __future__ import annotations

from typing import Any

from vkube.api.admission_authz import Authorize
from vkube.apiserver.admission.configsource import ConfigSource
from vkube.apiserver.admission.mutatingpolicies import MutatingPolicies
from vkube.apiserver.admission.policies import ValidatingPolicies
from vkube.apiserver.admission.policystatus import PolicyStatus
from vkube.apiserver.admission.webhookclient import WebhookClient
from vkube.apiserver.admission.webhooks import MutatingWebhooks, ValidatingWebhooks
from vkube.apiserver.context import Context

__all__ = ["DynamicAdmission"]


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
        return [self.mutating_policies, self.mutating, self.policies, self.validating]

    async def start(self) -> None:
        self.status.start()
        await self.source.start()

    async def close(self) -> None:
        await self.client.close()
