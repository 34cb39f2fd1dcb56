"""The built-in kinds a vkube control plane serves, as real Kubernetes 1.3x serves them.

Order matters: groups are registered in the order kube-apiserver's discovery lists them (core
first, then apps, events.k8s.io, batch, …, by the aggregator's group priorities), and resources
within a group alphabetically, as ``/api/v1`` lists them.
"""

from __future__ import annotations

import base64
import hashlib
import dataclasses

from vkube.api.kinds import ALL_VERBS, Registry, ResourceSpec, ScaleSpec
from vkube.api.strategy import Strategy

__all__ = ["builtin_registry", "builtin_specs", "strategy_for"]

_NO_COLLECTION = tuple(v for v in ALL_VERBS if v != "deletecollection")
_ALL = ("all",)
_ADMISSION = "admissionregistration.k8s.io"
# Built-in scalable kinds carry a LabelSelector (a map for ReplicationControllers) at
# spec.selector, not a selector string: the server converts it with
# vkube.api.selectors.selector_to_string().
_SCALE = ScaleSpec("spec.replicas", "status.replicas", "spec.selector")


def _spec(group: str, kind: str, plural: str, *, namespaced: bool = True, short: tuple[str, ...] = (),
          categories: tuple[str, ...] = (), verbs: tuple[str, ...] = ALL_VERBS, status: bool = False,
          scale: bool = False, subresources: tuple[str, ...] = (), singular: str = "",
          version: str = "v1") -> ResourceSpec:
    return ResourceSpec(
        group=group, version=version, kind=kind, plural=plural, singular=singular or kind.lower(),
        namespaced=namespaced, short_names=short, categories=categories, verbs=verbs,
        status_subresource=status, scale=_SCALE if scale else None, extra_subresources=subresources,
        storage_version_hash=storage_version_hash(group, version, kind),
    )


def storage_version_hash(group: str, version: str, kind: str) -> str:
    """Kubernetes' ``storageversionhash.StorageVersionHash``: 8 bytes of sha256("g/v/Kind")."""
    digest = hashlib.sha256(f"{group}/{version}/{kind}".encode()).digest()
    return base64.b64encode(digest[:8]).decode()


def builtin_specs() -> list[ResourceSpec]:
    """Fresh specs (without strategies), in discovery order."""
    return [
        # --- core/v1, alphabetical as /api/v1 lists it
        _spec("", "Binding", "bindings", verbs=("create",)),
        _spec("", "ComponentStatus", "componentstatuses", namespaced=False, short=("cs",),
              verbs=("get", "list")),
        _spec("", "ConfigMap", "configmaps", short=("cm",)),
        _spec("", "Endpoints", "endpoints", short=("ep",), singular="endpoints"),
        _spec("", "Event", "events", short=("ev",)),
        _spec("", "LimitRange", "limitranges", short=("limits",)),
        _spec("", "Namespace", "namespaces", namespaced=False, short=("ns",), verbs=_NO_COLLECTION,
              status=True, subresources=("finalize",)),
        _spec("", "Node", "nodes", namespaced=False, short=("no",), status=True),
        _spec("", "PersistentVolumeClaim", "persistentvolumeclaims", short=("pvc",), status=True),
        _spec("", "PersistentVolume", "persistentvolumes", namespaced=False, short=("pv",), status=True),
        _spec("", "Pod", "pods", short=("po",), categories=_ALL, status=True,
              subresources=("attach", "binding", "ephemeralcontainers", "eviction", "exec", "log",
                            "portforward")),
        _spec("", "PodTemplate", "podtemplates"),
        _spec("", "ReplicationController", "replicationcontrollers", short=("rc",), categories=_ALL,
              status=True, scale=True),
        _spec("", "ResourceQuota", "resourcequotas", short=("quota",), status=True),
        _spec("", "Secret", "secrets"),
        _spec("", "ServiceAccount", "serviceaccounts", short=("sa",), subresources=("token",)),
        _spec("", "Service", "services", short=("svc",), categories=_ALL, status=True),
        # --- apiregistration.k8s.io/v1 (kube-aggregator's; apiserver/aggregator.py)
        _spec("apiregistration.k8s.io", "APIService", "apiservices", namespaced=False,
              categories=("api-extensions",), status=True),
        # --- apps/v1
        _spec("apps", "ControllerRevision", "controllerrevisions"),
        _spec("apps", "DaemonSet", "daemonsets", short=("ds",), categories=_ALL, status=True),
        _spec("apps", "Deployment", "deployments", short=("deploy",), categories=_ALL, status=True,
              scale=True),
        _spec("apps", "ReplicaSet", "replicasets", short=("rs",), categories=_ALL, status=True,
              scale=True),
        _spec("apps", "StatefulSet", "statefulsets", short=("sts",), categories=_ALL, status=True,
              scale=True),
        # --- events.k8s.io/v1
        _spec("events.k8s.io", "Event", "events", short=("ev",)),
        # --- authentication.k8s.io/v1, authorization.k8s.io/v1: answered, never stored
        _spec("authentication.k8s.io", "SelfSubjectReview", "selfsubjectreviews", namespaced=False,
              verbs=("create",)),
        _spec("authorization.k8s.io", "LocalSubjectAccessReview", "localsubjectaccessreviews",
              verbs=("create",)),
        _spec("authorization.k8s.io", "SelfSubjectAccessReview", "selfsubjectaccessreviews",
              namespaced=False, verbs=("create",)),
        _spec("authorization.k8s.io", "SelfSubjectRulesReview", "selfsubjectrulesreviews",
              namespaced=False, verbs=("create",)),
        _spec("authorization.k8s.io", "SubjectAccessReview", "subjectaccessreviews", namespaced=False,
              verbs=("create",)),
        # --- autoscaling/v2 (stored), autoscaling/v1 (converted)
        _spec("autoscaling", "HorizontalPodAutoscaler", "horizontalpodautoscalers", short=("hpa",),
              categories=_ALL, status=True, version="v2"),
        _spec("autoscaling", "HorizontalPodAutoscaler", "horizontalpodautoscalers", short=("hpa",),
              categories=_ALL, status=True),
        # --- batch/v1
        _spec("batch", "CronJob", "cronjobs", short=("cj",), categories=_ALL, status=True),
        _spec("batch", "Job", "jobs", categories=_ALL, status=True),
        # --- certificates.k8s.io/v1
        _spec("certificates.k8s.io", "CertificateSigningRequest", "certificatesigningrequests",
              namespaced=False, short=("csr",), status=True, subresources=("approval",)),
        _spec("certificates.k8s.io", "ClusterTrustBundle", "clustertrustbundles", namespaced=False),
        _spec("certificates.k8s.io", "PodCertificateRequest", "podcertificaterequests", status=True),
        # --- networking.k8s.io/v1
        _spec("networking.k8s.io", "IngressClass", "ingressclasses", namespaced=False),
        _spec("networking.k8s.io", "Ingress", "ingresses", short=("ing",), status=True),
        _spec("networking.k8s.io", "IPAddress", "ipaddresses", namespaced=False, short=("ip",)),
        _spec("networking.k8s.io", "NetworkPolicy", "networkpolicies", short=("netpol",)),
        _spec("networking.k8s.io", "ServiceCIDR", "servicecidrs", namespaced=False, status=True),
        # --- policy/v1
        _spec("policy", "PodDisruptionBudget", "poddisruptionbudgets", short=("pdb",), status=True),
        # --- rbac.authorization.k8s.io/v1
        _spec("rbac.authorization.k8s.io", "ClusterRoleBinding", "clusterrolebindings", namespaced=False),
        _spec("rbac.authorization.k8s.io", "ClusterRole", "clusterroles", namespaced=False),
        _spec("rbac.authorization.k8s.io", "RoleBinding", "rolebindings"),
        _spec("rbac.authorization.k8s.io", "Role", "roles"),
        # --- storage.k8s.io/v1
        _spec("storage.k8s.io", "CSIDriver", "csidrivers", namespaced=False),
        _spec("storage.k8s.io", "CSINode", "csinodes", namespaced=False),
        _spec("storage.k8s.io", "CSIStorageCapacity", "csistoragecapacities"),
        _spec("storage.k8s.io", "StorageClass", "storageclasses", namespaced=False, short=("sc",)),
        # --- admissionregistration.k8s.io/v1
        _spec(_ADMISSION, "MutatingAdmissionPolicy", "mutatingadmissionpolicies", namespaced=False,
              categories=("api-extensions",)),
        _spec(_ADMISSION, "MutatingAdmissionPolicyBinding", "mutatingadmissionpolicybindings",
              namespaced=False, categories=("api-extensions",)),
        _spec(_ADMISSION, "MutatingWebhookConfiguration", "mutatingwebhookconfigurations", namespaced=False,
              categories=("api-extensions",)),
        _spec(_ADMISSION, "ValidatingAdmissionPolicy", "validatingadmissionpolicies", namespaced=False,
              categories=("api-extensions",), status=True),
        _spec(_ADMISSION, "ValidatingAdmissionPolicyBinding", "validatingadmissionpolicybindings",
              namespaced=False, categories=("api-extensions",)),
        _spec(_ADMISSION, "ValidatingWebhookConfiguration", "validatingwebhookconfigurations",
              namespaced=False, categories=("api-extensions",)),
        _spec("storage.k8s.io", "VolumeAttachment", "volumeattachments", namespaced=False, status=True),
        _spec("storage.k8s.io", "VolumeAttributesClass", "volumeattributesclasses", namespaced=False,
              short=("vac",)),
        # --- scheduling.k8s.io/v1
        _spec("scheduling.k8s.io", "PriorityClass", "priorityclasses", namespaced=False, short=("pc",)),
        # --- coordination.k8s.io/v1
        _spec("coordination.k8s.io", "Lease", "leases"),
        # --- node.k8s.io/v1
        _spec("node.k8s.io", "RuntimeClass", "runtimeclasses", namespaced=False),
        # --- discovery.k8s.io/v1
        _spec("discovery.k8s.io", "EndpointSlice", "endpointslices"),
        # --- metrics.k8s.io/v1beta1: answered from usage, never stored (apiserver/metricsapi.py)
        _spec("metrics.k8s.io", "NodeMetrics", "nodes", namespaced=False, verbs=("get", "list"),
              version="v1beta1"),
        _spec("metrics.k8s.io", "PodMetrics", "pods", verbs=("get", "list"), version="v1beta1"),
        # --- flowcontrol.apiserver.k8s.io/v1
        _spec("flowcontrol.apiserver.k8s.io", "FlowSchema", "flowschemas", namespaced=False, status=True),
        _spec("flowcontrol.apiserver.k8s.io", "PriorityLevelConfiguration", "prioritylevelconfigurations",
              namespaced=False, status=True),
        # --- resource.k8s.io/v1 (dynamic resource allocation)
        _spec("resource.k8s.io", "DeviceClass", "deviceclasses", namespaced=False),
        _spec("resource.k8s.io", "DeviceTaintRule", "devicetaintrules", namespaced=False, status=True),
        _spec("resource.k8s.io", "ResourceClaim", "resourceclaims", status=True),
        _spec("resource.k8s.io", "ResourceClaimTemplate", "resourceclaimtemplates"),
        _spec("resource.k8s.io", "ResourceSlice", "resourceslices", namespaced=False),
        # --- storagemigration.k8s.io/v1
        _spec("storagemigration.k8s.io", "StorageVersionMigration", "storageversionmigrations",
              namespaced=False, status=True),
        # --- apiextensions.k8s.io/v1 (the kinds a CRD adds are registered per control plane)
        _spec("apiextensions.k8s.io", "CustomResourceDefinition", "customresourcedefinitions",
              namespaced=False, short=("crd", "crds"), categories=("api-extensions",), status=True),
    ]


def strategy_for(spec: ResourceSpec) -> Strategy:
    """A new Strategy instance for a built-in spec, with kind/namespaced/status set from it."""
    from vkube.api import (crd, kinds_admission, kinds_apiregistration, kinds_apps, kinds_autoscaling,
                           kinds_batch, kinds_certificates, kinds_core, kinds_flowcontrol, kinds_other,
                           kinds_policies, kinds_resource, kinds_storage)

    classes: dict[tuple[str, str], type[Strategy]] = {}
    for module in (kinds_core, kinds_apps, kinds_batch, kinds_other, kinds_autoscaling, kinds_apiregistration,
                   kinds_admission, kinds_policies, kinds_certificates, kinds_flowcontrol, kinds_storage,
                   kinds_resource, crd):
        classes.update(module.STRATEGIES)
    cls = kinds_autoscaling.VERSIONED.get((spec.group, spec.version, spec.kind)) or classes.get(
        (spec.group, spec.kind), Strategy)
    strategy = cls()
    strategy.kind = spec.kind
    strategy.namespaced = spec.namespaced
    strategy.status_subresource = spec.status_subresource
    return strategy


def builtin_registry() -> Registry:
    """A NEW Registry holding every built-in kind with its Strategy (never shared)."""
    registry = Registry()
    for spec in builtin_specs():
        registry.add(dataclasses.replace(spec, strategy=strategy_for(spec)))
    return registry
