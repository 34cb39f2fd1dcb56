"""Namespace tenancy (``vkube create NAME --tenancy namespace``): the light mode for teams. No
control plane: a host namespace with the isolation guard rails (ResourceQuota, LimitRange,
NetworkPolicy, Pod Security labels), a tenant ServiceAccount bound in that namespace only to
``vkube-tenant``: a Role with the rules of the host's ``admin`` ClusterRole (which may read but
not change quotas and limit ranges) except any write of NetworkPolicies — NetworkPolicies only
add allowed traffic, so a tenant able to create one could undo the egress guard rail (or the
default-deny ingress: only its own pods reach its pods) as surely as by deleting it; it may read
them — and a kubeconfig for it whose context's namespace is the
tenant's. RBAC's escalation check keeps the tenant from granting itself more (``admin``
included) through its own Roles and RoleBindings. The same commands as for a virtual
cluster: ``list``, ``describe``, ``connect``, ``pause`` (workloads to zero), ``resume``, ``delete``.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import datetime as dt
import sys
from pathlib import Path
from typing import Any

from vkube.api import yamlio

from vkube.api import errors
from vkube.api.meta import Obj
from vkube.cli import hostns, hostresolve, kubeconfigs, state, values_files
from vkube.cli.hostresolve import HostRef
from vkube.cli.output import CLIError, Progress
from vkube.cli.state import PAUSED, RUNNING, ClusterState
from vkube.client import Client
from vkube.client.client import Resource
from vkube.client.resources import (CLUSTERROLES, CRONJOBS, DEPLOYMENTS, JOBS, LIMITRANGES,
                                    NAMESPACES, NETWORKPOLICIES, PODS, RESOURCEQUOTAS,
                                    ROLEBINDINGS, ROLES, SERVICEACCOUNTS, STATEFULSETS)
from vkube.syncer.isolation import DNS_PORTS, KUBE_SYSTEM, LIMITS, PRIVATE, quota_hard
from vkube.syncer.values import ValuesError, parse_values

NAMESPACE_MODE = "namespace"
TENANT_SA = "vkube-tenant"
TENANT_ROLE = "vkube-tenant"
TOKEN_SECONDS = 48 * 3600  # the longest TokenRequest the API grants; `connect` mints anew
ANN_REPLICAS = "vkube.io/paused-replicas"
ANN_SUSPEND = "vkube.io/paused-suspend"
ANN_POD_QUOTA = "vkube.io/paused-count-pods"
LABEL_TENANCY = "vkube.io/tenancy"
SCALABLE = (DEPLOYMENTS, STATEFULSETS)


READ = ["get", "list", "watch"]
PROTECTED = ("networking.k8s.io", "networkpolicies")


def tenant_rules(admin_rules: list[Obj]) -> list[Obj]:
    """``admin``'s rules without writes of NetworkPolicies (read access kept). A rule that
    grants writes through a wildcard group or resource cannot be narrowed: refused."""
    group, resource = PROTECTED
    out: list[Obj] = []
    for rule in admin_rules:
        groups, resources = rule.get("apiGroups") or [], rule.get("resources") or []
        verbs = rule.get("verbs") or []
        writes = [v for v in verbs if v not in READ]
        hits = (group in groups or "*" in groups) and any(
            r == resource or r == "*" or r.startswith(resource + "/") for r in resources)
        if not hits or not writes:
            out.append(copy.deepcopy(rule))
            continue
        if "*" in groups or "*" in resources or "*" in verbs:
            raise CLIError("the host's admin ClusterRole grants writes through a wildcard, so a "
                           "tenant role without NetworkPolicy writes cannot be derived from it — "
                           "give admin explicit rules, or use a virtual cluster (`vkube create "
                           "NAME --isolate`)")
        kept = [r for r in resources if r != resource and not r.startswith(resource + "/")]
        if kept:
            out.append({**copy.deepcopy(rule), "resources": kept})
        if others := [g for g in groups if g != group]:
            out.append({**copy.deepcopy(rule), "apiGroups": others,
                        "resources": [r for r in resources if r not in kept]})
        if read := [v for v in verbs if v in READ]:
            out.append({"apiGroups": [group], "resources": [resource], "verbs": read})
    if not any(group in (r.get("apiGroups") or []) and resource in (r.get("resources") or [])
               for r in out):
        out.append({"apiGroups": [group], "resources": [resource], "verbs": list(READ)})
    return out


def tenant_objects(name: str, namespace: str, values: dict[str, Any],
                   admin_rules: list[Obj] | None = None) -> list[tuple[Resource, Obj]]:
    """What a namespace tenant gets in its namespace (all labelled as vkube's);
    ``admin_rules``: the rules of the host's ``admin`` ClusterRole, read at creation."""
    admin_rules = admin_rules or []
    iso = parse_values({"isolation": {**(values.get("isolation") or {}), "enabled": True}}
                       ).isolation
    labels = {hostns.LABEL_MANAGED_BY: name, LABEL_TENANCY: NAMESPACE_MODE}
    meta = lambda n: {"name": n, "labels": dict(labels)}  # noqa: E731
    own = {"podSelector": {}}
    return [
        (RESOURCEQUOTAS, {"apiVersion": "v1", "kind": "ResourceQuota",
                          "metadata": meta("vkube-tenant-quota"),
                          "spec": {"hard": quota_hard(iso)}}),
        (LIMITRANGES, {"apiVersion": "v1", "kind": "LimitRange",
                       "metadata": meta("vkube-tenant-limits"),
                       "spec": {"limits": [copy.deepcopy(LIMITS)]}}),
        (NETWORKPOLICIES, {"apiVersion": NETWORKPOLICIES.api_version, "kind": "NetworkPolicy",
                           "metadata": meta("vkube-tenant-egress"),
                           "spec": {"podSelector": {}, "policyTypes": ["Egress"], "egress": [
                               {"to": [own]},
                               {"to": [KUBE_SYSTEM], "ports": copy.deepcopy(DNS_PORTS)},
                               {"to": [{"ipBlock": {"cidr": "0.0.0.0/0",
                                                    "except": list(PRIVATE)}}]}]}}),
        # default-deny ingress: only the tenant's own pods reach its pods (DNS is egress, to
        # kube-system, above); pods of other namespaces are refused as kube's CNIs refuse them
        (NETWORKPOLICIES, {"apiVersion": NETWORKPOLICIES.api_version, "kind": "NetworkPolicy",
                           "metadata": meta("vkube-tenant-ingress"),
                           "spec": {"podSelector": {}, "policyTypes": ["Ingress"],
                                    "ingress": [{"from": [copy.deepcopy(own)]}]}}),
        (SERVICEACCOUNTS, {"apiVersion": "v1", "kind": "ServiceAccount",
                           "metadata": meta(TENANT_SA)}),
        (ROLES, {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
                 "metadata": meta(TENANT_ROLE), "rules": tenant_rules(admin_rules)}),
        (ROLEBINDINGS, {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                        "metadata": meta("vkube-tenant-admin"),
                        "roleRef": {"apiGroup": "rbac.authorization.k8s.io",
                                    "kind": "Role", "name": TENANT_ROLE},
                        "subjects": [{"kind": "ServiceAccount", "name": TENANT_SA,
                                      "namespace": namespace}]}),
    ]


#: the values a namespace tenant's guard rails follow; the rest configure a control plane and
#: its syncer, which it has not: refused by name rather than ignored
TENANT_KEYS = ("isolation.podSecurityStandard", "isolation.resourceQuota.cpu",
               "isolation.resourceQuota.memory")
#: always on for a namespace tenant: accepted only as true
ALWAYS_ON = ("isolation.enabled", "isolation.resourceQuota.enabled",
             "isolation.limitRange.enabled", "isolation.networkPolicy.enabled")


def refuse_unused(values: dict[str, Any], name: str) -> None:
    """A key a namespace tenant would silently ignore is a one-line error naming it."""
    for key in values_files.leaf_keys(values):
        if key in TENANT_KEYS:
            continue
        value: Any = values
        for part in key.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        if value == {}:
            continue  # an empty mapping asks for nothing
        if key in ALWAYS_ON:
            if value is True:
                continue
            raise CLIError(f"{key}: a namespace tenant always has its guard rails (quota, "
                           "limits, network policy) — drop it, or create a virtual cluster "
                           f"(`vkube create {name}` without --tenancy namespace)")
        raise CLIError(f"{key}: a namespace tenant has no control plane or syncer, so it would "
                       f"do nothing — drop it, or create a virtual cluster (`vkube create {name}` "
                       f"without --tenancy namespace); a namespace tenant takes "
                       f"{', '.join(TENANT_KEYS)}")


def pss_labels(values: dict[str, Any]) -> dict[str, str]:
    level = (values.get("isolation") or {}).get("podSecurityStandard") or "baseline"
    return {f"pod-security.kubernetes.io/{m}": level for m in ("enforce", "warn", "audit")}


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _host_of(st: ClusterState) -> HostRef:
    return HostRef(st.host_kubeconfig, st.host_context, st.host_kind)


async def create(args: argparse.Namespace, values: dict[str, Any]) -> int:
    name = state.validate_name(args.name)
    namespace = args.namespace or name
    if args.upgrade or args.in_cluster:
        flag = "--upgrade" if args.upgrade else "--in-cluster"
        raise CLIError(f"{flag} does not apply to --tenancy namespace (there is no control "
                       f"plane) — `vkube delete {name}` and create it again to change it")
    if ClusterState.load(name) is not None:
        raise CLIError(f"{name!r} already exists — see `vkube describe {name}`, or remove it "
                       f"with `vkube delete {name}`")
    refuse_unused(values, name)
    try:
        parse_values({"isolation": {**(values.get("isolation") or {}), "enabled": True}})
    except ValuesError as e:
        raise CLIError(f"invalid values: {e} — every key and its accepted values: "
                       "`vkube values`") from e
    progress = Progress()
    with progress.step("looking for a host cluster") as done:
        host = await hostresolve.resolve(args.host_kubeconfig, args.host_context)
        done(f"host ready ({host.describe()})")
    st = ClusterState(name=name, namespace=namespace, host_kubeconfig=host.kubeconfig,
                      host_context=host.context, host_kind=host.kind, created=_now(),
                      status=RUNNING, values=values, tenancy=NAMESPACE_MODE)
    async with host.client() as hc:
        with progress.step(f"creating tenant namespace {namespace}") as done:
            if any(c["name"] == name for c in await hostns.virtual_clusters(hc)):
                raise CLIError(f"{name!r} already exists on the host — pick another name")
            st.created_namespace = await hostns.claim_namespace(
                hc, name=name, namespace=namespace, created=st.created, status=RUNNING,
                values=values)
            st.save()
            await hc.patch(NAMESPACES, namespace, {"metadata": {
                "labels": {**pss_labels(values), LABEL_TENANCY: NAMESPACE_MODE}}})
            try:
                admin = await hc.get(CLUSTERROLES, "admin")
            except errors.NotFound:
                raise CLIError("the host has no admin ClusterRole to derive the tenant's role "
                               "from — is it a Kubernetes cluster with RBAC?") from None
            for res, obj in tenant_objects(name, namespace, values, admin.get("rules") or []):
                await _apply(hc, res, obj, namespace)
            done(f"namespace {namespace}: quota, limits, network policy, Pod Security "
                 f"{pss_labels(values)['pod-security.kubernetes.io/enforce']}, tenant admin")
    if args.connect is not False:
        ctx = await connect_context(st, switch=True)
        progress.ok(f"switched context to {ctx} (namespace {namespace})")
    return 0


async def _apply(hc: Client, res: Resource, obj: Obj, namespace: str) -> None:
    try:
        await hc.create(res, obj, namespace=namespace)
    except errors.AlreadyExists:
        cur = await hc.get(res, obj["metadata"]["name"], namespace=namespace)
        new = {**cur, **{k: v for k, v in obj.items() if k not in ("metadata",)}}
        new["metadata"] = {**cur["metadata"], "labels": obj["metadata"]["labels"]}
        await hc.update(res, new)


def _host_cluster(st: ClusterState) -> dict[str, Any]:
    """The host's cluster entry (server, CA) from its kubeconfig, file paths made absolute."""
    path = Path(st.host_kubeconfig).expanduser()
    doc = yamlio.load(path.read_text()) or {}
    ctx_name = st.host_context or doc.get("current-context")
    ctx = next((c["context"] for c in doc.get("contexts") or [] if c["name"] == ctx_name), {})
    cluster = next((c["cluster"] for c in doc.get("clusters") or []
                    if c["name"] == ctx.get("cluster")), None)
    if cluster is None:
        raise CLIError(f"host kubeconfig {path} has no cluster for context {ctx_name!r} — "
                       "pass a working --host-kubeconfig")
    cluster = dict(cluster)
    ca = cluster.get("certificate-authority")
    if ca and not Path(ca).is_absolute():
        cluster["certificate-authority"] = str((path.parent / ca).resolve())
    return cluster


async def tenant_kubeconfig(st: ClusterState, ctx: str) -> dict[str, Any]:
    """A kubeconfig for the tenant ServiceAccount, with a fresh token."""
    async with _host_of(st).client() as hc:
        try:
            res = await hc.create(SERVICEACCOUNTS, {
                "apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                "spec": {"expirationSeconds": TOKEN_SECONDS}},
                namespace=st.namespace, subresource="token", name=TENANT_SA)
        except errors.NotFound as e:
            raise CLIError(f"tenant {st.name!r}: {e} — `vkube delete {st.name}` and create it "
                           "again") from e
    return {"apiVersion": "v1", "kind": "Config", "preferences": {},
            "clusters": [{"name": ctx, "cluster": _host_cluster(st)}],
            "users": [{"name": ctx, "user": {"token": res["status"]["token"]}}],
            "contexts": [{"name": ctx, "context": {"cluster": ctx, "user": ctx,
                                                   "namespace": st.namespace}}],
            "current-context": ctx}


async def connect_context(st: ClusterState, *, switch: bool, ctx: str | None = None) -> str:
    ctx = ctx or st.context_name or kubeconfigs.context_name(st.name)
    entry = await tenant_kubeconfig(st, ctx)
    kubeconfigs.add_entry(entry, switch=switch)
    written = str(kubeconfigs.user_kubeconfig_path().expanduser().resolve())
    st.context_name = ctx
    st.context_files = [*(f for f in st.context_files if f != written), written]
    st.save()
    return ctx


async def connect(st: ClusterState, args: argparse.Namespace) -> int:
    if st.status == PAUSED:
        raise CLIError(f"{st.name!r} is paused — `vkube resume {st.name}` first")
    ctx = args.kube_config_context_name or kubeconfigs.context_name(st.name)
    if args.print:
        sys.stdout.write(yamlio.dump(await tenant_kubeconfig(st, ctx), sort_keys=False))
        return 0
    await connect_context(st, switch=True, ctx=ctx)
    print(f"✔ switched context to {ctx} (namespace {st.namespace})")
    return 0


def _paused_pods_file(st: ClusterState) -> Path:
    return st.dir / "paused-pods.json"


def _saved_pod(pod: Obj) -> Obj:
    """What a bare pod is recreated from on resume: what its author wrote, not what the host
    added (node, status, the service-account token volume admission injects again)."""
    spec = copy.deepcopy(pod.get("spec") or {})
    spec.pop("nodeName", None)
    injected = {v["name"] for v in spec.get("volumes") or []
                if str(v.get("name", "")).startswith("kube-api-access-")}
    if injected:
        spec["volumes"] = [v for v in spec["volumes"] if v["name"] not in injected]
        for c in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]:
            c["volumeMounts"] = [m for m in c.get("volumeMounts") or []
                                 if m.get("name") not in injected]
    md = pod["metadata"]
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {k: md[k] for k in ("name", "labels", "annotations") if md.get(k)},
            "spec": spec}


async def _hold_pods(hc: Client, st: ClusterState, *, pause: bool) -> int:
    """Pause: no new pod starts (the tenant quota's ``count/pods`` to 0, its value kept in an
    annotation), the bare pods (no controller) are saved to the local state and every pod left
    is deleted (Jobs and CronJobs are suspended, the rest's controllers wait on the quota).
    Resume: the quota back, then the saved pods recreated. The number of bare pods."""
    import json

    quota = await hc.get(RESOURCEQUOTAS, "vkube-tenant-quota", namespace=st.namespace)
    ann = quota["metadata"].get("annotations") or {}
    hard = (quota.get("spec") or {}).get("hard") or {}
    saved = _paused_pods_file(st)
    if pause:
        if ANN_POD_QUOTA not in ann:
            await hc.patch(RESOURCEQUOTAS, "vkube-tenant-quota", {
                "metadata": {"annotations": {ANN_POD_QUOTA: str(hard.get("count/pods", ""))}},
                "spec": {"hard": {"count/pods": "0"}}}, namespace=st.namespace)
        pods = (await hc.list(PODS, namespace=st.namespace))["items"]
        bare = [p for p in pods if not any(o.get("controller") for o in
                                           p["metadata"].get("ownerReferences") or [])]
        earlier = json.loads(saved.read_text()) if saved.exists() else []
        keep = {p["metadata"]["name"]: p for p in earlier}
        keep.update({p["metadata"]["name"]: _saved_pod(p) for p in bare
                     if not p["metadata"].get("deletionTimestamp")})
        saved.write_text(json.dumps(list(keep.values()), indent=1) + "\n")
        for p in pods:
            with contextlib.suppress(errors.NotFound):
                await hc.delete(PODS, p["metadata"]["name"], namespace=st.namespace)
        return len(keep)
    if ANN_POD_QUOTA in ann:
        before = ann[ANN_POD_QUOTA]
        await hc.patch(RESOURCEQUOTAS, "vkube-tenant-quota", {
            "metadata": {"annotations": {ANN_POD_QUOTA: None}},
            "spec": {"hard": {"count/pods": before or None}}}, namespace=st.namespace)
    pods = json.loads(saved.read_text()) if saved.exists() else []
    for p in pods:
        with contextlib.suppress(errors.AlreadyExists):
            await _create_when_gone(hc, st.namespace, p)
    saved.unlink(missing_ok=True)
    return len(pods)


async def _create_when_gone(hc: Client, namespace: str, pod: Obj, timeout: float = 60.0) -> None:
    """Create ``pod`` once a terminating pod of its name is gone (a resume right after a
    pause finds the old one still terminating) and the quota admission sees the restored
    ``count/pods`` (its cache of the quota lags the patch a moment)."""
    import asyncio
    import time

    deadline = time.monotonic() + timeout
    while True:
        try:
            await hc.create(PODS, pod, namespace=namespace)
            return
        except errors.Forbidden as e:
            if "exceeded quota" not in str(e) or time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)
        except errors.AlreadyExists:
            try:
                old = await hc.get(PODS, pod["metadata"]["name"], namespace=namespace)
            except errors.NotFound:
                continue
            if not old["metadata"].get("deletionTimestamp") or time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


async def scale(st: ClusterState, *, pause: bool) -> tuple[int, int]:
    """Pause: every Deployment and StatefulSet to zero, its replicas kept in an annotation,
    Jobs and CronJobs suspended, the bare pods saved and stopped and new pods refused
    (``_hold_pods``); resume: all back. The numbers of workloads and of bare pods."""
    n = 0
    async with _host_of(st).client() as hc:
        if not pause:
            pods = await _hold_pods(hc, st, pause=False)
        for res in SCALABLE:
            for obj in (await hc.list(res, namespace=st.namespace))["items"]:
                ann = obj["metadata"].get("annotations") or {}
                replicas = (obj.get("spec") or {}).get("replicas", 1)
                if pause and ANN_REPLICAS not in ann:
                    patch = {"metadata": {"annotations": {ANN_REPLICAS: str(replicas)}},
                             "spec": {"replicas": 0}}
                elif not pause and ANN_REPLICAS in ann:
                    patch = {"metadata": {"annotations": {ANN_REPLICAS: None}},
                             "spec": {"replicas": int(ann[ANN_REPLICAS])}}
                else:
                    continue
                with contextlib.suppress(errors.NotFound):
                    await hc.patch(res, obj["metadata"]["name"], patch, namespace=st.namespace)
                    n += 1
        for res in (JOBS, CRONJOBS):  # suspended: a suspended Job's pods go, uncounted as failed
            for obj in (await hc.list(res, namespace=st.namespace))["items"]:
                ann = obj["metadata"].get("annotations") or {}
                if pause and ANN_SUSPEND not in ann:
                    was = bool((obj.get("spec") or {}).get("suspend"))
                    patch = {"metadata": {"annotations": {ANN_SUSPEND: str(was).lower()}},
                             "spec": {"suspend": True}}
                elif not pause and ANN_SUSPEND in ann:
                    patch = {"metadata": {"annotations": {ANN_SUSPEND: None}},
                             "spec": {"suspend": ann[ANN_SUSPEND] == "true"}}
                else:
                    continue
                with contextlib.suppress(errors.NotFound):
                    await hc.patch(res, obj["metadata"]["name"], patch, namespace=st.namespace)
                    n += 1
        if pause:
            pods = await _hold_pods(hc, st, pause=True)
        st.status = PAUSED if pause else RUNNING
        st.save()
        await hostns.annotate(hc, st.namespace, status=st.status)
    return n, pods


async def delete(st: ClusterState, keep_namespace: bool) -> None:
    """The namespace (with everything in it) when vkube created it; otherwise vkube's objects
    and marks only."""
    async with _host_of(st).client() as hc:
        drop = st.created_namespace and not keep_namespace
        if not drop:
            for res, obj in tenant_objects(st.name, st.namespace, st.values):
                with contextlib.suppress(errors.NotFound):
                    await hc.delete(res, obj["metadata"]["name"], namespace=st.namespace)
            with contextlib.suppress(errors.NotFound):
                await hc.patch(NAMESPACES, st.namespace, {"metadata": {"labels": {
                    LABEL_TENANCY: None, **{k: None for k in pss_labels(st.values)}}}})
        await hostns.release_namespace(hc, st.namespace, delete=drop)
