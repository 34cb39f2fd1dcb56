"""PodSecurity: the pure decision of ``vkube.api.podsecurity`` wired into the chain. Reads the
namespace's ``pod-security.kubernetes.io/*`` labels, refuses pods that violate ``enforce``,
sends ``warn`` violations as Warning headers (workloads only warn) and records ``audit``
violations as audit annotations of the request."""

from __future__ import annotations

from vkube.api.podsecurity import POD_SPEC_RESOURCES, Exemptions, PodSecurityAdmission, Policy
from vkube.apiserver.context import AdmissionRequest, Context


class PodSecurity:
    def __init__(self, *, defaults: Policy = Policy(), exemptions: Exemptions = Exemptions()) -> None:
        self.psa = PodSecurityAdmission(defaults=defaults, exemptions=exemptions)

    async def validate(self, ctx: Context, req: AdmissionRequest) -> None:
        group, resource = req.spec.group, req.spec.plural
        if req.obj is None or req.operation not in ("CREATE", "UPDATE"):
            return
        if (group, resource) == ("", "namespaces"):
            pods = []
            if req.operation == "UPDATE" and not req.subresource:
                storage = ctx.storage_for("", "Pod")
                if storage is not None:
                    pods = (await storage.list(req.request, req.name)).items
            decision = self.psa.validate_namespace(req.obj, operation=req.operation, old_namespace=req.old,
                                                   pods=pods, subresource=req.subresource)
        elif (group, resource) in POD_SPEC_RESOURCES and req.namespace:
            namespaces = ctx.cache_for("", "Namespace")
            ns = await namespaces.get(req.request, None, req.namespace) if namespaces else None
            labels = ((ns or {}).get("metadata") or {}).get("labels") or {}
            if (group, resource) == ("", "pods"):
                decision = self.psa.validate_pod(req.obj, namespace=req.namespace, namespace_labels=labels,
                                                 username=req.user.name, operation=req.operation,
                                                 old_pod=req.old, subresource=req.subresource)
            else:
                decision = self.psa.validate_pod_controller(group, resource, req.obj, namespace=req.namespace,
                                                            namespace_labels=labels, username=req.user.name,
                                                            subresource=req.subresource)
        else:
            return
        req.request.warnings.extend(decision.warnings)
        req.request.audit_annotations.update(decision.audit_annotations)
        if decision.error is not None:
            raise decision.error
