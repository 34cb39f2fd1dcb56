"""The embedded host's admission of namespace tenants' Ingresses.

A namespace tenant (``vkube create NAME --tenancy namespace``) writes Ingresses straight to the
host, where no syncer judges them, and the host's ingress controller serves every tenant. So
in a namespace labelled ``vkube.io/tenancy: namespace`` this plugin applies the checks a
virtual cluster's syncer applies to its Ingresses (``vkube.syncer.ingresses``), with the same
rules (``vkube.api.ingressannotations``, ``vkube.api.ingresshosts``):

- annotations pass only as the shared-controller allow-list allows (snippets, URLs, other
  namespaces' objects refused);
- a wildcard over a whole top-level domain and the catch-all (a rule without host,
  ``spec.defaultBackend``) are refused: a tenant names its hosts;
- a host name another namespace's Ingress already claims (a virtual cluster's host copy,
  another tenant's, the host owner's) is refused; a name the Ingress already held is kept
  against younger claims.

A refusal is 403 Forbidden naming the field, as admission plugins answer. Two creates of one
name at the same instant can both pass (the syncer looks again later; admission cannot)."""

from __future__ import annotations

from vkube.api import ingressannotations, ingresshosts
from vkube.api.forbidden import forbidden
from vkube.api.meta import Obj
from vkube.apiserver.context import AdmissionRequest, Context

__all__ = ["TenantIngress", "LABEL_TENANCY", "NAMESPACE_TENANCY"]

LABEL_TENANCY = "vkube.io/tenancy"  # as vkube.cli.nstenancy labels a tenant's namespace
NAMESPACE_TENANCY = "namespace"
_GROUP = "networking.k8s.io"


class TenantIngress:
    async def validate(self, ctx: Context, req: AdmissionRequest) -> None:
        if (req.spec.group, req.spec.plural) != (_GROUP, "ingresses") or req.subresource \
                or req.operation not in ("CREATE", "UPDATE") or req.obj is None \
                or not req.namespace:
            return
        if not await _tenant_namespace(ctx, req):
            return
        why = _refusal(req.obj, req.namespace) or await _claimed(ctx, req)
        if why:
            raise forbidden(req.spec.plural, req.name, why, group=_GROUP)


async def _tenant_namespace(ctx: Context, req: AdmissionRequest) -> bool:
    cache = ctx.cache_for("", "Namespace")
    ns = await cache.get(req.request, None, req.namespace) if cache is not None else None
    labels = ((ns or {}).get("metadata") or {}).get("labels") or {}
    return labels.get(LABEL_TENANCY) == NAMESPACE_TENANCY


def _refusal(obj: Obj, namespace: str) -> str:
    """The syncer's own checks of an Ingress (but the claims), for an Ingress that is its own
    host copy: the tenant's objects already carry their host names."""
    judged = ingressannotations.judge(
        (obj.get("metadata") or {}).get("annotations") or {}, namespace,
        host_namespace=namespace, secret_name=lambda n: n, service_name=lambda n: n)
    if judged.refused:
        return judged.message(end="")
    claims = ingresshosts.claims(obj)
    for name, where in sorted(claims.items()):
        broad = ingresshosts.too_broad(name)
        if broad:
            return f"{where}: {broad}"
    where = claims.get(ingresshosts.CATCH_ALL)
    if where:
        return (f"{where}: an Ingress that catches every host (a rule without host, or "
                "spec.defaultBackend) is not allowed for a namespace tenant: the host's ingress "
                "controller serves every tenant; name the hosts in spec.rules[].host")
    return ""


async def _claimed(ctx: Context, req: AdmissionRequest) -> str:
    assert req.obj is not None
    mine = ingresshosts.claims(req.obj)
    storage = ctx.storage_for(_GROUP, "Ingress")
    if not mine or storage is None:
        return ""
    every = (await storage.list(req.request, None)).items
    held = ingresshosts.claims(req.old) if req.old is not None else {}
    my_key = ingresshosts.age_key(req.old) if req.old is not None else ("~", req.namespace or "", req.name)
    others = [(ingresshosts.age_key(o), ingresshosts.claims(o)) for o in every
              if (o.get("metadata") or {}).get("namespace") != req.namespace]
    hit = ingresshosts.taken(mine, held, my_key, others)
    if hit is None:
        return ""
    name, where, theirs = hit
    over = "" if theirs == name else f" (it overlaps {ingresshosts.describe(theirs)})"
    return (f"{where}: {ingresshosts.describe(name)} is already claimed by an Ingress of "
            f"another namespace on this host{over}")
