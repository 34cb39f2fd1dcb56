"""CEL rules of CRD schemas with cel-python: compile errors, cost budget, evaluation, messages,
fieldPath, reason and transition rules."""

from __future__ import annotations

from vkube.api.cel import compile_rules
from vkube.api.errors import cause_text


def schema_with(*rules: dict, **props: dict) -> dict:
    return {"type": "object", "x-kubernetes-validations": list(rules),
            "properties": props or {"replicas": {"type": "integer"}, "max": {"type": "integer"},
                                    "name": {"type": "string"}}}


def test_rules_evaluate_with_message_field_path_and_reason() -> None:
    rules, causes = compile_rules(schema_with(
        {"rule": "self.replicas <= self.max", "message": "too many", "fieldPath": ".replicas"},
        {"rule": "self.name.startsWith('x')", "messageExpression": "'name ' + self.name + ' must start with x'",
         "reason": "FieldValueForbidden"},
        {"rule": "size(self.name) < 10"},
    ), "spec")
    assert causes == []
    out = rules.validate({"replicas": 5, "max": 3, "name": "abcdefghijk"}, path="spec")
    assert [cause_text(c) for c in out] == [
        'spec.replicas: Invalid value: "object": too many',
        "spec: Forbidden: name abcdefghijk must start with x",
        'spec: Invalid value: "object": failed rule: size(self.name) < 10',
    ]
    assert [c["reason"] for c in out] == ["FieldValueInvalid", "FieldValueForbidden", "FieldValueInvalid"]
    assert rules.validate({"replicas": 1, "max": 3, "name": "xy"}, path="spec") == []


def test_transition_rules_only_run_against_an_old_value() -> None:
    schema = {"type": "object", "properties": {
        "mode": {"type": "string", "x-kubernetes-validations": [
            {"rule": "self == oldSelf", "message": "mode is immutable"}]},
        "ports": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
                  "items": {"type": "object", "properties": {
                      "name": {"type": "string"},
                      "port": {"type": "integer", "x-kubernetes-validations": [
                          {"rule": "self >= oldSelf", "message": "ports only grow"}]}}}}}}
    rules, causes = compile_rules(schema, "")
    assert causes == []
    assert rules.validate({"mode": "a"}) == []  # create: no oldSelf
    assert rules.validate({"mode": "a"}, {"mode": "a"}, transition_only=True) == []
    out = rules.validate({"mode": "b"}, {"mode": "a"}, transition_only=True, path="spec")
    assert [cause_text(c) for c in out] == ['spec.mode: Invalid value: "string": mode is immutable']
    # list-type=map items correlate by key; a new item has no oldSelf
    old = {"ports": [{"name": "a", "port": 80}]}
    new = {"ports": [{"name": "b", "port": 1}, {"name": "a", "port": 79}]}
    out = rules.validate(new, old, transition_only=True, path="spec")
    assert [cause_text(c) for c in out] == ['spec.ports[1].port: Invalid value: "integer": ports only grow']


def test_compile_errors_and_undefined_fields_name_the_rule() -> None:
    _, causes = compile_rules(schema_with({"rule": "self.replicas <"}), "spec.versions[0].schema.openAPIV3Schema")
    assert len(causes) == 1
    assert causes[0]["field"] == "spec.versions[0].schema.openAPIV3Schema.x-kubernetes-validations[0].rule"
    assert "compilation failed: ERROR: <input>:1:15: Syntax error" in causes[0]["message"]
    _, causes = compile_rules(schema_with({"rule": "self.nope > 1"}), "s")
    assert "undefined field 'nope'" in causes[0]["message"]
    _, causes = compile_rules(schema_with({"rule": "true", "reason": "Bogus"}), "s")
    assert causes[0]["field"] == "s.x-kubernetes-validations[0].reason"
    assert cause_text(causes[0]).startswith('s.x-kubernetes-validations[0].reason: Unsupported value: "Bogus"')


def test_cost_budget_refuses_unbounded_nested_loops_and_accepts_bounded_ones() -> None:
    unbounded = {"type": "array", "items": {"type": "string"}}
    rule = {"rule": "self.tags.all(x, self.tags.all(y, x.matches(y)))"}
    _, causes = compile_rules(schema_with(rule, tags=unbounded), "s")
    # the rule is over its own budget, and alone over the budget of the whole schema too
    assert [c["field"] for c in causes] == ["s.x-kubernetes-validations[0].rule"] * 2 + ["s"]
    assert "estimated rule cost exceeds budget by factor of more than 100x" in causes[0]["message"]
    assert "contributed to estimated rule cost total exceeding cost limit" in causes[1]["message"]
    assert "estimated rule cost total for entire OpenAPIv3 schema exceeds budget" in causes[2]["message"]
    assert {c["reason"] for c in causes} == {"FieldValueForbidden"}
    bounded = {"type": "array", "maxItems": 10, "items": {"type": "string", "maxLength": 20}}
    _, causes = compile_rules(schema_with(rule, tags=bounded), "s")
    assert causes == []


def test_runtime_errors_are_reported_not_raised() -> None:
    rules, causes = compile_rules(schema_with({"rule": "self.replicas > 0"}), "")
    assert causes == []
    out = rules.validate({"name": "x"}, path="spec")
    assert len(out) == 1 and "no such key: replicas" in out[0]["message"]


def test_macros_and_kubernetes_string_functions() -> None:
    schema = {"type": "object", "properties": {
        "name": {"type": "string", "maxLength": 16},  # split+join of an unbounded string is over budget
        "tags": {"type": "array", "maxItems": 5, "items": {"type": "string", "maxLength": 5}}},
        "x-kubernetes-validations": [
            {"rule": "self.name.lowerAscii() == 'abc'"},
            {"rule": "self.tags.all(t, t.startsWith('a'))"},
            {"rule": "self.tags.exists_one(t, t == 'ab')"},
            {"rule": "self.tags.map(t, size(t)).filter(n, n > 1).size() >= 1"},
            {"rule": "self.name.split('B').join('-') == 'A-C'"},
        ]}
    rules, causes = compile_rules(schema, "")
    assert causes == []
    assert rules.validate({"name": "ABC", "tags": ["ab", "ac"]}) == []
    failed = [c["message"].split("failed rule: ")[1] for c in rules.validate({"name": "xyz", "tags": ["b"]})]
    assert failed == [r["rule"] for r in schema["x-kubernetes-validations"]]
