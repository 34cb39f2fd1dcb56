"""Pod Security levels, versions, namespace labels and the admission decision with kube-apiserver's text."""

from __future__ import annotations

import pytest

from vkube.api.errors import Forbidden, Invalid
from vkube.api.podsecurity import (
    LATEST, Evaluator, Exemptions, LevelVersion, Policy, PodSecurityAdmission, Version,
    compare_levels, extract_pod_spec, parse_level, parse_version, policy_to_evaluate)

NGINX = {"metadata": {"name": "nginx"}, "spec": {"containers": [{"name": "nginx", "image": "nginx"}]}}
RESTRICTED_OK = {"metadata": {"name": "ok"}, "spec": {
    "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
    "containers": [{"name": "c", "image": "i", "securityContext": {
        "allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}}]}}
LABELS_RESTRICTED = {"pod-security.kubernetes.io/enforce": "restricted"}


def v(minor: int) -> Version:
    return Version(major=1, minor=minor)


def test_parse_level_and_version():
    assert parse_level("baseline") == ("baseline", None)
    assert parse_level("Baseline") == ("restricted", "must be one of privileged, baseline, restricted")
    assert parse_version("latest") == (LATEST, None)
    assert parse_version("v1.25") == (v(25), None)
    assert parse_version("v1.0") == (v(0), None)
    for bad in ("v1.01", "1.25", "v2.0", "v1.", "", "v1.x", "latest "):
        assert parse_version(bad) == (LATEST, 'must be "latest" or "v1.x"'), bad
    assert str(LevelVersion("restricted", LATEST)) == "restricted:latest"
    assert str(LevelVersion("baseline", v(24))) == "baseline:v1.24"
    assert compare_levels("restricted", "baseline") == 1
    assert compare_levels("privileged", "baseline") == -1
    assert compare_levels("baseline", "baseline") == 0


@pytest.mark.parametrize("labels, enforce, audit, warn, n_errors", [
    ({}, "privileged:latest", "privileged:latest", "privileged:latest", 0),
    ({"pod-security.kubernetes.io/enforce": "baseline"}, "baseline:latest", "privileged:latest",
     "baseline:latest", 0),
    ({"pod-security.kubernetes.io/enforce": "restricted", "pod-security.kubernetes.io/enforce-version": "v1.24"},
     "restricted:v1.24", "privileged:latest", "restricted:v1.24", 0),
    ({"pod-security.kubernetes.io/enforce": "restricted", "pod-security.kubernetes.io/warn": "baseline"},
     "restricted:latest", "privileged:latest", "baseline:latest", 0),
    ({"pod-security.kubernetes.io/enforce": "baseline", "pod-security.kubernetes.io/warn-version": "v1.20"},
     "baseline:latest", "privileged:latest", "baseline:v1.20", 0),
    ({"pod-security.kubernetes.io/enforce": "bogus"}, "restricted:latest", "privileged:latest",
     "privileged:latest", 1),
    ({"pod-security.kubernetes.io/audit": "bogus", "pod-security.kubernetes.io/warn": "x",
      "pod-security.kubernetes.io/audit-version": "v9"},
     "privileged:latest", "privileged:latest", "privileged:latest", 3),
    ({"pod-security.kubernetes.io/audit": "restricted", "pod-security.kubernetes.io/audit-version": "v1.23"},
     "privileged:latest", "restricted:v1.23", "privileged:latest", 0),
])
def test_policy_from_namespace_labels(labels, enforce, audit, warn, n_errors):
    policy, errors = policy_to_evaluate(labels)
    assert (str(policy.enforce), str(policy.audit), str(policy.warn)) == (enforce, audit, warn)
    assert len(errors) == n_errors


def test_invalid_label_cause_names_the_label():
    _, errors = policy_to_evaluate({"pod-security.kubernetes.io/enforce": "bogus"})
    assert errors == [{"reason": "FieldValueInvalid", "field": "metadata.labels[pod-security.kubernetes.io/enforce]",
                       "message": 'Invalid value: "bogus": must be one of privileged, baseline, restricted'}]


def test_restricted_message_as_in_the_kubernetes_docs():
    decision = PodSecurityAdmission().validate_pod(NGINX, namespace="ns", namespace_labels=LABELS_RESTRICTED)
    assert isinstance(decision.error, Forbidden)
    assert decision.error.code == 403
    assert decision.error.message == (
        'pods "nginx" is forbidden: violates PodSecurity "restricted:latest": allowPrivilegeEscalation != false '
        '(container "nginx" must set securityContext.allowPrivilegeEscalation=false), unrestricted capabilities '
        '(container "nginx" must set securityContext.capabilities.drop=["ALL"]), runAsNonRoot != true (pod or '
        'container "nginx" must set securityContext.runAsNonRoot=true), seccompProfile (pod or container "nginx" '
        'must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost")')
    assert decision.error.details == {"name": "nginx", "kind": "pods"}
    assert decision.audit_annotations["pod-security.kubernetes.io/enforce-policy"] == "restricted:latest"
    assert decision.warnings == []


def test_baseline_checks_come_first_in_id_order():
    pod = {"metadata": {"name": "p"}, "spec": {
        "hostNetwork": True, "volumes": [{"name": "h", "hostPath": {"path": "/"}}],
        "containers": [{"name": "c", "securityContext": {"privileged": True, "runAsUser": 0}}]}}
    result = Evaluator().check(LevelVersion("restricted", LATEST), pod["metadata"], pod["spec"])
    assert result.reasons == (
        "host namespaces", "privileged", "allowPrivilegeEscalation != false", "unrestricted capabilities",
        "restricted volume types", "runAsNonRoot != true", "runAsUser=0", "seccompProfile")
    baseline = Evaluator().check(LevelVersion("baseline", LATEST), pod["metadata"], pod["spec"])
    assert baseline.forbidden_detail() == (
        'host namespaces (hostNetwork=true), hostPath volumes (volume "h"), '
        'privileged (container "c" must not set securityContext.privileged=true)')


def test_versions_select_checks():
    spec = {"containers": [{"name": "c", "securityContext": {"runAsUser": 0}}],
            "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}}
    ev = Evaluator()
    reasons = lambda lv: ev.check(lv, {}, spec).reasons  # noqa: E731
    assert "runAsUser=0" not in reasons(LevelVersion("restricted", v(22)))
    assert "runAsUser=0" in reasons(LevelVersion("restricted", v(23)))
    # before v1.22 restricted used the baseline capabilities check; before 1.8 no privilege-escalation check
    assert reasons(LevelVersion("restricted", v(7))) == ()
    assert reasons(LevelVersion("restricted", v(8))) == ("allowPrivilegeEscalation != false",)
    # far-future versions evaluate as the newest
    assert reasons(LevelVersion("restricted", v(99))) == reasons(LevelVersion("restricted", LATEST))
    assert ev.max_version == v(37)
    probe = {"containers": [{"name": "c", "livenessProbe": {"httpGet": {"host": "evil"}}}]}
    assert ev.check(LevelVersion("baseline", v(33)), {}, probe).allowed
    assert not ev.check(LevelVersion("baseline", v(34)), {}, probe).allowed


def test_privileged_namespace_allows_everything():
    decision = PodSecurityAdmission().validate_pod(
        {"metadata": {"name": "x"}, "spec": {"hostPID": True}}, namespace="ns", namespace_labels={})
    assert decision.allowed
    assert decision.audit_annotations == {"pod-security.kubernetes.io/enforce-policy": "privileged:latest"}


def test_warn_mode_allows_with_warning_and_audit_annotation():
    labels = {"pod-security.kubernetes.io/warn": "baseline", "pod-security.kubernetes.io/audit": "restricted"}
    pod = {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "securityContext": {"privileged": True}}]}}
    decision = PodSecurityAdmission().validate_pod(pod, namespace="ns", namespace_labels=labels)
    assert decision.allowed
    assert decision.warnings == ['would violate PodSecurity "baseline:latest": privileged '
                                 '(container "c" must not set securityContext.privileged=true)']
    assert decision.audit_annotations["pod-security.kubernetes.io/audit-violations"].startswith(
        'would violate PodSecurity "restricted:latest": privileged (container "c"')


def test_no_warning_when_enforce_refuses():
    labels = {"pod-security.kubernetes.io/enforce": "baseline", "pod-security.kubernetes.io/warn": "restricted"}
    pod = {"metadata": {"name": "p"}, "spec": {"hostIPC": True, "containers": [{"name": "c"}]}}
    decision = PodSecurityAdmission().validate_pod(pod, namespace="ns", namespace_labels=labels)
    assert decision.error.message == 'pods "p" is forbidden: violates PodSecurity "baseline:latest": ' \
                                     "host namespaces (hostIPC=true)"
    assert decision.warnings == []


def test_unnamed_pod_message():
    decision = PodSecurityAdmission().validate_pod(
        {"metadata": {"generateName": "x-"}, "spec": {"hostIPC": True}}, namespace="ns",
        namespace_labels={"pod-security.kubernetes.io/enforce": "baseline"})
    assert decision.error.message.startswith('pods is forbidden: violates PodSecurity "baseline:latest"')


def test_exemptions():
    psa = PodSecurityAdmission(exemptions=Exemptions(usernames=frozenset({"admin"}),
                                                     namespaces=frozenset({"kube-system"}),
                                                     runtime_classes=frozenset({"kata"})))
    bad = {"metadata": {"name": "p"}, "spec": {"hostPID": True}}
    by_user = psa.validate_pod(bad, namespace="ns", namespace_labels=LABELS_RESTRICTED, username="admin")
    by_ns = psa.validate_pod(bad, namespace="kube-system", namespace_labels=LABELS_RESTRICTED)
    kata = {"metadata": {"name": "p"}, "spec": {"hostPID": True, "runtimeClassName": "kata"}}
    by_rc = psa.validate_pod(kata, namespace="ns", namespace_labels=LABELS_RESTRICTED)
    assert [d.audit_annotations for d in (by_user, by_ns, by_rc)] == [
        {"pod-security.kubernetes.io/exempt": k} for k in ("user", "namespace", "runtimeClass")]
    assert all(d.allowed for d in (by_user, by_ns, by_rc))
    assert not psa.validate_pod(bad, namespace="ns", namespace_labels=LABELS_RESTRICTED).allowed


def test_bad_enforce_label_fails_closed_and_is_audited():
    decision = PodSecurityAdmission().validate_pod(
        NGINX, namespace="ns", namespace_labels={"pod-security.kubernetes.io/enforce": "strict"})
    assert not decision.allowed and '"restricted:latest"' in decision.error.message
    assert decision.audit_annotations["error"].startswith("Failed to parse policy: metadata.labels[")


def test_subresources_and_insignificant_updates_are_not_checked():
    psa = PodSecurityAdmission()
    bad = {"metadata": {"name": "p"}, "spec": {"hostPID": True, "containers": [{"name": "c", "image": "a"}]}}
    for sub in ("exec", "log", "status", "binding", "eviction", "attach", "portforward", "proxy"):
        assert psa.validate_pod(bad, namespace="ns", namespace_labels=LABELS_RESTRICTED, subresource=sub).allowed
    relabeled = {**bad, "metadata": {"name": "p", "labels": {"a": "b"}}}
    assert psa.validate_pod(relabeled, namespace="ns", namespace_labels=LABELS_RESTRICTED,
                            operation="UPDATE", old_pod=bad).allowed
    new_image = {**bad, "spec": {**bad["spec"], "containers": [{"name": "c", "image": "b"}]}}
    assert not psa.validate_pod(new_image, namespace="ns", namespace_labels=LABELS_RESTRICTED,
                                operation="UPDATE", old_pod=bad).allowed
    debug = {**bad, "spec": {**bad["spec"], "ephemeralContainers": [{"name": "dbg", "image": "busybox"}]}}
    assert not psa.validate_pod(debug, namespace="ns", namespace_labels=LABELS_RESTRICTED,
                                operation="UPDATE", old_pod=bad).allowed


@pytest.mark.parametrize("group, resource, obj", [
    ("apps", "deployments", {"spec": {"template": {"spec": {"hostPID": True}}}}),
    ("apps", "daemonsets", {"spec": {"template": {"spec": {"hostPID": True}}}}),
    ("batch", "cronjobs", {"spec": {"jobTemplate": {"spec": {"template": {"spec": {"hostPID": True}}}}}}),
    ("", "podtemplates", {"template": {"spec": {"hostPID": True}}}),
])
def test_workloads_warn_but_are_never_refused(group, resource, obj):
    obj = {"metadata": {"name": "w"}, **obj}
    labels = {"pod-security.kubernetes.io/enforce": "baseline"}
    decision = PodSecurityAdmission().validate_pod_controller(group, resource, obj, namespace="ns",
                                                              namespace_labels=labels)
    assert decision.allowed
    assert decision.warnings == ['would violate PodSecurity "baseline:latest": host namespaces (hostPID=true)']
    assert "pod-security.kubernetes.io/enforce-policy" not in decision.audit_annotations


def test_extract_pod_spec():
    assert extract_pod_spec("", "configmaps", {}) is None
    assert extract_pod_spec("apps", "deployments", {"spec": {}}) is None
    meta, spec = extract_pod_spec("", "pods", {"metadata": {"name": "a"}, "spec": {"x": 1}})
    assert (meta, spec) == ({"name": "a"}, {"x": 1})


def test_namespace_labels_validated_on_create_and_update():
    psa = PodSecurityAdmission()
    bad = {"metadata": {"name": "team", "labels": {"pod-security.kubernetes.io/enforce": "bogus"}}}
    decision = psa.validate_namespace(bad)
    assert isinstance(decision.error, Invalid)
    assert decision.error.message == (
        'Namespace "team" is invalid: metadata.labels[pod-security.kubernetes.io/enforce]: '
        'Invalid value: "bogus": must be one of privileged, baseline, restricted')
    # an update that keeps the same invalid labels is let through (upstream: errors unchanged)
    assert psa.validate_namespace(bad, operation="UPDATE", old_namespace=bad).allowed
    good = {"metadata": {"name": "team"}}
    assert not psa.validate_namespace(bad, operation="UPDATE", old_namespace=good).allowed


def test_stricter_enforce_level_warns_about_existing_pods():
    psa = PodSecurityAdmission()
    old = {"metadata": {"name": "team", "labels": {}}}
    new = {"metadata": {"name": "team", "labels": {"pod-security.kubernetes.io/enforce": "baseline"}}}
    owner = {"controller": True, "uid": "rs1"}
    pods = [
        {"metadata": {"name": "b"}, "spec": {"hostPID": True}},
        {"metadata": {"name": "a", "ownerReferences": [owner]}, "spec": {"hostPID": True}},
        {"metadata": {"name": "c", "ownerReferences": [owner]}, "spec": {"hostPID": True}},
        {"metadata": {"name": "z"}, "spec": {"containers": [{"name": "c", "securityContext": {"privileged": True}}]}},
        {"metadata": {"name": "fine"}, "spec": {}},
    ]
    decision = psa.validate_namespace(new, operation="UPDATE", old_namespace=old, pods=pods)
    assert decision.allowed
    assert decision.warnings == [
        'existing pods in namespace "team" violate the new PodSecurity enforce level "baseline:latest"',
        "a (and 2 other pods): host namespaces",
        "z: privileged",
    ]
    limited = PodSecurityAdmission(max_pods_to_check=2)
    warnings = limited.validate_namespace(new, operation="UPDATE", old_namespace=old, pods=pods).warnings
    assert warnings[0] == "new PodSecurity enforce level only checked against the first 2 of 5 existing pods"
    # relaxing the level, or setting privileged, checks nothing
    assert psa.validate_namespace(old, operation="UPDATE", old_namespace=new, pods=pods).warnings == []


def test_exempt_namespace_warns_that_its_policy_is_ignored():
    psa = PodSecurityAdmission(exemptions=Exemptions(namespaces=frozenset({"kube-system"})))
    ns = {"metadata": {"name": "kube-system", "labels": {"pod-security.kubernetes.io/enforce": "restricted",
                                                         "pod-security.kubernetes.io/warn": "baseline"}}}
    assert psa.validate_namespace(ns).warnings == [
        'namespace "kube-system" is exempt from Pod Security, and the policy '
        "(enforce=restricted:latest, warn=baseline:latest) will be ignored"]


def test_defaults_apply_to_unlabelled_namespaces():
    psa = PodSecurityAdmission(defaults=Policy(enforce=LevelVersion("baseline", LATEST)))
    assert not psa.validate_pod({"metadata": {"name": "p"}, "spec": {"hostPID": True}},
                                namespace="ns", namespace_labels={}).allowed
