"""ValidatingAdmissionPolicy through ``vkube create`` and the real kubectl: the issue's
acceptance line (a CEL rule refuses a Deployment with more than 5 replicas), parameters from
ConfigMaps by name and by selector, parameterNotFoundAction, Warn and Audit actions,
messageExpression, matchConditions, and a policy whose CEL does not compile; and a
MutatingAdmissionPolicy with an apply configuration and a JSON patch."""

from __future__ import annotations

import json

from tests.cli.conftest import User, eventually
from tests.webhooks.conftest import GROUP

VAPS, BINDINGS = "validatingadmissionpolicies", "validatingadmissionpolicybindings"

REPLICAS = """
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {name: max-replicas}
spec:
  failurePolicy: Fail
  matchConstraints:
    resourceRules:
    - {apiGroups: [apps], apiVersions: [v1], operations: [CREATE, UPDATE], resources: [deployments]}
  validations:
  - expression: "object.spec.replicas <= 5"
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {name: max-replicas}
spec:
  policyName: max-replicas
  validationActions: [Deny]
"""


def apply(u: User, doc: str | dict, check: bool = True):
    return u.kubectl("apply", "-f", "-", input=doc if isinstance(doc, str) else json.dumps(doc), check=check)


def test_policy_refuses_a_deployment_with_more_than_five_replicas(vc: User):
    apply(vc, REPLICAS)
    try:
        out = vc.kubectl("create", "deployment", "big", "--image=nginx", "--replicas=7", check=False)
        assert out.returncode == 1
        assert ('deployments.apps "big" is forbidden: ValidatingAdmissionPolicy \'max-replicas\' with binding '
                "'max-replicas' denied request: failed expression: object.spec.replicas <= 5") in out.stderr
        assert vc.kubectl("get", "deployment", "big", check=False).returncode == 1
        vc.kubectl("create", "deployment", "small", "--image=nginx", "--replicas=5")
        out = vc.kubectl("patch", "deployment", "small", "--type=merge", "-p", '{"spec":{"replicas":6}}', check=False)
        assert ('The deployments "small" is invalid: : ValidatingAdmissionPolicy \'max-replicas\' with binding '
                "'max-replicas' denied request: failed expression: object.spec.replicas <= 5") in out.stderr
        assert vc.kubectl("get", "deployment", "small", "-o", "jsonpath={.spec.replicas}").stdout == "5"
        # the status: generation observed, expressions type-checked against Deployment
        def observed():
            status = json.loads(vc.kubectl("get", VAPS, "max-replicas", "-o", "json").stdout).get("status") or {}
            assert status.get("observedGeneration") == 1 and status.get("typeChecking") == {}, status
        eventually(observed, timeout=30, delay=0.3)
        table = vc.kubectl("get", VAPS).stdout.split()
        assert table[:4] == ["NAME", "VALIDATIONS", "PARAMKIND", "AGE"] and table[4:7] == ["max-replicas", "1", "<unset>"]
    finally:
        vc.kubectl("delete", BINDINGS, "max-replicas", "--ignore-not-found")
        vc.kubectl("delete", VAPS, "max-replicas", "--ignore-not-found")
    vc.kubectl("create", "deployment", "big", "--image=nginx", "--replicas=7")  # gone at once


PARAMS = """
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {name: limits}
spec:
  paramKind: {apiVersion: v1, kind: ConfigMap}
  matchConstraints:
    resourceRules:
    - {apiGroups: [""], apiVersions: [v1], operations: [CREATE], resources: [secrets]}
  matchConditions:
  - name: not-exempt
    expression: "!has(object.metadata.labels) || !('exempt' in object.metadata.labels)"
  variables:
  - name: keys
    expression: "has(object.data) ? size(object.data) : 0"
  validations:
  - expression: "variables.keys <= int(params.data.maxKeys)"
    messageExpression: "'at most ' + params.data.maxKeys + ' keys, got ' + string(variables.keys)"
    reason: Forbidden
  auditAnnotations:
  - key: keys
    valueExpression: "string(variables.keys)"
"""


def binding(name: str, actions: list[str], param_ref: dict) -> dict:
    return {"apiVersion": GROUP, "kind": "ValidatingAdmissionPolicyBinding", "metadata": {"name": name},
            "spec": {"policyName": "limits", "validationActions": actions, "paramRef": param_ref}}


def test_params_actions_and_match_conditions(vc: User):
    vc.kubectl("create", "namespace", "p")
    vc.kubectl("create", "configmap", "limits", "-n", "p", "--from-literal=maxKeys=1")
    apply(vc, PARAMS)
    try:
        apply(vc, binding("by-name", ["Deny"], {"name": "limits", "parameterNotFoundAction": "Deny"}))
        out = vc.kubectl("create", "secret", "generic", "two", "-n", "p", "--from-literal=a=1",
                         "--from-literal=b=2", check=False)
        assert ("secrets \"two\" is forbidden: ValidatingAdmissionPolicy 'limits' with binding 'by-name' denied "
                "request: at most 1 keys, got 2") in out.stderr, out.stderr
        assert "Error from server (Forbidden)" in out.stderr or "forbidden" in out.stderr
        vc.kubectl("create", "secret", "generic", "one", "-n", "p", "--from-literal=a=1")
        exempt = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "exempt", "namespace": "p",
                                                                      "labels": {"exempt": "y"}},
                  "stringData": {"a": "1", "b": "2"}}
        apply(vc, exempt)  # the match condition is false: not evaluated
        # no ConfigMap "limits" in namespace default: parameterNotFoundAction Deny
        out = vc.kubectl("create", "secret", "generic", "elsewhere", "--from-literal=a=1", check=False)
        assert ("ValidatingAdmissionPolicy 'limits' with binding 'by-name' denied request: failed to configure "
                "binding: no params found for policy binding with `Deny` parameterNotFoundAction") in out.stderr
        vc.kubectl("delete", BINDINGS, "by-name")
        # a selector picking the param, Warn instead of Deny
        vc.kubectl("label", "configmap", "limits", "-n", "p", "policy=limits")
        apply(vc, binding("warn", ["Warn", "Audit"], {"selector": {"matchLabels": {"policy": "limits"}},
                                                      "parameterNotFoundAction": "Allow"}))
        out = vc.kubectl("create", "secret", "generic", "warned", "-n", "p", "--from-literal=a=1", "--from-literal=b=2")
        assert ("Warning: Validation failed for ValidatingAdmissionPolicy 'limits' with binding 'warn': at most 1 "
                "keys, got 2") in out.stderr
        vc.kubectl("create", "secret", "generic", "allowed", "--from-literal=a=1")  # Allow: no param, no check
    finally:
        vc.kubectl("delete", BINDINGS, "by-name", "warn", "--ignore-not-found")
        vc.kubectl("delete", VAPS, "limits", "--ignore-not-found")


def test_type_checking_warns_about_fields_the_kind_cannot_have(vc: User):
    doc = {"apiVersion": GROUP, "kind": "ValidatingAdmissionPolicy", "metadata": {"name": "typo"},
           "spec": {"matchConstraints": {"resourceRules": [{"apiGroups": ["apps"], "apiVersions": ["v1"],
                                                           "operations": ["CREATE"], "resources": ["deployments"]}]},
                    "paramKind": {"apiVersion": "v1", "kind": "ConfigMap"},
                    "validations": [{"expression": "object.spec.replicas > 0"},
                                    {"expression": "object.spec.replicass > 1"},
                                    {"expression": "params == null || object.spec.replicas < params.spec.max"}]}}
    apply(vc, doc)
    try:
        def warned():
            status = json.loads(vc.kubectl("get", VAPS, "typo", "-o", "json").stdout).get("status") or {}
            assert status.get("observedGeneration") == 1, status
            return status["typeChecking"]["expressionWarnings"]
        warnings = eventually(warned, timeout=30, delay=0.3)
        assert warnings == [{"fieldRef": "spec.validations[1].expression", "warning":
                             "apps/v1, Kind=Deployment: ERROR: <input>:1:12: undefined field 'replicass'\n"
                             " | object.spec.replicass > 1\n | ...........^\n"},
                            {"fieldRef": "spec.validations[2].expression", "warning":
                             "apps/v1, Kind=Deployment: ERROR: <input>:1:48: undefined field 'spec'\n"
                             " | params == null || object.spec.replicas < params.spec.max\n"
                             " | " + "." * 47 + "^\n"}]
    finally:
        vc.kubectl("delete", VAPS, "typo", "--ignore-not-found")


def test_policy_whose_cel_does_not_compile_is_refused_and_not_stored(vc: User):
    bad = {"apiVersion": GROUP, "kind": "ValidatingAdmissionPolicy", "metadata": {"name": "broken"},
           "spec": {"matchConstraints": {"resourceRules": [{"apiGroups": ["apps"], "apiVersions": ["v1"],
                                                           "operations": ["CREATE"], "resources": ["deployments"]}]},
                    "validations": [{"expression": "object.spec.replicas <="},
                                    {"expression": "undefinedThing.size() > 1"}]}}
    out = apply(vc, bad, check=False)
    assert out.returncode == 1
    assert ('The ValidatingAdmissionPolicy "broken" is invalid: \n* spec.validations[0].expression: Invalid value: '
            '"object.spec.replicas <=": compilation failed: ERROR: <input>:1:') in out.stderr, out.stderr
    assert ("spec.validations[1].expression: Invalid value: \"undefinedThing.size() > 1\": compilation failed: "
            "ERROR: <input>:1:1: undeclared reference to 'undefinedThing'") in out.stderr
    assert vc.kubectl("get", VAPS, "broken", check=False).returncode == 1
    out = apply(vc, {"apiVersion": GROUP, "kind": "ValidatingAdmissionPolicyBinding", "metadata": {"name": "b"},
                     "spec": {"policyName": "x", "validationActions": ["Deny", "Warn"]}}, check=False)
    assert "spec.validationActions: Invalid value: " in out.stderr and "must not contain both Deny and Warn" in out.stderr
    out = apply(vc, {"apiVersion": GROUP, "kind": "MutatingAdmissionPolicy", "metadata": {"name": "m"}, "spec": {
        "matchConstraints": {"resourceRules": [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["DELETE"],
                                                "resources": ["pods"]}]},
        "mutations": [{"patchType": "JSONPatch", "jsonPatch": {"expression": "[JSONPatch{op: "}}]}}, check=False)
    assert ('spec.matchConstraints.resourceRules[0].operations[0]: Unsupported value: "DELETE": supported values: '
            '"*", "CREATE", "UPDATE"') in out.stderr, out.stderr
    assert 'spec.mutations[0].jsonPatch.expression: Invalid value: "[JSONPatch{op: ": compilation failed' in out.stderr


MUTATING = """
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingAdmissionPolicy
metadata: {name: defaults}
spec:
  matchConstraints:
    resourceRules:
    - {apiGroups: [apps], apiVersions: [v1], operations: [CREATE], resources: [deployments]}
  mutations:
  - patchType: ApplyConfiguration
    applyConfiguration:
      expression: >
        Object{metadata: Object.metadata{labels: {"policy": "applied"}},
               spec: Object.spec{template: Object.spec.template{spec: Object.spec.template.spec{
                 containers: [Object.spec.template.spec.containers{name: "nginx", imagePullPolicy: "Always"}]}}}}
  - patchType: JSONPatch
    jsonPatch:
      expression: >
        [JSONPatch{op: "replace", path: "/spec/replicas",
                   value: object.spec.replicas > 3 ? 3 : object.spec.replicas}]
---
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingAdmissionPolicyBinding
metadata: {name: defaults}
spec: {policyName: defaults}
"""


def test_mutating_admission_policy_applies_configuration_and_json_patch(vc: User):
    apply(vc, MUTATING)
    try:
        vc.kubectl("create", "deployment", "mutated", "--image=nginx", "--replicas=7")
        d = json.loads(vc.kubectl("get", "deployment", "mutated", "-o", "json").stdout)
        assert d["metadata"]["labels"]["policy"] == "applied" and d["metadata"]["labels"]["app"] == "mutated"
        assert d["spec"]["replicas"] == 3
        [container] = d["spec"]["template"]["spec"]["containers"]  # merged by name, not appended
        assert (container["name"], container["image"], container["imagePullPolicy"]) == ("nginx", "nginx", "Always")
        # a patch that cannot apply: the policy's failure, nothing stored
        apply(vc, {"apiVersion": GROUP, "kind": "MutatingAdmissionPolicy", "metadata": {"name": "defaults"}, "spec": {
            "matchConstraints": {"resourceRules": [{"apiGroups": ["apps"], "apiVersions": ["v1"],
                                                    "operations": ["CREATE"], "resources": ["deployments"]}]},
            "mutations": [{"patchType": "JSONPatch", "jsonPatch": {
                "expression": '[JSONPatch{op: "replace", path: "/spec/nothing/here", value: 1}]'}}]}})
        out = vc.kubectl("create", "deployment", "refused", "--image=nginx", check=False)
        assert ('deployments.apps "refused" is forbidden: policy \'defaults\' with binding \'defaults\' denied '
                "request: JSON Patch: ") in out.stderr, out.stderr
        assert vc.kubectl("get", "deployment", "refused", check=False).returncode == 1
    finally:
        vc.kubectl("delete", "mutatingadmissionpolicybindings", "defaults", "--ignore-not-found")
        vc.kubectl("delete", "mutatingadmissionpolicies", "defaults", "--ignore-not-found")


AUTHZ = """
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {name: need-secrets}
spec:
  matchConstraints:
    resourceRules:
    - {apiGroups: [""], apiVersions: [v1], operations: [CREATE], resources: [configmaps]}
  validations:
  - expression: >
      authorizer.group('').resource('secrets').namespace(object.metadata.namespace).check('list').allowed()
    message: only users who may list secrets may create ConfigMaps
  - expression: "authorizer.requestResource.check('create').allowed()"
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {name: need-secrets}
spec: {policyName: need-secrets, validationActions: [Deny]}
"""


def test_policy_asks_the_authorizer(vc: User):
    vc.kubectl("create", "namespace", "az")
    vc.kubectl("create", "role", "cm-only", "-n", "az", "--verb=create,get", "--resource=configmaps")
    vc.kubectl("create", "rolebinding", "bob", "-n", "az", "--role=cm-only", "--user=bob")
    apply(vc, AUTHZ)
    try:
        out = vc.kubectl("create", "configmap", "by-bob", "-n", "az", "--as=bob", check=False)
        assert ("configmaps \"by-bob\" is forbidden: ValidatingAdmissionPolicy 'need-secrets' with binding "
                "'need-secrets' denied request: only users who may list secrets may create ConfigMaps") in out.stderr, \
            out.stderr
        vc.kubectl("create", "rolebinding", "bob-view", "-n", "az", "--clusterrole=admin", "--user=bob")
        vc.kubectl("create", "configmap", "by-bob", "-n", "az", "--as=bob")
    finally:
        vc.kubectl("delete", BINDINGS, "need-secrets", "--ignore-not-found")
        vc.kubectl("delete", VAPS, "need-secrets", "--ignore-not-found")
