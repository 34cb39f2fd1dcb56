"""Admission webhooks as a tenant uses them: ``vkube create`` on the embedded host, webhook
configurations written and objects created with the real kubectl, a small HTTPS webhook server
in the test (its own CA in ``caBundle``). Every refusal is checked for kube-apiserver's words
and for the store being unchanged."""

from __future__ import annotations

import json
import socket

from tests.cli.conftest import User, eventually
from tests.webhooks.conftest import configure, hook, remove, url
from tests.webhooks.probes import REFUSED, probe_loopback
from tests.webhooks.server import WebhookServer

VWC, MWC = "ValidatingWebhookConfiguration", "MutatingWebhookConfiguration"
VWCS, MWCS = "validatingwebhookconfigurations", "mutatingwebhookconfigurations"


def absent(u: User, name: str, namespace: str = "default") -> None:
    out = u.kubectl("get", "configmap", name, "-n", namespace, check=False)
    assert out.returncode != 0 and "NotFound" in out.stderr, (out.stdout, out.stderr)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_validating_webhook_refuses_with_its_message_and_warns(vc: User, server: WebhookServer):
    configure(vc, VWC, "names", hook("names.example.com", url(server, "/validate")))
    try:
        out = vc.kubectl("create", "configmap", "bad-one", check=False)  # no wait: the watch applies it
        assert out.returncode == 1
        assert ('admission webhook "names.example.com" denied the request: the name bad-one is not '
                "allowed here") in out.stderr
        absent(vc, "bad-one")
        ok = vc.kubectl("create", "configmap", "fine")
        assert "Warning: checked fine by the test webhook" in ok.stderr
        review = next(doc for path, doc in server.requests if path == "/validate"
                      and doc["request"].get("name") == "fine")
        req = review["request"]
        assert review["apiVersion"] == "admission.k8s.io/v1" and review["kind"] == "AdmissionReview"
        assert req["operation"] == "CREATE" and req["namespace"] == "default"
        assert req["kind"] == {"group": "", "version": "v1", "kind": "ConfigMap"}
        assert req["resource"] == {"group": "", "version": "v1", "resource": "configmaps"}
        assert req["object"]["metadata"]["name"] == "fine" and req["oldObject"] is None
        assert req["dryRun"] is False and req["options"]["kind"] == "CreateOptions"
        assert req["userInfo"]["username"]
        # the webhook's audit annotation is in the request's audit event
        def audited():
            events = [json.loads(line) for line in vc.vkube("logs", "wh", "--audit").stdout.splitlines()
                      if line.startswith("{")]
            assert any((e.get("annotations") or {}).get("names.example.com/checked") == "fine" for e in events)
        eventually(audited, timeout=30, delay=0.5)
        # dryRun requests reach webhooks that declare no side effects, marked as such
        vc.kubectl("create", "configmap", "dry", "--dry-run=server")
        dry = [d for p, d in server.requests if d["request"].get("name") == "dry"]
        assert dry and dry[-1]["request"]["dryRun"] is True
        absent(vc, "dry")
    finally:
        remove(vc, VWCS, "names")
    vc.kubectl("create", "configmap", "bad-after-removal")  # the deletion applies at once too


def test_mutating_webhook_adds_a_label_before_validation(vc: User, server: WebhookServer):
    configure(vc, MWC, "labels", hook("labels.example.com", url(server, "/mutate")))
    configure(vc, VWC, "names", hook("names.example.com", url(server, "/validate")))
    try:
        vc.kubectl("create", "configmap", "labelled")
        labels = json.loads(vc.kubectl("get", "configmap", "labelled", "-o", "jsonpath={.metadata.labels}").stdout)
        assert labels == {"webhook": "mutated"}
        # the validating webhook saw the mutated object (mutating runs first)
        seen = [d["request"]["object"] for p, d in server.requests
                if p == "/validate" and d["request"].get("name") == "labelled"]
        assert seen and seen[-1]["metadata"]["labels"] == {"webhook": "mutated"}
    finally:
        remove(vc, MWCS, "labels")
        remove(vc, VWCS, "names")


def test_reinvocation_if_needed(vc: User, server: WebhookServer):
    """A (IfNeeded) runs, B changes the object afterwards, so A is called a second time."""
    configure(vc, MWC, "a-first", hook("a.example.com", url(server, "/mutate"), reinvocationPolicy="IfNeeded"))
    configure(vc, MWC, "b-second", hook("b.example.com", url(server, "/mutate-other")))
    try:
        vc.kubectl("create", "configmap", "twice")
        calls = [p for p, d in server.requests if (d["request"].get("object") or {}).get("metadata", {}).get("name") == "twice"]
        assert calls == ["/mutate", "/mutate-other", "/mutate"], calls
        labels = json.loads(vc.kubectl("get", "configmap", "twice", "-o", "jsonpath={.metadata.labels}").stdout)
        assert labels == {"webhook": "mutated", "other": "yes"}
    finally:
        remove(vc, MWCS, "a-first")
        remove(vc, MWCS, "b-second")


def test_failure_policy_fail_refuses_and_ignore_lets_through(vc: User):
    down = {"url": f"https://127.0.0.1:{closed_port()}/validate"}
    configure(vc, VWC, "down", hook("down.example.com", down, failurePolicy="Fail"))
    try:
        out = vc.kubectl("create", "configmap", "while-down", check=False)
        assert out.returncode == 1
        # a loopback port the cluster's owner did not publish is refused before any dial
        assert ('Internal error occurred: failed calling webhook "down.example.com": failed to call webhook: '
                f'Post "{down["url"]}?timeout=10s": dial tcp 127.0.0.1:') in out.stderr
        assert REFUSED in out.stderr and "connection refused" not in out.stderr
        absent(vc, "while-down")
        configure(vc, VWC, "down", hook("down.example.com", down, failurePolicy="Ignore"))
        vc.kubectl("create", "configmap", "while-down")
    finally:
        remove(vc, VWCS, "down")


def test_this_machine_is_out_of_reach_but_for_the_published_target(vc: User, server: WebhookServer):
    """The owner published the test server (``portForwardTargets``): webhooks reach it (every
    other test here), while a port scan, a pod's unpublished port-forward annotation and an
    APIService behind an ExternalName ``127.0.0.1`` are refused alike, never dialled."""
    probe_loopback(vc.kubectl)
    configure(vc, VWC, "names", hook("names.example.com", url(server, "/validate")))
    try:
        vc.kubectl("create", "configmap", "published-target-works")
    finally:
        remove(vc, VWCS, "names")


def test_namespace_object_selectors_and_match_conditions_exclude(vc: User, server: WebhookServer):
    vc.kubectl("create", "namespace", "exempt")
    vc.kubectl("label", "namespace", "exempt", "webhooks=skip")
    configure(vc, VWC, "names", hook(
        "names.example.com", url(server, "/validate"),
        namespaceSelector={"matchExpressions": [{"key": "webhooks", "operator": "NotIn", "values": ["skip"]}]},
        objectSelector={"matchExpressions": [{"key": "skip-me", "operator": "DoesNotExist"}]},
        matchConditions=[{"name": "not-system", "expression": "!object.metadata.name.startsWith('bad-but-ok')"}]))
    try:
        vc.kubectl("create", "configmap", "bad-in-exempt", "-n", "exempt")  # namespaceSelector excludes
        assert vc.kubectl("create", "configmap", "bad-here", check=False).returncode == 1
        vc.kubectl("apply", "-f", "-", input=json.dumps({  # objectSelector excludes
            "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "bad-labelled", "labels": {"skip-me": "1"}}}))
        vc.kubectl("create", "configmap", "bad-but-ok")  # the match condition is false
        assert not [d for p, d in server.requests if d["request"].get("name") in ("bad-in-exempt", "bad-but-ok")]
    finally:
        remove(vc, VWCS, "names")


def test_service_reference_reaches_the_pod_behind_the_service(vc: User, server: WebhookServer):
    """``clientConfig.service`` → the Service's ready endpoint → its Pod, which on the embedded
    host points port 8443 at the test server (``vkube.io/port-forward-8443``); TLS is verified
    for ``hooks.webhooks.svc``."""
    vc.kubectl("create", "namespace", "webhooks")
    vc.kubectl("apply", "-n", "webhooks", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "Pod", "metadata": {
            "name": "hooks", "labels": {"app": "hooks"},
            "annotations": {"vkube.io/port-forward-8443": f"127.0.0.1:{server.port}"}},
         "spec": {"containers": [{"name": "h", "image": "example/hooks", "ports": [{"containerPort": 8443}]}]}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "hooks"},
         "spec": {"selector": {"app": "hooks"}, "ports": [{"port": 443, "targetPort": 8443}]}}]}))

    def ready():
        eps = json.loads(vc.kubectl("get", "endpoints", "hooks", "-n", "webhooks", "-o", "json", check=False).stdout or "{}")
        assert any(s.get("addresses") for s in eps.get("subsets") or ()), eps
    eventually(ready, timeout=120, delay=0.5)
    service = {"service": {"namespace": "webhooks", "name": "hooks", "path": "/validate"}, "caBundle": server.ca_bundle}
    configure(vc, VWC, "by-service", hook("service.example.com", service))
    try:
        out = vc.kubectl("create", "configmap", "bad-via-service", check=False)
        assert 'admission webhook "service.example.com" denied the request' in out.stderr, out.stderr
        configure(vc, VWC, "by-service", hook("service.example.com", {
            "service": {"namespace": "webhooks", "name": "missing", "path": "/validate"}}))
        out = vc.kubectl("create", "configmap", "no-service", check=False)
        assert ('failed calling webhook "service.example.com": failed to call webhook: Post '
                '"https://missing.webhooks.svc:443/validate?timeout=10s": service "missing" not found') in out.stderr
        absent(vc, "no-service")
    finally:
        remove(vc, VWCS, "by-service")


def test_bad_webhooks_give_kubernetes_errors_and_leave_the_store_unchanged(vc: User, server: WebhookServer):
    cases = {
        "/slow": 'failed to call webhook: Post "{url}/slow?timeout=1s": context deadline exceeded',
        "/garbage": "failed to call webhook: couldn't get version/kind; json parse error: invalid character 't' "
                    "looking for beginning of value",
        "/typepatch": "Internal error occurred: data: ",
        "/badpatch": 'is invalid: metadata.labels: Invalid value: "bad key!"',
        "/wronguid": 'failed calling webhook "bad.example.com": received invalid webhook response: expected '
                     'response.uid="',
        "/nopatchtype": "received invalid webhook response: webhook returned response.patch but not "
                        "response.patchType",
        "/undecodable": "received undecodable patch in webhook response",
        "/denyquietly": 'admission webhook "bad.example.com" denied the request without explanation',
    }
    try:
        for path, expected in cases.items():
            name = "cm" + path.replace("/", "-")
            configure(vc, MWC, "bad", hook("bad.example.com", url(server, path), timeoutSeconds=1))
            out = vc.kubectl("create", "configmap", name, check=False)
            assert out.returncode == 1 and expected.format(url=server.url) in out.stderr, (path, out.stderr)
            absent(vc, name)
        remove(vc, MWCS, "bad")
        # a certificate its caBundle does not sign
        other = WebhookServer()
        configure(vc, VWC, "wrong-ca", hook("wrong-ca.example.com", url(server, "/validate", ca=other.ca_bundle)))
        out = vc.kubectl("create", "configmap", "wrong-ca", check=False)
        assert ('failed calling webhook "wrong-ca.example.com": failed to call webhook: Post '
                f'"{server.url}/validate?timeout=10s": tls: failed to verify certificate: x509: certificate '
                "signed by unknown authority") in out.stderr, out.stderr
        absent(vc, "wrong-ca")
        configure(vc, VWC, "wrong-ca", hook("wrong-ca.example.com", url(server, "/validate", ca="bm90IGEgUEVN")))
        out = vc.kubectl("create", "configmap", "not-pem", check=False)
        assert ('failed calling webhook "wrong-ca.example.com": could not get REST client: unable to load root '
                "certificates") in out.stderr, out.stderr
        absent(vc, "not-pem")
    finally:
        remove(vc, MWCS, "bad")
        remove(vc, VWCS, "wrong-ca")


def test_bad_configurations_are_refused_by_field(vc: User, server: WebhookServer):
    bad = hook("short", {"url": "http://127.0.0.1:1/x"}, timeoutSeconds=31, sideEffects="Some",
               matchConditions=[{"name": "c", "expression": "object.metadata.name =="}])
    out = vc.kubectl("apply", "-f", "-", check=False, input=json.dumps({
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": VWC, "metadata": {"name": "bad"}, "webhooks": [bad]}))
    assert out.returncode == 1
    for text in ('webhooks[0].name: Invalid value: "short": should be a domain with at least three segments separated by dots',
                 "webhooks[0].sideEffects: Unsupported value: \"Some\": supported values: \"None\", \"NoneOnDryRun\"",
                 "webhooks[0].timeoutSeconds: Invalid value: 31: the timeout value must be between 1 and 30 seconds",
                 "webhooks[0].clientConfig.url: Invalid value: \"http://127.0.0.1:1/x\": 'https' is the only allowed URL scheme",
                 'webhooks[0].matchConditions[0].expression: Invalid value: "object.metadata.name ==": compilation failed'):
        assert text in out.stderr, (text, out.stderr)
    assert vc.kubectl("get", VWCS, "bad", check=False).returncode == 1
    # kubectl lists them with upstream's columns
    configure(vc, VWC, "listed", hook("listed.example.com", url(server, "/validate"), rules=[]))
    try:
        table = vc.kubectl("get", VWCS, "listed").stdout.split()
        assert table[:3] == ["NAME", "WEBHOOKS", "AGE"] and table[3:5] == ["listed", "1"]
        stored = json.loads(vc.kubectl("get", VWCS, "listed", "-o", "json").stdout)["webhooks"][0]
        assert (stored["failurePolicy"], stored["matchPolicy"], stored["timeoutSeconds"]) == ("Fail", "Equivalent", 10)
    finally:
        remove(vc, VWCS, "listed")


def test_connect_operations_reach_webhooks(vc: User, server: WebhookServer):
    """``kubectl exec`` is a CONNECT of pods/exec whose object is the PodExecOptions."""
    vc.kubectl("run", "shell", "--image=busybox", "--restart=Never", "--", "sleep", "3600")

    def running():
        assert vc.kubectl("get", "pod", "shell", "-o", "jsonpath={.status.phase}").stdout == "Running"
    eventually(running, timeout=120, delay=0.5)
    assert vc.kubectl("exec", "shell", "--", "echo", "hi").stdout.strip() == "hi"
    connect = hook("exec.example.com", url(server, "/validate"), resources=("pods/exec",), operations=("CONNECT",))
    configure(vc, VWC, "no-exec", connect)
    try:
        vc.kubectl("exec", "shell", "--", "echo", "allowed")  # /validate allows (the name is "shell")
        review = [d for p, d in server.requests if d["request"].get("operation") == "CONNECT"][-1]["request"]
        assert review["kind"] == {"group": "", "version": "v1", "kind": "PodExecOptions"}
        assert review["resource"] == {"group": "", "version": "v1", "resource": "pods"}
        assert review["subResource"] == "exec" and review["name"] == "shell"
        assert review["object"]["command"] == ["echo", "allowed"] and review["object"]["container"] == "shell"
        configure(vc, VWC, "no-exec", hook("exec.example.com", url(server, "/denyquietly"),
                                             resources=("pods/exec",), operations=("CONNECT",)))
        out = vc.kubectl("exec", "shell", "--", "echo", "refused", check=False)
        assert out.returncode == 1
        assert 'admission webhook "exec.example.com" denied the request without explanation' in out.stderr, out.stderr
    finally:
        remove(vc, VWCS, "no-exec")


def test_match_policy_equivalent_sends_the_registered_version(vc: User, server: WebhookServer):
    version = {"served": True, "schema": {"openAPIV3Schema": {"type": "object",
                                                              "x-kubernetes-preserve-unknown-fields": True}}}
    vc.kubectl("apply", "-f", "-", input=json.dumps({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "gizmos.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced",
                 "names": {"plural": "gizmos", "singular": "gizmo", "kind": "Gizmo"},
                 "versions": [{"name": "v1", "storage": True, **version}, {"name": "v2", "storage": False, **version}]}}))
    eventually(lambda: vc.kubectl("get", "gizmos.v2.example.com"), timeout=60, delay=0.5)
    rule = {"operations": ["CREATE"], "apiGroups": ["example.com"], "apiVersions": ["v1"], "resources": ["gizmos"]}
    configure(vc, VWC, "gizmos", hook("gizmos.example.com", url(server, "/validate"), rules=[rule]))
    try:
        vc.kubectl("apply", "-f", "-", input=json.dumps(
            {"apiVersion": "example.com/v2", "kind": "Gizmo", "metadata": {"name": "g1"}, "spec": {"a": 1}}))
        req = [d for p, d in server.requests if d["request"].get("name") == "g1"][-1]["request"]
        assert req["kind"] == {"group": "example.com", "version": "v1", "kind": "Gizmo"}
        assert req["requestKind"] == {"group": "example.com", "version": "v2", "kind": "Gizmo"}
        assert req["resource"]["version"] == "v1" and req["object"]["apiVersion"] == "example.com/v1"
        configure(vc, VWC, "gizmos", hook("gizmos.example.com", url(server, "/validate"), rules=[rule],
                                          matchPolicy="Exact"))
        vc.kubectl("apply", "-f", "-", input=json.dumps(
            {"apiVersion": "example.com/v2", "kind": "Gizmo", "metadata": {"name": "g2"}, "spec": {"a": 1}}))
        assert not [d for p, d in server.requests if d["request"].get("name") == "g2"]
    finally:
        remove(vc, VWCS, "gizmos")


def test_if_needed_policy_runs_again_after_a_webhook_changed_the_object(vc: User, server: WebhookServer):
    policy = {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingAdmissionPolicy",
              "metadata": {"name": "seen"},
              "spec": {"reinvocationPolicy": "IfNeeded",
                       "matchConstraints": {"resourceRules": [{"apiGroups": [""], "apiVersions": ["v1"],
                                                               "operations": ["CREATE"], "resources": ["configmaps"]}]},
                       "mutations": [{"patchType": "ApplyConfiguration", "applyConfiguration": {"expression": (
                           'Object{metadata: Object.metadata{labels: {"seen-webhook": '
                           'has(object.metadata.labels) && "webhook" in object.metadata.labels ? "yes" : "no"}}}')}}]}}
    binding = {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingAdmissionPolicyBinding",
               "metadata": {"name": "seen"}, "spec": {"policyName": "seen"}}
    vc.kubectl("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": [policy, binding]}))
    configure(vc, MWC, "labels", hook("labels.example.com", url(server, "/mutate")))
    try:
        vc.kubectl("create", "configmap", "seen")
        labels = json.loads(vc.kubectl("get", "configmap", "seen", "-o", "jsonpath={.metadata.labels}").stdout)
        assert labels == {"webhook": "mutated", "seen-webhook": "yes"}
        policy["spec"]["reinvocationPolicy"] = "Never"
        vc.kubectl("apply", "-f", "-", input=json.dumps(policy))
        vc.kubectl("create", "configmap", "unseen")
        labels = json.loads(vc.kubectl("get", "configmap", "unseen", "-o", "jsonpath={.metadata.labels}").stdout)
        assert labels == {"webhook": "mutated", "seen-webhook": "no"}
    finally:
        remove(vc, MWCS, "labels")
        vc.kubectl("delete", "mutatingadmissionpolicybindings", "seen", "--ignore-not-found")
        vc.kubectl("delete", "mutatingadmissionpolicies", "seen", "--ignore-not-found")


def _apps_rule(resource: str) -> list[dict[str, object]]:
    return [{"operations": ["UPDATE"], "apiGroups": ["apps"], "apiVersions": ["v1"], "resources": [resource]}]


def test_scale_subresource_admits_an_autoscaling_v1_scale(vc: User, server: WebhookServer):
    """``kubectl scale``: a webhook on ``deployments/scale`` gets a Scale (autoscaling/v1,
    subResource scale), its patch of spec.replicas is applied, a webhook on ``deployments`` is
    not called, and a ValidatingAdmissionPolicy on ``deployments/scale`` judges the mutated Scale."""
    vc.kubectl("create", "deployment", "scaled", "--image=nginx", "--replicas=1")
    policy = {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
              "metadata": {"name": "few-replicas"},
              "spec": {"matchConstraints": {"resourceRules": _apps_rule("deployments/scale")},
                       "validations": [{"expression": "object.spec.replicas <= 5", "messageExpression":
                                        "'at most 5 replicas, asked ' + string(object.spec.replicas)"}]}}
    binding = {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicyBinding",
               "metadata": {"name": "few-replicas"},
               "spec": {"policyName": "few-replicas", "validationActions": ["Deny"]}}
    vc.kubectl("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": [policy, binding]}))
    configure(vc, MWC, "scale", {**hook("scale.example.com", url(server, "/scale-plus-one")),
                                 "rules": _apps_rule("deployments/scale")})
    configure(vc, VWC, "whole", {**hook("whole.example.com", url(server, "/validate")),
                                 "rules": _apps_rule("deployments")})

    def replicas() -> str:
        return vc.kubectl("get", "deployment", "scaled", "-o", "jsonpath={.spec.replicas}").stdout.strip()

    try:
        start = len(server.requests)
        vc.kubectl("scale", "deployment", "scaled", "--replicas=3")
        assert replicas() == "4"
        seen = server.requests[start:]
        review = next(d["request"] for p, d in seen if p == "/scale-plus-one")
        assert review["kind"] == review["requestKind"] == {"group": "autoscaling", "version": "v1", "kind": "Scale"}
        assert review["resource"] == {"group": "apps", "version": "v1", "resource": "deployments"}
        assert review["subResource"] == review["requestSubResource"] == "scale"
        assert (review["object"]["apiVersion"], review["object"]["kind"]) == ("autoscaling/v1", "Scale")
        assert review["object"]["spec"] == {"replicas": 3} and review["oldObject"]["spec"] == {"replicas": 1}
        assert review["object"]["metadata"]["name"] == "scaled"
        assert not [d for p, d in seen if p == "/validate" and d["request"].get("subResource")]
        out = vc.kubectl("scale", "deployment", "scaled", "--replicas=5", check=False)
        assert out.returncode == 1
        assert ("ValidatingAdmissionPolicy 'few-replicas' with binding 'few-replicas' denied request: "
                "at most 5 replicas, asked 6") in out.stderr
        assert replicas() == "4"
    finally:
        remove(vc, MWCS, "scale")
        remove(vc, VWCS, "whole")
        vc.kubectl("delete", "validatingadmissionpolicybindings", "few-replicas", "--ignore-not-found")
        vc.kubectl("delete", "validatingadmissionpolicies", "few-replicas", "--ignore-not-found")
        vc.kubectl("delete", "deployment", "scaled", "--ignore-not-found")


_RESTRICTED_POD = {
    "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "tidy"},
    "spec": {"securityContext": {"runAsNonRoot": True, "runAsUser": 1000, "seccompProfile": {"type": "RuntimeDefault"}},
             "containers": [{"name": "app", "image": "nginx", "securityContext": {
                 "allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}}]}}


def test_in_tree_plugins_see_what_webhooks_made(vc: User, server: WebhookServer):
    """The chain as kube-apiserver's: PodSecurity validates the pod a mutating webhook made
    privileged, and a container a webhook added gets the in-tree plugins' second round
    (LimitRanger's defaults, the service-account token mount)."""
    vc.kubectl("create", "namespace", "chain")
    vc.kubectl("label", "namespace", "chain", "pod-security.kubernetes.io/enforce=restricted")
    vc.kubectl("create", "namespace", "sidecars")
    vc.kubectl("apply", "-n", "sidecars", "-f", "-", input=json.dumps({
        "apiVersion": "v1", "kind": "LimitRange", "metadata": {"name": "defaults"},
        "spec": {"limits": [{"type": "Container", "default": {"cpu": "300m"}, "defaultRequest": {"cpu": "100m"}}]}}))

    def pod_hook(name: str, path: str, namespace: str) -> dict[str, object]:
        return hook(name, url(server, path), resources=("pods",), namespaceSelector={
            "matchLabels": {"kubernetes.io/metadata.name": namespace}})

    configure(vc, MWC, "chain", pod_hook("privileged.example.com", "/privileged", "chain"),
              pod_hook("sidecar.example.com", "/add-container", "sidecars"))
    try:
        out = vc.kubectl("apply", "-n", "chain", "-f", "-", input=json.dumps(_RESTRICTED_POD), check=False)
        assert out.returncode == 1
        assert ('pods "tidy" is forbidden: violates PodSecurity "restricted:latest": privileged '
                '(container "app" must not set securityContext.privileged=true)') in out.stderr
        assert vc.kubectl("get", "pods", "-n", "chain", "-o", "name").stdout.strip() == ""
        vc.kubectl("run", "helped", "-n", "sidecars", "--image=nginx")
        pod = json.loads(vc.kubectl("get", "pod", "helped", "-n", "sidecars", "-o", "json").stdout)
        sidecar = next(c for c in pod["spec"]["containers"] if c["name"] == "sidecar")
        assert sidecar["resources"] == {"limits": {"cpu": "300m"}, "requests": {"cpu": "100m"}}
        assert any(m["mountPath"] == "/var/run/secrets/kubernetes.io/serviceaccount"
                   for m in sidecar.get("volumeMounts") or ())
    finally:
        remove(vc, MWCS, "chain")
        vc.kubectl("delete", "namespace", "chain", "sidecars", "--wait=false")
