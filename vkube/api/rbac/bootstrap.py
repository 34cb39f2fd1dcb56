"""The roles and bindings every cluster starts with, as upstream's ``bootstrappolicy`` defines them.

Follows ``plugin/pkg/auth/authorizer/rbac/bootstrappolicy`` (``policy.go``, ``controller_policy.go``
and their golden ``testdata/*.yaml``): ``cluster-admin``; the user-facing ``admin`` ⊃ ``edit`` ⊃
``view`` built by aggregation from ``system:aggregate-to-*``; discovery, basic-user and
public-info-viewer; the system components' roles; and one ``system:controller:NAME`` role per
built-in controller vkube runs, bound to the ServiceAccount ``kube-system/NAME`` as upstream binds
them; and the Roles/RoleBindings upstream puts in ``kube-system`` and ``kube-public`` (leader
locking, extension-apiserver-authentication-reader, bootstrap signer, token cleaner). Rules are
built like ``rbacv1helpers.NewRule``: verbs, resources, names and URLs sorted, API groups in the
order given. Objects are returned fresh on each call (callers may mutate them).
"""

from __future__ import annotations

import functools
from types import MappingProxyType
from typing import Any

import orjson

from vkube.api.rbac.aggregation import aggregate_cluster_roles

__all__ = ["cluster_roles", "cluster_role_bindings", "controller_roles", "controller_role_bindings",
           "namespace_roles", "namespace_role_bindings", "bootstrap_policy", "CONTROLLERS",
           "component_role_bindings", "component_roles", "READ", "WRITE",
           "READ_WRITE"]

Obj = dict[str, Any]
READ = ("get", "list", "watch")
WRITE = ("create", "delete", "deletecollection", "patch", "update")
READ_WRITE = READ + WRITE
RBAC = "rbac.authorization.k8s.io"
CERTS = "certificates.k8s.io"
_LABELS = MappingProxyType({"kubernetes.io/bootstrapping": "rbac-defaults"})
_ANNOTATIONS = MappingProxyType({"rbac.authorization.kubernetes.io/autoupdate": "true"})


def rule(verbs: tuple[str, ...] | str, groups: tuple[str, ...] | str = (), resources: tuple[str, ...] = (),
         *, names: tuple[str, ...] = (), urls: tuple[str, ...] = ()) -> Obj:
    verbs = (verbs,) if isinstance(verbs, str) else verbs
    groups = (groups,) if isinstance(groups, str) else groups
    out: Obj = {"verbs": sorted(set(verbs))}
    if groups:
        out["apiGroups"] = list(groups)
    if resources:
        out["resources"] = sorted(set(resources))
    if names:
        out["resourceNames"] = sorted(set(names))
    if urls:
        out["nonResourceURLs"] = sorted(set(urls))
    return out


def _events() -> Obj:
    return rule(("create", "update", "patch"), ("", "events.k8s.io"), ("events",))


def _cluster_role(name: str, rules: list[Obj] | None, *, labels: dict[str, str] | None = None,
                  aggregate_from: str | None = None) -> Obj:
    role: Obj = {"apiVersion": f"{RBAC}/v1", "kind": "ClusterRole", "metadata": {
        "name": name, "labels": {**_LABELS, **(labels or {})}, "annotations": dict(_ANNOTATIONS)}}
    if aggregate_from:
        role["aggregationRule"] = {"clusterRoleSelectors": [
            {"matchLabels": {f"rbac.authorization.k8s.io/aggregate-to-{aggregate_from}": "true"}}]}
    role["rules"] = rules
    return role


def _binding(name: str, role: str, subjects: list[Obj]) -> Obj:
    binding: Obj = {"apiVersion": f"{RBAC}/v1", "kind": "ClusterRoleBinding", "metadata": {
        "name": name, "labels": dict(_LABELS), "annotations": dict(_ANNOTATIONS)},
        "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": role}}
    if subjects:
        binding["subjects"] = subjects
    return binding


def _group(name: str) -> Obj:
    return {"apiGroup": RBAC, "kind": "Group", "name": name}


def _user(name: str) -> Obj:
    return {"apiGroup": RBAC, "kind": "User", "name": name}


def _aggregate_to_edit() -> list[Obj]:
    core = ""
    return [
        rule(READ, core, ("pods/attach", "pods/proxy", "pods/exec", "pods/portforward", "secrets",
                          "services/proxy")),
        rule("impersonate", core, ("serviceaccounts",)),
        rule(WRITE, core, ("pods", "pods/attach", "pods/proxy", "pods/exec", "pods/portforward")),
        rule("create", core, ("pods/eviction",)),
        rule(WRITE, core, ("replicationcontrollers", "replicationcontrollers/scale", "serviceaccounts",
                           "services", "services/proxy", "persistentvolumeclaims", "configmaps",
                           "secrets", "events")),
        rule("create", core, ("serviceaccounts/token",)),
        rule(WRITE, "apps", ("statefulsets", "statefulsets/scale", "daemonsets", "deployments",
                             "deployments/scale", "deployments/rollback", "replicasets",
                             "replicasets/scale")),
        rule(WRITE, "autoscaling", ("horizontalpodautoscalers",)),
        rule(WRITE, "batch", ("jobs", "cronjobs")),
        rule(WRITE, "extensions", ("daemonsets", "deployments", "deployments/scale",
                                   "deployments/rollback", "ingresses", "replicasets",
                                   "replicasets/scale", "replicationcontrollers/scale",
                                   "networkpolicies")),
        rule(WRITE, "policy", ("poddisruptionbudgets",)),
        rule(WRITE, "networking.k8s.io", ("networkpolicies", "ingresses")),
        rule(READ_WRITE, "coordination.k8s.io", ("leases",)),
    ]


def _aggregate_to_view() -> list[Obj]:
    core = ""
    return [
        rule(READ, core, ("pods", "replicationcontrollers", "replicationcontrollers/scale",
                          "serviceaccounts", "services", "services/status", "endpoints",
                          "persistentvolumeclaims", "persistentvolumeclaims/status", "configmaps")),
        rule(READ, core, ("limitranges", "resourcequotas", "bindings", "events", "pods/status",
                          "resourcequotas/status", "namespaces/status",
                          "replicationcontrollers/status", "pods/log")),
        rule(READ, core, ("namespaces",)),
        rule(READ, "discovery.k8s.io", ("endpointslices",)),
        rule(READ, "apps", ("controllerrevisions", "statefulsets", "statefulsets/status",
                            "statefulsets/scale", "daemonsets", "daemonsets/status", "deployments",
                            "deployments/status", "deployments/scale", "replicasets",
                            "replicasets/status", "replicasets/scale")),
        rule(READ, "autoscaling", ("horizontalpodautoscalers", "horizontalpodautoscalers/status")),
        rule(READ, "batch", ("jobs", "cronjobs", "cronjobs/status", "jobs/status")),
        rule(READ, "extensions", ("daemonsets", "daemonsets/status", "deployments",
                                  "deployments/scale", "deployments/status", "ingresses",
                                  "ingresses/status", "replicasets", "replicasets/scale",
                                  "replicasets/status", "replicationcontrollers/scale",
                                  "networkpolicies")),
        rule(READ, "policy", ("poddisruptionbudgets", "poddisruptionbudgets/status")),
        rule(READ, "networking.k8s.io", ("networkpolicies", "ingresses", "ingresses/status")),
    ]


def _scheduler() -> list[Obj]:
    return [
        _events(),
        rule("create", "coordination.k8s.io", ("leases",)),
        rule(("get", "update"), "coordination.k8s.io", ("leases",), names=("kube-scheduler",)),
        rule(READ, "", ("nodes",)),
        rule(("get", "list", "watch", "delete"), "", ("pods",)),
        rule("create", "", ("bindings", "pods/binding")),
        rule(("patch", "update"), "", ("pods/status",)),
        rule(READ, "", ("replicationcontrollers", "services")),
        rule(READ, ("apps", "extensions"), ("replicasets",)),
        rule(READ, "apps", ("statefulsets",)),
        rule(READ, "policy", ("poddisruptionbudgets",)),
        rule(READ, "", ("persistentvolumeclaims", "persistentvolumes")),
        rule("create", "authentication.k8s.io", ("tokenreviews",)),
        rule("create", "authorization.k8s.io", ("subjectaccessreviews",)),
        rule(READ, "storage.k8s.io", ("csinodes",)),
        rule(READ, "", ("namespaces",)),
        rule(READ, "storage.k8s.io", ("csidrivers",)),
        rule(READ, "storage.k8s.io", ("csistoragecapacities",)),
        # dynamic resource allocation (the DynamicResources plugin)
        rule(READ, "resource.k8s.io", ("resourceclaims", "deviceclasses", "resourceslices", "devicetaintrules")),
        rule(("get", "update", "patch"), "resource.k8s.io", ("resourceclaims/status",)),
    ]


def _node() -> list[Obj]:
    core = ""
    return [
        rule("create", "authentication.k8s.io", ("tokenreviews",)),
        rule("create", "authorization.k8s.io", ("subjectaccessreviews", "localsubjectaccessreviews")),
        rule(READ, core, ("services",)),
        rule(("create", "get", "list", "watch"), core, ("nodes",)),
        rule(("update", "patch"), core, ("nodes/status",)),
        rule(("update", "patch"), core, ("nodes",)),
        rule(("create", "update", "patch"), core, ("events",)),
        rule(READ, core, ("pods",)),
        rule(("create", "delete"), core, ("pods",)),
        rule(("update", "patch"), core, ("pods/status",)),
        rule("create", core, ("pods/eviction",)),
        rule(READ, core, ("secrets", "configmaps")),
        rule("get", core, ("persistentvolumeclaims", "persistentvolumes")),
        rule("get", core, ("endpoints",)),
        rule(("create", "get", "list", "watch"), "certificates.k8s.io", ("certificatesigningrequests",)),
        rule(("get", "create", "update", "patch", "delete"), "coordination.k8s.io", ("leases",)),
        rule("get", "storage.k8s.io", ("volumeattachments",)),
        rule("create", core, ("serviceaccounts/token",)),
        rule(("get", "update", "patch"), core, ("persistentvolumeclaims/status",)),
        rule(READ, "storage.k8s.io", ("csidrivers",)),
        rule(("get", "create", "update", "patch", "delete"), "storage.k8s.io", ("csinodes",)),
        rule(READ, "node.k8s.io", ("runtimeclasses",)),
    ]


def _certificate_roles() -> list[Obj]:
    group = "certificates.k8s.io"
    roles = [
        _cluster_role("system:certificates.k8s.io:certificatesigningrequests:nodeclient",
                      [rule("create", group, ("certificatesigningrequests/nodeclient",))]),
        _cluster_role("system:certificates.k8s.io:certificatesigningrequests:selfnodeclient",
                      [rule("create", group, ("certificatesigningrequests/selfnodeclient",))]),
    ]
    for role, signer in (("kube-apiserver-client-approver", "kube-apiserver-client"),
                         ("kube-apiserver-client-kubelet-approver", "kube-apiserver-client-kubelet"),
                         ("kubelet-serving-approver", "kubelet-serving"),
                         ("legacy-unknown-approver", "legacy-unknown")):
        roles.append(_cluster_role(f"system:certificates.k8s.io:{role}", [
            rule("approve", group, ("signers",), names=(f"kubernetes.io/{signer}",))]))
    return roles


def cluster_roles() -> list[Obj]:
    """The non-controller ClusterRoles (aggregating ones with ``rules: None``, as stored at first)."""
    health = ("/livez", "/readyz", "/healthz", "/version", "/version/")
    roles = [
        _cluster_role("admin", None, aggregate_from="admin"),
        _cluster_role("cluster-admin", [rule("*", "*", ("*",)), rule("*", urls=("*",))]),
        _cluster_role("edit", None, aggregate_from="edit",
                      labels={"rbac.authorization.k8s.io/aggregate-to-admin": "true"}),
        _cluster_role("system:aggregate-to-admin", [
            rule("create", "authorization.k8s.io", ("localsubjectaccessreviews",)),
            rule(READ_WRITE, RBAC, ("roles", "rolebindings"))],
            labels={"rbac.authorization.k8s.io/aggregate-to-admin": "true"}),
        _cluster_role("system:aggregate-to-edit", _aggregate_to_edit(),
                      labels={"rbac.authorization.k8s.io/aggregate-to-edit": "true"}),
        _cluster_role("system:aggregate-to-view", _aggregate_to_view(),
                      labels={"rbac.authorization.k8s.io/aggregate-to-view": "true"}),
        _cluster_role("system:auth-delegator", [
            rule("create", "authentication.k8s.io", ("tokenreviews",)),
            rule("create", "authorization.k8s.io", ("subjectaccessreviews",))]),
        _cluster_role("system:basic-user", [
            rule("create", "authorization.k8s.io", ("selfsubjectaccessreviews", "selfsubjectrulesreviews")),
            rule("create", "authentication.k8s.io", ("selfsubjectreviews",))]),
        *_certificate_roles(),
        _cluster_role("system:discovery", [rule("get", urls=health + (
            "/openapi", "/openapi/*", "/api", "/api/*", "/apis", "/apis/*"))]),
        _cluster_role("system:kube-controller-manager", [
            _events(),
            rule("create", "coordination.k8s.io", ("leases",)),
            rule(("get", "update"), "coordination.k8s.io", ("leases",), names=("kube-controller-manager",)),
            rule("create", "", ("secrets", "serviceaccounts")),
            rule("delete", "", ("secrets",)),
            rule("get", "", ("namespaces", "secrets", "serviceaccounts", "configmaps")),
            rule("update", "", ("secrets", "serviceaccounts")),
            rule("create", "authentication.k8s.io", ("tokenreviews",)),
            rule("create", "authorization.k8s.io", ("subjectaccessreviews",)),
            rule(("list", "watch"), "*", ("*",)),
            rule("create", "", ("serviceaccounts/token",))]),
        _cluster_role("system:heapster", [rule(READ, "", ("events", "pods", "nodes", "namespaces")),
                                          rule(READ, "extensions", ("deployments",))]),
        _cluster_role("system:kube-aggregator", [rule(READ, "", ("services", "endpoints"))]),
        _cluster_role("system:kube-dns", [rule(("list", "watch"), "", ("endpoints", "services"))]),
        _cluster_role("system:kube-scheduler", _scheduler()),
        _cluster_role("system:kubelet-api-admin", [
            rule(READ, "", ("nodes",)), rule("proxy", "", ("nodes",)),
            rule("*", "", ("nodes/proxy", "nodes/metrics", "nodes/stats", "nodes/log"))]),
        _cluster_role("system:monitoring", [rule("get", urls=(
            "/metrics", "/metrics/slis", "/livez", "/readyz", "/healthz", "/livez/*", "/readyz/*",
            "/healthz/*"))]),
        _cluster_role("system:node", _node()),
        _cluster_role("system:node-bootstrapper", [
            rule(("create", "get", "list", "watch"), "certificates.k8s.io", ("certificatesigningrequests",))]),
        _cluster_role("system:node-problem-detector", [
            rule("get", "", ("nodes",)), rule("patch", "", ("nodes/status",)), _events()]),
        _cluster_role("system:node-proxier", [
            rule(("list", "watch"), "", ("services", "endpoints")),
            rule(READ, "", ("nodes",)), _events(),
            rule(("list", "watch"), "discovery.k8s.io", ("endpointslices",))]),
        _cluster_role("system:persistent-volume-provisioner", [
            rule(("create", "delete", "get", "list", "watch"), "", ("persistentvolumes",)),
            rule(("get", "list", "watch", "update"), "", ("persistentvolumeclaims",)),
            rule(READ, "storage.k8s.io", ("storageclasses",)),
            rule("watch", "", ("events",)), _events()]),
        _cluster_role("system:public-info-viewer", [rule("get", urls=health)]),
        _cluster_role("system:service-account-issuer-discovery", [
            rule("get", urls=("/.well-known/openid-configuration", "/openid/v1/jwks"))]),
        _cluster_role("system:volume-scheduler", [
            rule(READ + ("patch", "update"), "", ("persistentvolumes",)),
            rule(READ, "storage.k8s.io", ("storageclasses",)),
            rule(READ + ("patch", "update"), "", ("persistentvolumeclaims",))]),
        _cluster_role("view", None, aggregate_from="view",
                      labels={"rbac.authorization.k8s.io/aggregate-to-edit": "true"}),
    ]
    return sorted(roles, key=lambda r: r["metadata"]["name"])


def cluster_role_bindings() -> list[Obj]:
    return [
        _binding("cluster-admin", "cluster-admin", [_group("system:masters")]),
        _binding("system:basic-user", "system:basic-user", [_group("system:authenticated")]),
        _binding("system:discovery", "system:discovery", [_group("system:authenticated")]),
        _binding("system:kube-controller-manager", "system:kube-controller-manager",
                 [_user("system:kube-controller-manager")]),
        _binding("system:kube-dns", "system:kube-dns",
                 [{"kind": "ServiceAccount", "name": "kube-dns", "namespace": "kube-system"}]),
        _binding("system:kube-scheduler", "system:kube-scheduler", [_user("system:kube-scheduler")]),
        _binding("system:monitoring", "system:monitoring", [_group("system:monitoring")]),
        _binding("system:node", "system:node", []),
        _binding("system:node-proxier", "system:node-proxier", [_user("system:kube-proxy")]),
        _binding("system:public-info-viewer", "system:public-info-viewer",
                 [_group("system:authenticated"), _group("system:unauthenticated")]),
        _binding("system:service-account-issuer-discovery", "system:service-account-issuer-discovery",
                 [_group("system:serviceaccounts")]),
        _binding("system:volume-scheduler", "system:volume-scheduler", [_user("system:kube-scheduler")]),
    ]


def _controller_rules() -> dict[str, list[Obj]]:
    apps = ("apps", "extensions")
    return {
        "certificate-controller": [
            rule(("get", "list", "watch", "delete"), CERTS, ("certificatesigningrequests",)),
            rule("update", CERTS, ("certificatesigningrequests/status", "certificatesigningrequests/approval")),
            rule("approve", CERTS, ("signers",), names=("kubernetes.io/kube-apiserver-client-kubelet",)),
            rule("sign", CERTS, ("signers",), names=(
                "kubernetes.io/legacy-unknown", "kubernetes.io/kube-apiserver-client",
                "kubernetes.io/kube-apiserver-client-kubelet", "kubernetes.io/kubelet-serving")),
            rule("create", "authorization.k8s.io", ("subjectaccessreviews",)), _events()],
        "clusterrole-aggregation-controller": [
            rule(("escalate", "get", "list", "watch", "update", "patch"), RBAC, ("clusterroles",))],
        "cronjob-controller": [
            rule(("get", "list", "watch", "update"), "batch", ("cronjobs",)),
            rule(("get", "list", "watch", "create", "update", "delete", "patch"), "batch", ("jobs",)),
            rule("update", "batch", ("cronjobs/status",)), rule("update", "batch", ("cronjobs/finalizers",)),
            rule(("list", "watch", "delete"), "", ("pods",)), _events()],
        "daemon-set-controller": [
            rule(READ, apps, ("daemonsets",)), rule("update", apps, ("daemonsets/status",)),
            rule("update", apps, ("daemonsets/finalizers",)), rule(("list", "watch"), "", ("nodes",)),
            rule(("list", "watch", "create", "delete", "patch"), "", ("pods",)),
            rule("create", "", ("pods/binding",)),
            rule(("get", "list", "watch", "create", "delete", "update", "patch"), "apps",
                 ("controllerrevisions",)), _events()],
        "deployment-controller": [
            rule(("get", "list", "watch", "update"), apps, ("deployments",)),
            rule("update", apps, ("deployments/status",)), rule("update", apps, ("deployments/finalizers",)),
            rule(("get", "list", "watch", "create", "update", "patch", "delete"), apps, ("replicasets",)),
            rule(("get", "list", "watch", "update"), "", ("pods",)), _events()],
        "disruption-controller": [
            rule(READ, apps, ("deployments",)), rule(READ, apps, ("replicasets",)),
            rule(READ, "", ("replicationcontrollers",)), rule(READ, "policy", ("poddisruptionbudgets",)),
            rule(READ, "apps", ("statefulsets",)), rule("update", "policy", ("poddisruptionbudgets/status",)),
            rule(("patch", "update"), "", ("pods/status",)), rule("get", "*", ("*/scale",)), _events()],
        "endpoint-controller": [
            rule(READ, "", ("services", "pods")),
            rule(("get", "list", "create", "update", "delete", "watch"), "", ("endpoints",)),
            rule("create", "", ("endpoints/restricted",)), _events()],
        "endpointslice-controller": [
            rule(READ, "", ("services", "pods", "nodes")), rule("update", "", ("services/finalizers",)),
            rule(("get", "list", "create", "update", "delete", "watch"), "discovery.k8s.io",
                 ("endpointslices",)), _events()],
        "endpointslicemirroring-controller": [
            rule(READ, "", ("services", "endpoints")), rule("update", "", ("services/finalizers",)),
            rule("update", "", ("endpoints/finalizers",)),
            rule(("get", "list", "create", "update", "delete", "watch"), "discovery.k8s.io",
                 ("endpointslices",)), _events()],
        "generic-garbage-collector": [
            rule(("get", "list", "watch", "patch", "update", "delete"), "*", ("*",)), _events()],
        "horizontal-pod-autoscaler": [
            rule(READ, "autoscaling", ("horizontalpodautoscalers",)),
            rule("update", "autoscaling", ("horizontalpodautoscalers/status",)),
            rule(("get", "update"), "*", ("*/scale",)), rule(("list", "watch"), "", ("pods",)),
            rule("list", "metrics.k8s.io", ("pods",)),
            rule(("get", "list"), "custom.metrics.k8s.io", ("*",)),
            rule(("get", "list"), "external.metrics.k8s.io", ("*",)), _events()],
        "job-controller": [
            rule(("get", "list", "watch", "update", "patch"), "batch", ("jobs",)),
            rule("update", "batch", ("jobs/status",)), rule("update", "batch", ("jobs/finalizers",)),
            rule(("list", "watch", "create", "delete", "patch"), "", ("pods",)), _events()],
        "namespace-controller": [
            rule(("get", "list", "watch", "delete"), "", ("namespaces",)),
            rule("update", "", ("namespaces/finalize", "namespaces/status")),
            rule(("get", "list", "watch", "delete", "deletecollection"), "*", ("*",))],
        "persistent-volume-binder": [
            rule(("get", "list", "watch", "update", "create", "delete"), "", ("persistentvolumes",)),
            rule("update", "", ("persistentvolumes/status",)),
            rule(("get", "list", "watch", "update"), "", ("persistentvolumeclaims",)),
            rule("update", "", ("persistentvolumeclaims/status",)),
            rule(("get", "list", "watch", "create", "delete"), "", ("pods",)),
            rule(READ, "storage.k8s.io", ("storageclasses",)),
            rule(("get", "create", "delete"), "", ("services", "endpoints")), _events()],
        "pod-garbage-collector": [
            rule(("list", "watch", "delete"), "", ("pods",)), rule(READ, "", ("nodes",)),
            rule("patch", "", ("pods/status",))],
        "pv-protection-controller": [
            rule(("get", "list", "watch", "update"), "", ("persistentvolumes",)), _events()],
        "pvc-protection-controller": [
            rule(("get", "list", "watch", "update"), "", ("persistentvolumeclaims",)),
            rule("update", "", ("persistentvolumeclaims/status",)),
            rule(READ, "", ("pods",)), _events()],
        "replicaset-controller": [
            rule(("get", "list", "watch", "update"), apps, ("replicasets",)),
            rule("update", apps, ("replicasets/status",)), rule("update", apps, ("replicasets/finalizers",)),
            rule(("list", "watch", "patch", "create", "delete"), "", ("pods",)), _events()],
        "replication-controller": [
            rule(("get", "list", "watch", "update"), "", ("replicationcontrollers",)),
            rule("update", "", ("replicationcontrollers/status",)),
            rule("update", "", ("replicationcontrollers/finalizers",)),
            rule(("list", "watch", "patch", "create", "delete"), "", ("pods",)), _events()],
        "resource-claim-controller": [
            rule(READ, "", ("pods",)), rule("update", "", ("pods/finalizers",)),
            rule(("get", "list", "watch", "create", "delete"), "resource.k8s.io", ("resourceclaims",)),
            rule(("update", "patch"), "resource.k8s.io", ("resourceclaims", "resourceclaims/status")),
            rule(READ, "resource.k8s.io", ("resourceclaimtemplates",)),
            rule(("update", "patch"), "", ("pods/status",)), _events()],
        "resourcequota-controller": [
            rule(("list", "watch"), "*", ("*",)), rule("update", "", ("resourcequotas/status",)), _events()],
        "root-ca-cert-publisher": [rule(("create", "update"), "", ("configmaps",)), _events()],
        "service-account-controller": [rule("create", "", ("serviceaccounts",)), _events()],
        "statefulset-controller": [
            rule(("list", "watch"), "", ("pods",)), rule(READ, "apps", ("statefulsets",)),
            rule("update", "apps", ("statefulsets/status",)),
            rule("update", "apps", ("statefulsets/finalizers",)),
            rule(("get", "create", "delete", "update", "patch"), "", ("pods",)),
            rule(("get", "create", "delete", "update", "patch", "list", "watch"), "apps",
                 ("controllerrevisions",)),
            rule(("get", "create", "list", "watch"), "", ("persistentvolumeclaims",)),
            rule(("update", "delete"), "", ("persistentvolumeclaims",)),
            rule("update", "", ("pods/finalizers",)), _events()],
        "storage-version-migrator-controller": [
            rule(("get", "list", "watch", "update", "patch"), "*", ("*",)),
            rule("update", "storagemigration.k8s.io", ("storageversionmigrations/status",))],
        "ttl-after-finished-controller": [rule(("get", "list", "watch", "delete"), "batch", ("jobs",)), _events()],
    }


#: the built-in controllers that get a ``system:controller:NAME`` role and ServiceAccount.
CONTROLLERS = tuple(sorted(_controller_rules()))


def controller_roles() -> list[Obj]:
    return [_cluster_role(f"system:controller:{name}", rules)
            for name, rules in sorted(_controller_rules().items())]


def controller_role_bindings() -> list[Obj]:
    return [_binding(f"system:controller:{name}", f"system:controller:{name}",
                     [{"kind": "ServiceAccount", "name": name, "namespace": "kube-system"}])
            for name in CONTROLLERS]


def component_role_bindings() -> list[Obj]:
    """vkube's own bindings for the identities its components run as (not upstream's policy).

    Upstream runs each controller with its ServiceAccount's token (``--use-service-account-
    credentials``), bound above to its ``system:controller:NAME`` role. vkube runs them all in
    one process on one client certificate, ``system:kube-controller-manager``, so that user gets
    exactly the union of those controller roles (no more: not cluster-admin). Upstream's
    ``system:node`` binding stays empty: the Node authorizer (``apiserver/nodeauthz.py``)
    scopes each kubelet to its own node, as upstream since 1.8."""
    manager = [_user("system:kube-controller-manager")]
    return [*(_binding(f"vkube:controller-manager:{name}", f"system:controller:{name}", manager)
              for name in CONTROLLERS),
            _binding("vkube:default-storage-class", "vkube:default-storage-class", manager),
            _binding("vkube:apiserver-loops", "vkube:apiserver-loops", manager),
            _binding("vkube:simulated-dra-driver", "vkube:simulated-dra-driver", [_group("system:nodes")]),
            _binding("vkube:dns", "vkube:dns", [_user("system:vkube-dns")]),
            _binding("vkube:network", "vkube:network", [_user("system:vkube-network")]),
            _binding("vkube:leader-election", "vkube:leader-election",
                     [_user("system:vkube-leader-election")]),
            _binding("vkube:controller-manager:tokens", "vkube:tokens-controller", manager)]


def component_roles() -> list[Obj]:
    """The embedded host's volume controller creates kind's default StorageClass when the host
    has none (upstream leaves that to an addon run as admin): that one verb, nothing else."""
    return [_cluster_role("vkube:apiserver-loops", [
                # loops kube-apiserver runs itself, here in the controller manager: the IP
                # allocator's repair loop and the APF configuration controller's status writes
                rule(("get", "list", "watch", "create", "delete"), "networking.k8s.io", ("ipaddresses",)),
                rule(READ, "flowcontrol.apiserver.k8s.io", ("flowschemas", "prioritylevelconfigurations")),
                rule(("update", "patch"), "flowcontrol.apiserver.k8s.io", ("flowschemas/status",))]),
            # the simulated kubelets publish their nodes' devices, as a DRA driver's plugin does
            _cluster_role("vkube:simulated-dra-driver", [
                rule(("get", "list", "watch", "create", "update", "patch", "delete"), "resource.k8s.io",
                     ("resourceslices",))]),
            _cluster_role("vkube:default-storage-class", [
        rule(("create", "get", "list", "watch"), "storage.k8s.io", ("storageclasses",))]),
            # the cluster DNS reads what CoreDNS' system:coredns role lets it read
            _cluster_role("vkube:dns", [
                rule(("list", "watch"), "", ("endpoints", "services", "pods", "namespaces")),
                rule(("list", "watch"), "discovery.k8s.io", ("endpointslices",))]),
            # kube-controller-manager's tokens controller runs on its root credentials upstream;
            # here on the controller manager's own identity, with just what it does
            _cluster_role("vkube:tokens-controller", [
                rule(("get", "list", "watch", "update", "patch", "delete"), "", ("secrets",)),
                rule(READ, "", ("serviceaccounts",))]),
            # the embedded host's pod network (NetworkPolicies, Services, DNS for exec'd
            # nc/wget/nslookup), as a CNI policy agent reads them
            _cluster_role("vkube:network", [
                rule(("list", "watch"), "", ("endpoints", "services", "pods", "namespaces")),
                rule(("list", "watch"), "networking.k8s.io", ("networkpolicies",))]),
            # HA replicas campaign for one Lease; nothing else
            _cluster_role("vkube:leader-election", [
                rule("create", "coordination.k8s.io", ("leases",)),
                rule(("get", "update", "patch"), "coordination.k8s.io", ("leases",),
                     names=("vkube-leader",))])]


def _role(namespace: str, name: str, rules: list[Obj]) -> Obj:
    role = _cluster_role(name, rules)
    role["kind"] = "Role"
    role["metadata"]["namespace"] = namespace
    return role


def namespace_roles() -> list[Obj]:
    """The Roles upstream creates in ``kube-system`` and ``kube-public``."""
    leader = [rule(("watch", "get", "list", "create", "update"), "coordination.k8s.io", ("leases",)),
              rule(("watch", "get", "list", "create", "update"), "coordination.k8s.io", ("leasecandidates",))]
    return [
        _role("kube-public", "system:controller:bootstrap-signer", [
            rule(READ, "", ("configmaps",)), rule("update", "", ("configmaps",), names=("cluster-info",)),
            _events()]),
        _role("kube-system", "extension-apiserver-authentication-reader", [
            rule(READ, "", ("configmaps",), names=("extension-apiserver-authentication",))]),
        _role("kube-system", "system::leader-locking-kube-controller-manager", leader),
        _role("kube-system", "system::leader-locking-kube-scheduler", [dict(r) for r in leader]),
        _role("kube-system", "system:controller:bootstrap-signer", [rule(READ, "", ("secrets",))]),
        _role("kube-system", "system:controller:cloud-provider", [
            rule(("create", "get", "list", "watch"), "", ("configmaps",))]),
        _role("kube-system", "system:controller:token-cleaner", [
            rule(("delete", "get", "list", "watch"), "", ("secrets",)), _events()]),
    ]


def namespace_role_bindings() -> list[Obj]:
    def bind(namespace: str, name: str, role: str, subjects: list[Obj]) -> Obj:
        binding = _binding(name, role, subjects)
        binding["kind"] = "RoleBinding"
        binding["metadata"]["namespace"] = namespace
        binding["roleRef"]["kind"] = "Role"
        return binding

    def sa(name: str) -> Obj:
        return {"kind": "ServiceAccount", "name": name, "namespace": "kube-system"}

    return [
        bind("kube-public", "system:controller:bootstrap-signer", "system:controller:bootstrap-signer",
             [sa("bootstrap-signer")]),
        bind("kube-system", "system::extension-apiserver-authentication-reader",
             "extension-apiserver-authentication-reader",
             [_user("system:kube-controller-manager"), _user("system:kube-scheduler")]),
        bind("kube-system", "system::leader-locking-kube-controller-manager",
             "system::leader-locking-kube-controller-manager",
             [_user("system:kube-controller-manager"), sa("kube-controller-manager"),
              sa("leader-election-controller")]),
        bind("kube-system", "system::leader-locking-kube-scheduler", "system::leader-locking-kube-scheduler",
             [_user("system:kube-scheduler"), sa("kube-scheduler")]),
        bind("kube-system", "system:controller:bootstrap-signer", "system:controller:bootstrap-signer",
             [sa("bootstrap-signer")]),
        bind("kube-system", "system:controller:cloud-provider", "system:controller:cloud-provider",
             [sa("cloud-provider")]),
        bind("kube-system", "system:controller:token-cleaner", "system:controller:token-cleaner",
             [sa("token-cleaner")]),
    ]


def served_api_roles() -> list[Obj]:
    """Roles for what vkube serves natively beyond kube-apiserver: ``metrics.k8s.io`` (what
    metrics-server's manifest installs, so view/edit/admin can run ``kubectl top``)."""
    to_all = {f"rbac.authorization.k8s.io/aggregate-to-{r}": "true" for r in ("view", "edit", "admin")}
    return [_cluster_role("system:aggregated-metrics-reader",
                          [rule(READ, "metrics.k8s.io", ("nodes", "pods"))], labels=to_all)]


def bootstrap_policy(*, aggregate: bool = True) -> dict[str, list[Obj]]:
    """Everything a new cluster creates; ``aggregate`` fills admin/edit/view as the controller would.

    Fresh objects on every call (callers mutate them), decoded from a per-process serialized copy:
    building and aggregating the policy costs ~15-30 ms, and every control plane starts with it."""
    return orjson.loads(_policy_bytes(aggregate))


@functools.cache
def _policy_bytes(aggregate: bool) -> bytes:
    """Immutable bytes, so the cache shares no mutable state between control planes."""
    roles = cluster_roles() + controller_roles() + component_roles() + served_api_roles()
    return orjson.dumps({
        "clusterRoles": aggregate_cluster_roles(roles) if aggregate else roles,
        "clusterRoleBindings": cluster_role_bindings() + controller_role_bindings() + component_role_bindings(),
        "roles": namespace_roles(),
        "roleBindings": namespace_role_bindings(),
    })
