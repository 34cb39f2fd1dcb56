"""The PodSecurity admission decision, as ``k8s.io/pod-security-admission/admission`` makes it.

Pure: the caller passes the namespace's labels (and, for namespace updates, its pods); the result
is a :class:`Decision` with the error to return, warnings for the ``Warning`` header and audit
annotations (``pod-security.kubernetes.io/enforce-policy``, ``.../audit-violations``,
``.../exempt``). Upstream's behaviour followed:

- pods are enforced; workload resources (deployments, jobs, ...) only warn and audit;
- exemptions by username, namespace and runtimeClassName;
- subresources of pods (``exec``, ``log``, ``status``, ...) are not checked, and a pod update is
  checked only when it changes an image or adds an ephemeral container;
- namespace labels are validated (``Namespace "x" is invalid: metadata.labels[...]: ...``) and
  raising a namespace's enforce level warns about its existing pods that would violate it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from vkube.api.errors import Invalid, StatusError, cause_text, invalid
from vkube.api.forbidden import forbidden
from vkube.api.podsecurity.policy import (
    AUDIT, AUDIT_VERSION, ENFORCE, ENFORCE_VERSION, LABEL_PREFIX, PRIVILEGED, WARN, WARN_VERSION,
    Evaluator, LevelVersion, Policy, compare_levels, policy_to_evaluate)

__all__ = ["Decision", "Exemptions", "PodSecurityAdmission", "extract_pod_spec", "POD_SPEC_RESOURCES"]

Obj = Mapping[str, Any]

#: group/resource → where the pod template lives (``k8s.io/pod-security-admission`` defaults).
POD_SPEC_RESOURCES: Mapping[tuple[str, str], tuple[str, ...]] = MappingProxyType({
    ("", "pods"): (),
    ("", "podtemplates"): ("template",),
    ("", "replicationcontrollers"): ("spec", "template"),
    ("apps", "replicasets"): ("spec", "template"),
    ("apps", "deployments"): ("spec", "template"),
    ("apps", "statefulsets"): ("spec", "template"),
    ("apps", "daemonsets"): ("spec", "template"),
    ("batch", "jobs"): ("spec", "template"),
    ("batch", "cronjobs"): ("spec", "jobTemplate", "spec", "template"),
})
IGNORED_POD_SUBRESOURCES = frozenset({"exec", "attach", "binding", "eviction", "log", "portforward",
                                      "proxy", "status"})
ENFORCE_POLICY = LABEL_PREFIX + "enforce-policy"
AUDIT_VIOLATIONS = LABEL_PREFIX + "audit-violations"
EXEMPT = LABEL_PREFIX + "exempt"


def extract_pod_spec(group: str, resource: str, obj: Obj) -> tuple[Obj, Obj] | None:
    """(metadata, spec) of the pod or pod template in ``obj``; None when it has none."""
    path = POD_SPEC_RESOURCES.get((group, resource))
    if path is None:
        return None
    node: Any = obj
    for key in path:
        node = node.get(key) if isinstance(node, Mapping) else None
    if not isinstance(node, Mapping):
        return None
    return node.get("metadata") or {}, node.get("spec") or {}


@dataclass(frozen=True, slots=True)
class Exemptions:
    usernames: frozenset[str] = frozenset()
    namespaces: frozenset[str] = frozenset()
    runtime_classes: frozenset[str] = frozenset()


@dataclass(slots=True)
class Decision:
    """``error`` is None when allowed; ``warnings`` go to the client, annotations to the audit log."""

    error: StatusError | None = None
    warnings: list[str] = field(default_factory=list)
    audit_annotations: dict[str, str] = field(default_factory=dict)

    @property
    def allowed(self) -> bool:
        return self.error is None


class PodSecurityAdmission:
    """One configured admission plugin (kube-apiserver's defaults: privileged:latest, no exemptions)."""

    def __init__(self, *, defaults: Policy = Policy(), exemptions: Exemptions = Exemptions(),
                 evaluator: Evaluator | None = None, max_pods_to_check: int = 3000) -> None:
        self.defaults = defaults
        self.exemptions = exemptions
        self.evaluator = evaluator or Evaluator()
        self.max_pods_to_check = max_pods_to_check
        self._policies: dict[tuple[tuple[str, str], ...], tuple[Policy, list[dict[str, str]]]] = {}

    def policy(self, labels: Mapping[str, Any] | None) -> tuple[Policy, list[dict[str, str]]]:
        """The namespace's policy (parsed once per distinct set of Pod Security labels)."""
        key = tuple(sorted((k, str(v)) for k, v in (labels or {}).items() if k.startswith(LABEL_PREFIX)))
        cached = self._policies.get(key)
        if cached is None:
            if len(self._policies) >= 1024:
                self._policies.pop(next(iter(self._policies)))
            cached = self._policies[key] = policy_to_evaluate(dict(key), self.defaults)
        return cached[0], list(cached[1])

    # -- pods and workloads ------------------------------------------------------------------

    def validate_pod(self, pod: Obj, *, namespace: str, namespace_labels: Mapping[str, Any] | None,
                     username: str = "", operation: str = "CREATE", old_pod: Obj | None = None,
                     subresource: str = "") -> Decision:
        """Admit a pod create/update: enforce, then audit, then warn (warn only when allowed)."""
        if subresource in IGNORED_POD_SUBRESOURCES:
            return Decision()
        exempt = self._exempt(namespace, username)
        if exempt:
            return exempt
        policy, errors = self.policy(namespace_labels)
        if not errors and policy.fully_privileged():
            return Decision(audit_annotations={ENFORCE_POLICY: str(LevelVersion())})
        if operation == "UPDATE" and old_pod is not None and not _significant_update(pod, old_pod):
            return Decision()
        name = str((pod.get("metadata") or {}).get("name") or "")
        return self._evaluate(policy, errors, pod.get("metadata") or {}, pod.get("spec") or {},
                              resource="pods", group="", name=name, enforce=True)

    def validate_pod_controller(self, group: str, resource: str, obj: Obj, *, namespace: str,
                                namespace_labels: Mapping[str, Any] | None, username: str = "",
                                subresource: str = "") -> Decision:
        """Workloads are never refused: their pod templates only warn and audit."""
        if subresource:
            return Decision()
        exempt = self._exempt(namespace, username)
        if exempt:
            return exempt
        policy, errors = self.policy(namespace_labels)
        if not errors and policy.warn.level == PRIVILEGED and policy.audit.level == PRIVILEGED:
            return Decision()
        extracted = extract_pod_spec(group, resource, obj)
        if extracted is None:
            return Decision()
        name = str((obj.get("metadata") or {}).get("name") or "")
        return self._evaluate(policy, errors, extracted[0], extracted[1], resource=resource,
                              group=group, name=name, enforce=False)

    def _exempt(self, namespace: str, username: str) -> Decision | None:
        if namespace and namespace in self.exemptions.namespaces:
            return Decision(audit_annotations={EXEMPT: "namespace"})
        if username in self.exemptions.usernames:
            return Decision(audit_annotations={EXEMPT: "user"})
        return None

    def _evaluate(self, policy: Policy, errors: list[dict[str, str]], metadata: Obj, spec: Obj, *,
                  resource: str, group: str, name: str, enforce: bool) -> Decision:
        if spec.get("runtimeClassName") in self.exemptions.runtime_classes:
            return Decision(audit_annotations={EXEMPT: "runtimeClass"})
        decision = Decision()
        if errors:
            decision.audit_annotations["error"] = "Failed to parse policy: " + _aggregate(errors)
        cache = {}
        if enforce:
            decision.audit_annotations[ENFORCE_POLICY] = str(policy.enforce)
            result = cache[policy.enforce] = self.evaluator.check(policy.enforce, metadata, spec)
            if not result.allowed:
                decision.error = forbidden(resource, name, (
                    f'violates PodSecurity "{policy.enforce}": {result.forbidden_detail()}'),
                    group=group)
        audit = cache.get(policy.audit) or self.evaluator.check(policy.audit, metadata, spec)
        cache[policy.audit] = audit
        if not audit.allowed:
            decision.audit_annotations[AUDIT_VIOLATIONS] = (
                f'would violate PodSecurity "{policy.audit}": {audit.forbidden_detail()}')
        if decision.allowed:
            warn = cache.get(policy.warn) or self.evaluator.check(policy.warn, metadata, spec)
            if not warn.allowed:
                decision.warnings.append(
                    f'would violate PodSecurity "{policy.warn}": {warn.forbidden_detail()}')
        return decision

    # -- namespaces --------------------------------------------------------------------------

    def validate_namespace(self, namespace: Obj, *, operation: str = "CREATE",
                           old_namespace: Obj | None = None, pods: Iterable[Obj] = (),
                           subresource: str = "") -> Decision:
        """Refuse invalid labels; on a stricter enforce level, warn about existing pods."""
        if subresource:
            return Decision()
        meta = namespace.get("metadata") or {}
        name = str(meta.get("name") or "")
        policy, errors = self.policy(meta.get("labels"))
        exempt = bool(name) and name in self.exemptions.namespaces
        if operation == "CREATE":
            if errors:
                return Decision(error=self._invalid(name, errors))
            return Decision(warnings=self._exempt_warning(name, policy, meta.get("labels") or {})
                            if exempt else [])
        if operation != "UPDATE" or old_namespace is None:
            return Decision()
        old_policy, old_errors = self.policy((old_namespace.get("metadata") or {}).get("labels"))
        if errors and (not old_errors or errors != old_errors):
            return Decision(error=self._invalid(name, errors))
        new, old = policy.enforce, old_policy.enforce
        if new == old or new.level == PRIVILEGED:
            return Decision()
        if new.version == old.version and compare_levels(new.level, old.level) < 1:
            return Decision()
        if exempt:
            return Decision(warnings=self._exempt_warning(name, policy, meta.get("labels") or {}))
        return Decision(warnings=self.evaluate_pods_in_namespace(name, new, list(pods)))

    def _invalid(self, name: str, errors: list[dict[str, str]]) -> Invalid:
        return invalid("Namespace", name, errors)

    def evaluate_pods_in_namespace(self, namespace: str, enforce: LevelVersion,
                                   pods: Sequence[Obj]) -> list[str]:
        """Upstream's warnings: one per distinct set of reasons, naming the first pod (by name)."""
        ordered = self._prioritize(pods)
        total = len(ordered)
        ordered = ordered[: self.max_pods_to_check]
        first: dict[str, tuple[str, int]] = {}
        for pod in ordered:
            result = self.evaluator.check(enforce, pod.get("metadata"), pod.get("spec"))
            if result.allowed:
                continue
            reason = result.forbidden_reason()
            pod_name = str((pod.get("metadata") or {}).get("name") or "")
            seen_name, count = first.get(reason, (pod_name, 0))
            first[reason] = (min(seen_name, pod_name), count + 1)
        warnings = []
        if len(ordered) < total:
            warnings.append(f"new PodSecurity enforce level only checked against the first "
                            f"{len(ordered)} of {total} existing pods")
        if first:
            warnings.append(f'existing pods in namespace "{namespace}" violate the new PodSecurity '
                            f'enforce level "{enforce}"')
        decorated = []
        for reason, (pod_name, count) in first.items():
            if count == 1:
                decorated.append(f"{pod_name}: {reason}")
            elif count == 2:
                decorated.append(f"{pod_name} (and 1 other pod): {reason}")
            else:
                decorated.append(f"{pod_name} (and {count - 1} other pods): {reason}")
        return warnings + sorted(decorated)

    def _prioritize(self, pods: Sequence[Obj]) -> list[Obj]:
        """One pod per controller first (and runtime-class-exempt pods dropped), then the rest."""
        first, rest, seen = [], [], set()
        for pod in pods:
            if (pod.get("spec") or {}).get("runtimeClassName") in self.exemptions.runtime_classes:
                continue
            owner = next((r for r in (pod.get("metadata") or {}).get("ownerReferences") or ()
                          if r.get("controller")), None)
            if owner is None:
                first.append(pod)
            elif owner.get("uid") in seen:
                rest.append(pod)
            else:
                seen.add(owner.get("uid"))
                first.append(pod)
        return first + rest

    def _exempt_warning(self, name: str, policy: Policy, labels: Mapping[str, Any]) -> list[str]:
        if policy.fully_privileged() or policy.equivalent(self.defaults):
            return []
        parts = []
        for mode, level_label, version_label, lv in (
                ("enforce", ENFORCE, ENFORCE_VERSION, policy.enforce),
                ("audit", AUDIT, AUDIT_VERSION, policy.audit),
                ("warn", WARN, WARN_VERSION, policy.warn)):
            if lv.level != PRIVILEGED and (level_label in labels or version_label in labels):
                parts.append(f"{mode}={lv}")
        return [f'namespace "{name}" is exempt from Pod Security, and the policy '
                f'({", ".join(parts)}) will be ignored']


def _significant_update(pod: Obj, old: Obj) -> bool:
    """Only image changes and new ephemeral containers are re-checked (upstream's rule)."""
    spec, old_spec = pod.get("spec") or {}, old.get("spec") or {}
    for key in ("containers", "initContainers"):
        new_c, old_c = spec.get(key) or [], old_spec.get(key) or []
        if len(new_c) != len(old_c):
            return True
        if any(a.get("image") != b.get("image") for a, b in zip(new_c, old_c)):
            return True
    old_eph = {c.get("name"): c for c in old_spec.get("ephemeralContainers") or ()}
    for c in spec.get("ephemeralContainers") or ():
        before = old_eph.get(c.get("name"))
        if before is None or before.get("image") != c.get("image"):
            return True
    return False


def _aggregate(errors: list[dict[str, str]]) -> str:
    messages = [cause_text(e) for e in errors]  # "path: body", as field.ErrorList prints
    return messages[0] if len(messages) == 1 else "[" + ", ".join(messages) + "]"
