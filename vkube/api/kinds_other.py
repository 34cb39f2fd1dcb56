"""Strategies for the smaller groups: rbac, networking, storage, policy, scheduling,
coordination, node, discovery and events.k8s.io."""

from __future__ import annotations

from vkube.api import printers_other as P
from vkube.api.kinds_core import EventStrategy
from vkube.api.strategy import Obj, Strategy
from vkube.api.validation import (
    Causes, dns1123_label, dns1123_subdomain, forbidden, invalid_value, not_supported, path_segment_name,
    required, validate_immutable, validate_label_selector, validate_labels, validate_object_meta,
    validate_object_meta_update,
)
from vkube.api.validation_ingress import validate_ingress_class_annotation, validate_ingress_spec
from vkube.api.validation_ip import validate_slice_address

__all__ = ["STRATEGIES"]


class _Simple(Strategy):
    name_validator = staticmethod(dns1123_subdomain)

    def validate(self, obj: Obj) -> Causes:
        return validate_object_meta(obj, namespaced=self.namespaced, name_validator=self.name_validator)

    def validate_update(self, new: Obj, old: Obj) -> Causes:
        return validate_object_meta_update(new, old)


# --- rbac.authorization.k8s.io -------------------------------------------------------------


def _validate_rules(rules: object, path: str) -> Causes:
    causes: Causes = []
    for i, rule in enumerate(rules or ()):  # type: ignore[union-attr]
        rule = rule if isinstance(rule, dict) else {}
        p = f"{path}[{i}]"
        if not rule.get("verbs"):
            causes.append(required(f"{p}.verbs", "verbs must contain at least one value"))
        if rule.get("nonResourceURLs"):
            if rule.get("resources") or rule.get("apiGroups"):
                causes.append(invalid_value(f"{p}.nonResourceURLs", rule["nonResourceURLs"],
                                            "rules cannot apply to both regular resources and non-resource URLs"))
        elif not rule.get("resources"):
            causes.append(required(f"{p}.resources", "resource rules must supply at least one resource"))
        elif rule.get("apiGroups") is None:
            causes.append(required(f"{p}.apiGroups",
                                   "resource rules must supply at least one api group"))
    return causes


class RoleStrategy(_Simple):
    has_generation = False
    columns = P.ROLE_COLUMNS
    name_validator = staticmethod(path_segment_name)

    def validate(self, obj: Obj) -> Causes:
        return super().validate(obj) + _validate_rules(obj.get("rules"), "rules")


_SUBJECT_KINDS = ("Group", "ServiceAccount", "User")


class RoleBindingStrategy(_Simple):
    has_generation = False
    columns = P.BINDING_COLUMNS
    name_validator = staticmethod(path_segment_name)

    def default(self, obj: Obj) -> None:
        for subject in obj.get("subjects") or ():
            if not isinstance(subject, dict) or "apiGroup" in subject:
                continue
            if subject.get("kind") in ("User", "Group"):
                subject["apiGroup"] = "rbac.authorization.k8s.io"
            elif subject.get("kind") == "ServiceAccount":
                subject["apiGroup"] = ""

    def validate(self, obj: Obj) -> Causes:
        causes = super().validate(obj)
        ref = obj.get("roleRef") or {}
        if ref.get("apiGroup") != "rbac.authorization.k8s.io":
            causes.append(not_supported("roleRef.apiGroup", ref.get("apiGroup", ""), ("rbac.authorization.k8s.io",)))
        allowed = ("ClusterRole",) if self.kind == "ClusterRoleBinding" else ("ClusterRole", "Role")
        if ref.get("kind") not in allowed:
            causes.append(not_supported("roleRef.kind", ref.get("kind", ""), allowed))
        if not ref.get("name"):
            causes.append(required("roleRef.name"))
        for i, subject in enumerate(obj.get("subjects") or ()):
            p = f"subjects[{i}]"
            kind = (subject or {}).get("kind")
            if kind not in _SUBJECT_KINDS:
                causes.append(not_supported(f"{p}.kind", kind, _SUBJECT_KINDS))
            if not (subject or {}).get("name"):
                causes.append(required(f"{p}.name"))
            if kind == "ServiceAccount" and self.kind == "ClusterRoleBinding" and not subject.get("namespace"):
                causes.append(required(f"{p}.namespace"))
        return causes

    def validate_update(self, new: Obj, old: Obj) -> Causes:
        causes = super().validate_update(new, old)
        if new.get("roleRef") != old.get("roleRef"):
            causes.append(invalid_value("roleRef", new.get("roleRef"), "cannot change roleRef"))
        return causes


# --- networking.k8s.io ---------------------------------------------------------------------


class NetworkPolicyStrategy(_Simple):
    columns = P.NETWORKPOLICY_COLUMNS

    def default(self, obj: Obj) -> None:
        spec = obj.setdefault("spec", {})
        if not isinstance(spec, dict):
            return
        for direction in ("ingress", "egress"):
            for rule in spec.get(direction) or ():
                for port in (rule or {}).get("ports") or ():
                    if isinstance(port, dict):
                        port.setdefault("protocol", "TCP")
        if "policyTypes" not in spec:
            types = ["Ingress"]
            if spec.get("egress"):
                types.append("Egress")
            spec["policyTypes"] = types

    def validate(self, obj: Obj) -> Causes:
        causes = super().validate(obj)
        spec = obj.get("spec") or {}
        causes += validate_label_selector(spec.get("podSelector"), "spec.podSelector")
        for i, ptype in enumerate(spec.get("policyTypes") or ()):
            if ptype not in ("Ingress", "Egress"):
                causes.append(not_supported(f"spec.policyTypes[{i}]", ptype, ("Ingress", "Egress")))
        return causes


class IngressStrategy(_Simple):
    columns = P.INGRESS_COLUMNS

    def prepare_for_create(self, obj: Obj) -> None:
        obj["status"] = {"loadBalancer": {}}

    def validate(self, obj: Obj) -> Causes:
        return (super().validate(obj) + validate_ingress_spec(obj)
                + validate_ingress_class_annotation(obj))

    def validate_with_old(self, new: Obj, old: Obj) -> Causes:
        """Updates: a spec left as stored (``/status``, labels, finalizers) is not judged
        again, so Ingresses stored before a check existed can still be managed and deleted."""
        if new.get("spec") == old.get("spec"):
            return super().validate(new)
        return super().validate(new) + validate_ingress_spec(new, old)


class IngressClassStrategy(_Simple):
    columns = P.INGRESSCLASS_COLUMNS

    def validate_update(self, new: Obj, old: Obj) -> Causes:
        return super().validate_update(new, old) + validate_immutable(
            (new.get("spec") or {}).get("controller"), (old.get("spec") or {}).get("controller"),
            "spec.controller")


# --- storage, scheduling, policy, coordination, node, discovery ----------------------------


class StorageClassStrategy(_Simple):
    name_column = False  # its own Name column carries " (default)"
    columns = P.STORAGECLASS_COLUMNS

    def default(self, obj: Obj) -> None:
        obj.setdefault("reclaimPolicy", "Delete")
        obj.setdefault("volumeBindingMode", "Immediate")

    def validate(self, obj: Obj) -> Causes:
        causes = super().validate(obj)
        if not obj.get("provisioner"):
            causes.append(required("provisioner"))
        if obj.get("reclaimPolicy") not in ("Delete", "Retain"):
            causes.append(not_supported("reclaimPolicy", obj.get("reclaimPolicy"), ("Delete", "Retain")))
        if obj.get("volumeBindingMode") not in ("Immediate", "WaitForFirstConsumer"):
            causes.append(not_supported("volumeBindingMode", obj.get("volumeBindingMode"),
                                        ("Immediate", "WaitForFirstConsumer")))
        return causes

    def validate_update(self, new: Obj, old: Obj) -> Causes:
        causes = super().validate_update(new, old)
        for key in ("provisioner", "parameters", "reclaimPolicy", "volumeBindingMode"):
            if new.get(key) != old.get(key):
                causes.append(forbidden(key, "updates to " + key + " are forbidden."))
        return causes


#: the classes kube-apiserver bootstraps (``scheduling/v1`` SystemPriorityClasses); any other
#: ``system-`` name is reserved
SYSTEM_PRIORITY_CLASSES = {"system-node-critical": 2000001000,
                           "system-cluster-critical": 2000000000}


def _system_class_error(name: str, value: object, global_default: object) -> str | None:
    """``IsKnownSystemPriorityClass``: why a ``system-`` class is not the built-in one."""
    if name not in SYSTEM_PRIORITY_CLASSES:
        return f"{name} is not a known system priority class"
    if value != SYSTEM_PRIORITY_CLASSES[name]:
        return f"value of {name} PriorityClass must be {SYSTEM_PRIORITY_CLASSES[name]}"
    if bool(global_default):
        return f"globalDefault of {name} PriorityClass must be false"
    return None


class PriorityClassStrategy(_Simple):
    has_generation = False
    columns = P.PRIORITYCLASS_COLUMNS

    def default(self, obj: Obj) -> None:
        obj.setdefault("preemptionPolicy", "PreemptLowerPriority")

    def validate(self, obj: Obj) -> Causes:
        causes = super().validate(obj)
        value = obj.get("value")
        if not isinstance(value, int) or isinstance(value, bool):
            causes.append(required("value"))
            return causes
        name = str((obj.get("metadata") or {}).get("name", ""))
        if name.startswith("system-"):
            if why := _system_class_error(name, value, obj.get("globalDefault")):
                causes.append(forbidden("metadata.name", "priority class names with 'system-' "
                                        f"prefix are reserved for system use only. error: {why}"))
        elif value > 1_000_000_000:
            causes.append(forbidden("value", "maximum allowed value of a user defined priority is 1000000000"))
        return causes

    def validate_update(self, new: Obj, old: Obj) -> Causes:
        causes = super().validate_update(new, old)
        if new.get("value") != old.get("value"):
            causes.append(forbidden("value", "may not be changed in an update."))
        return causes


class PDBStrategy(_Simple):
    columns = P.PDB_COLUMNS

    def prepare_for_create(self, obj: Obj) -> None:
        obj["status"] = {"disruptionsAllowed": 0, "currentHealthy": 0, "desiredHealthy": 0,
                         "expectedPods": 0}

    def validate(self, obj: Obj) -> Causes:
        causes = super().validate(obj)
        spec = obj.get("spec") or {}
        if spec.get("minAvailable") is not None and spec.get("maxUnavailable") is not None:
            causes.append(invalid_value("spec", spec, "minAvailable and maxUnavailable cannot be both set"))
        causes += validate_label_selector(spec.get("selector"), "spec.selector")
        return causes


class LeaseStrategy(_Simple):
    has_generation = False
    columns = P.LEASE_COLUMNS


class RuntimeClassStrategy(_Simple):
    has_generation = False
    columns = P.RUNTIMECLASS_COLUMNS

    def validate(self, obj: Obj) -> Causes:
        """``ValidateRuntimeClass``: a DNS-label handler, non-negative overhead quantities,
        a valid scheduling node selector."""
        causes = super().validate(obj)
        handler = obj.get("handler")
        if not handler:
            causes.append(required("handler"))
        else:
            causes += [invalid_value("handler", handler, m) for m in dns1123_label(str(handler))]
        for key, value in (((obj.get("overhead") or {}).get("podFixed")) or {}).items():
            if str(value).startswith("-"):
                causes.append(invalid_value(f"overhead.podFixed[{key}]", value, "must be greater than or equal to 0"))
        selector = (obj.get("scheduling") or {}).get("nodeSelector")
        causes += validate_labels(selector, "scheduling.nodeSelector")
        for i, tol in enumerate((obj.get("scheduling") or {}).get("tolerations") or ()):
            op = (tol or {}).get("operator", "Equal")
            if op not in ("Equal", "Exists"):
                causes.append(not_supported(f"scheduling.tolerations[{i}].operator", op, ("Equal", "Exists")))
            elif op == "Exists" and (tol or {}).get("value"):
                causes.append(invalid_value(f"scheduling.tolerations[{i}].operator", (tol or {}).get("value"),
                                            "value must be empty when `operator` is 'Exists'"))
        return causes

    def validate_update(self, new: Obj, old: Obj) -> Causes:
        return super().validate_update(new, old) + validate_immutable(new.get("handler"), old.get("handler"), "handler")


class EndpointSliceStrategy(_Simple):
    columns = P.ENDPOINTSLICE_COLUMNS

    def default(self, obj: Obj) -> None:
        for port in obj.get("ports") or ():
            if isinstance(port, dict):
                port.setdefault("protocol", "TCP")
                port.setdefault("name", "")

    def validate(self, obj: Obj) -> Causes:
        causes = super().validate(obj)
        atype = obj.get("addressType")
        if atype not in ("FQDN", "IPv4", "IPv6"):
            causes.append(not_supported("addressType", atype, ("FQDN", "IPv4", "IPv6")))
        for i, ep in enumerate(obj.get("endpoints") or ()):
            if not (ep or {}).get("addresses"):
                causes.append(required(f"endpoints[{i}].addresses", "must contain at least 1 address"))
            for j, address in enumerate((ep or {}).get("addresses") or ()):
                causes += validate_slice_address(address, atype, f"endpoints[{i}].addresses[{j}]")
        return causes

    def validate_update(self, new: Obj, old: Obj) -> Causes:
        return super().validate_update(new, old) + validate_immutable(
            new.get("addressType"), old.get("addressType"), "addressType")


class EventsV1Strategy(EventStrategy):
    """events.k8s.io/v1 Events share core Events' storage shape, printers and field selectors."""

    def validate(self, obj: Obj) -> Causes:
        causes = validate_object_meta(obj, namespaced=True)
        if not obj.get("eventTime") and not obj.get("deprecatedFirstTimestamp"):
            causes.append(required("eventTime"))
        if not obj.get("reportingController"):
            causes.append(required("reportingController"))
        if not obj.get("reportingInstance"):
            causes.append(required("reportingInstance"))
        return causes


STRATEGIES: dict[tuple[str, str], type[Strategy]] = {
    ("events.k8s.io", "Event"): EventsV1Strategy,
    ("networking.k8s.io", "IngressClass"): IngressClassStrategy,
    ("networking.k8s.io", "Ingress"): IngressStrategy,
    ("networking.k8s.io", "NetworkPolicy"): NetworkPolicyStrategy,
    ("policy", "PodDisruptionBudget"): PDBStrategy,
    ("rbac.authorization.k8s.io", "ClusterRoleBinding"): RoleBindingStrategy,
    ("rbac.authorization.k8s.io", "ClusterRole"): RoleStrategy,
    ("rbac.authorization.k8s.io", "RoleBinding"): RoleBindingStrategy,
    ("rbac.authorization.k8s.io", "Role"): RoleStrategy,
    ("storage.k8s.io", "StorageClass"): StorageClassStrategy,
    ("scheduling.k8s.io", "PriorityClass"): PriorityClassStrategy,
    ("coordination.k8s.io", "Lease"): LeaseStrategy,
    ("node.k8s.io", "RuntimeClass"): RuntimeClassStrategy,
    ("discovery.k8s.io", "EndpointSlice"): EndpointSliceStrategy,
}
