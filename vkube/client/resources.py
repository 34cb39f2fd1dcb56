"""Well-known built-in resources, so callers need not spell group/version/plural each time."""

from __future__ import annotations

from vkube.client.client import Resource


def _r(group: str, version: str, plural: str, kind: str, namespaced: bool = True) -> Resource:
    return Resource(group, version, plural, namespaced, kind)


PODS = _r("", "v1", "pods", "Pod")
SERVICES = _r("", "v1", "services", "Service")
ENDPOINTS = _r("", "v1", "endpoints", "Endpoints")
CONFIGMAPS = _r("", "v1", "configmaps", "ConfigMap")
SECRETS = _r("", "v1", "secrets", "Secret")
NAMESPACES = _r("", "v1", "namespaces", "Namespace", False)
NODES = _r("", "v1", "nodes", "Node", False)
EVENTS = _r("", "v1", "events", "Event")
SERVICEACCOUNTS = _r("", "v1", "serviceaccounts", "ServiceAccount")
PVCS = _r("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim")
PVS = _r("", "v1", "persistentvolumes", "PersistentVolume", False)
RESOURCEQUOTAS = _r("", "v1", "resourcequotas", "ResourceQuota")
LIMITRANGES = _r("", "v1", "limitranges", "LimitRange")
REPLICATIONCONTROLLERS = _r("", "v1", "replicationcontrollers", "ReplicationController")
ENDPOINTSLICES = _r("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice")
DEPLOYMENTS = _r("apps", "v1", "deployments", "Deployment")
REPLICASETS = _r("apps", "v1", "replicasets", "ReplicaSet")
STATEFULSETS = _r("apps", "v1", "statefulsets", "StatefulSet")
DAEMONSETS = _r("apps", "v1", "daemonsets", "DaemonSet")
CONTROLLERREVISIONS = _r("apps", "v1", "controllerrevisions", "ControllerRevision")
JOBS = _r("batch", "v1", "jobs", "Job")
CRONJOBS = _r("batch", "v1", "cronjobs", "CronJob")
LEASES = _r("coordination.k8s.io", "v1", "leases", "Lease")
STORAGECLASSES = _r("storage.k8s.io", "v1", "storageclasses", "StorageClass", False)
INGRESSES = _r("networking.k8s.io", "v1", "ingresses", "Ingress")
INGRESSCLASSES = _r("networking.k8s.io", "v1", "ingressclasses", "IngressClass", False)
NETWORKPOLICIES = _r("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy")
PDBS = _r("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget")
PRIORITYCLASSES = _r("scheduling.k8s.io", "v1", "priorityclasses", "PriorityClass", False)
ROLES = _r("rbac.authorization.k8s.io", "v1", "roles", "Role")
ROLEBINDINGS = _r("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding")
CLUSTERROLES = _r("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", False)
CLUSTERROLEBINDINGS = _r("rbac.authorization.k8s.io", "v1", "clusterrolebindings",
                         "ClusterRoleBinding", False)
EVENTS_V1 = _r("events.k8s.io", "v1", "events", "Event")
CRDS = _r("apiextensions.k8s.io", "v1", "customresourcedefinitions",
          "CustomResourceDefinition", False)

ALL = (
    PODS, SERVICES, ENDPOINTS, CONFIGMAPS, SECRETS, NAMESPACES, NODES, EVENTS, SERVICEACCOUNTS,
    PVCS, PVS, RESOURCEQUOTAS, LIMITRANGES, REPLICATIONCONTROLLERS, ENDPOINTSLICES, DEPLOYMENTS,
    REPLICASETS, STATEFULSETS, DAEMONSETS, CONTROLLERREVISIONS, JOBS, CRONJOBS, LEASES,
    STORAGECLASSES, INGRESSES, NETWORKPOLICIES, PDBS, PRIORITYCLASSES, ROLES, ROLEBINDINGS,
    CLUSTERROLES, CLUSTERROLEBINDINGS, EVENTS_V1, CRDS,
)


def by_kind(api_version: str, kind: str) -> Resource | None:
    """The well-known resource for an ``apiVersion``/``kind`` pair, if any."""
    for r in ALL:
        if r.api_version == api_version and r.kind == kind:
            return r
    return None
CSRS = _r("certificates.k8s.io", "v1", "certificatesigningrequests", "CertificateSigningRequest", False)
CSINODES = _r("storage.k8s.io", "v1", "csinodes", "CSINode", False)
RUNTIMECLASSES = _r("node.k8s.io", "v1", "runtimeclasses", "RuntimeClass", False)
RESOURCESLICES = _r("resource.k8s.io", "v1", "resourceslices", "ResourceSlice", False)
RESOURCECLAIMS = _r("resource.k8s.io", "v1", "resourceclaims", "ResourceClaim")
RESOURCECLAIMTEMPLATES = _r("resource.k8s.io", "v1", "resourceclaimtemplates", "ResourceClaimTemplate")
DEVICECLASSES = _r("resource.k8s.io", "v1", "deviceclasses", "DeviceClass", False)
DEVICETAINTRULES = _r("resource.k8s.io", "v1", "devicetaintrules", "DeviceTaintRule", False)
