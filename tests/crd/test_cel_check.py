"""The CEL type checker and cost estimator for CRD rules: the estimated costs of
apiextensions-apiserver's TestCostEstimation (schema/cel/compilation_test.go) for the same
schemas and rules, with and without max* bounds; the checker's errors as cel-go words them;
and the runtime limits (per call, per object)."""

from __future__ import annotations

from typing import Any

import pytest

from vkube.api.cel import compile_rules
from vkube.api.errors import cause_text

_FORMATS = {"number": ("number", None), "string": ("string", None), "boolean": ("boolean", None),
            "duration": ("string", "duration"), "date-time": ("string", "date-time")}


def _leaf(kind: str) -> dict[str, Any]:
    if kind == "int-or-string":
        return {"x-kubernetes-int-or-string": True}
    t, fmt = _FORMATS[kind]
    return {"type": t, **({"format": fmt} if fmt else {})}


def array(kind: str, rule: str, n: int | None) -> dict[str, Any]:
    return {"type": "array", "items": _leaf(kind), "x-kubernetes-validations": [{"rule": rule}],
            **({"maxItems": n} if n is not None else {})}


def array_of_arrays(kind: str, rule: str, n: int | None) -> dict[str, Any]:
    return {"type": "array", "items": {"type": "array", "items": _leaf(kind)},
            "x-kubernetes-validations": [{"rule": rule}], **({"maxItems": n} if n is not None else {})}


def object_array(rule: str, n: int | None) -> dict[str, Any]:
    return {"type": "array", "x-kubernetes-validations": [{"rule": rule}],
            "items": {"type": "object", "required": ["required"],
                      "properties": {"required": {"type": "string"}, "optional": {"type": "string"}}},
            **({"maxItems": n} if n is not None else {})}


def map_of(kind: str, rule: str, n: int | None) -> dict[str, Any]:
    return {"type": "object", "additionalProperties": _leaf(kind), "x-kubernetes-validations": [{"rule": rule}],
            **({"maxProperties": n} if n is not None else {})}


def map_array(kind: str, rule: str, n: int | None) -> dict[str, Any]:
    return {"type": "array", "items": {"type": "object", "additionalProperties": _leaf(kind)},
            "x-kubernetes-validations": [{"rule": rule}], **({"maxItems": n} if n is not None else {})}


def string(rule: str, n: int | None) -> dict[str, Any]:
    return {"type": "string", "x-kubernetes-validations": [{"rule": rule}], **({"maxLength": n} if n is not None else {})}


def nested_map(rule: str, n: int | None) -> dict[str, Any]:
    bound = {"maxLength": n} if n is not None else {}
    return {"type": "object", "additionalProperties": {"type": "string", **bound},
            "x-kubernetes-validations": [{"rule": rule}], **({"maxProperties": n} if n is not None else {})}


def cost(schema: dict[str, Any]) -> int:
    rules, _ = compile_rules(schema, "")
    assert rules.root is not None and rules.root.rules, "the rule did not compile"
    return rules.root.rules[0].cost


#: (schema builder, unbounded cost, max* set to, cost with that bound) — upstream's figures
COSTS = [
    (lambda n: array("number", "self.all(x, true)", n), 4718591, 10, 32),
    (lambda n: array("string", "self.all(x, true)", n), 3145727, 20, 62),
    (lambda n: array("boolean", "self.all(x, true)", n), 1887437, 5, 17),
    (lambda n: array_of_arrays("number", "self.all(x, true)", n), 3145727, 100, 302),
    (lambda n: object_array("self.all(x, true)", n), 555128, 50, 152),
    (lambda n: map_of("number", "self.all(x, true)", n), 1348169, 10, 32),
    (lambda n: map_of("number", "has(self.x)", n), 0, 100, 0),
    (lambda n: map_of("string", "self.all(x, true)", n), 1179647, 3, 11),
    (lambda n: map_of("boolean", "self.all(x, true)", n), 943718, 100, 302),
    (lambda n: string("self.contains('test')", n), 314574, 10, 5),
    (lambda n: string("self.startsWith('test')", n), 2, 15, 2),
    (lambda n: string('size(self + "hello") > size("hello")', n), 314578, 4, 7),
    (lambda n: array("number", "self[1] == 0.0", n), 2, 5000, 2),
    (lambda n: array("string", "self[1] == self[1]", n), 314577, 8, 314577),
    (lambda n: array("number", "self.all(x, self.all(y, true))", n), None, 10, 352),
    (lambda n: array("number", "self.all(x, self.all(y, self.all(z, true)))", n), None, 10, 3552),
    (lambda n: string('self.matches("x")', n), 314574, 50, 22),
    (lambda n: string('"".matches("(((((((((())))))))))[0-9]")', n), 7, 10, 7),
    (lambda n: string('self.matches("")', n), 1, 100, 1),
    (lambda n: nested_map("self.all(x, x.contains(self[x]))", n), 2752507, 10, 72),
    (lambda n: array("number", "self[3] == 0.0", n), 2, 0, 2),
    (lambda n: string('self == "x"', n), 2, 0, 1),
    (lambda n: array("number", "self.all(x, x == 0.0)", n), 6291454, 3 * 1024 * 2048, 25165826),
    (lambda n: array("int-or-string", "self.all(x, true)", n), 4718591, 10, 32),
    (lambda n: array("int-or-string", "self[0] == 5", n), 3, 10, 3),
    (lambda n: array("boolean", "self[0] == false", n), 2, 25, 2),
    (lambda n: object_array("self[0] == null", n), 2, 422, 2),
    (lambda n: array_of_arrays("number", "self[0][0] == -1.0", n), 3, 51, 3),
    (lambda n: map_array("number", "self.all(x, x.y == 25.2)", n), 6291452, 12, 74),
    (lambda n: map_array("number", "self[0].x > 2.0", n), 4, 3000, 4),
    (lambda n: array("duration", "self.all(x, true)", n), 2359295, 5, 17),
]


@pytest.mark.parametrize("build, unbounded, bound, bounded", COSTS)
def test_estimated_costs_match_kubernetes(build, unbounded, bound, bounded) -> None:
    if unbounded is None:  # over the per-rule budget: the CRD is refused
        _, causes = compile_rules(build(None), "")
        assert "estimated rule cost exceeds budget" in causes[0]["message"]
    else:
        assert cost(build(None)) == unbounded
    assert cost(build(bound)) == bounded


def _causes(rule: str, **props: Any) -> list[str]:
    schema = {"type": "object", "x-kubernetes-validations": [{"rule": rule}],
              "properties": props or {"name": {"type": "string"}, "replicas": {"type": "integer"}}}
    return [cause_text(c) for c in compile_rules(schema, "spec.validation.openAPIV3Schema")[1]]


def test_type_errors_are_worded_and_placed_as_cel_go_does() -> None:
    rule = "spec.validation.openAPIV3Schema.x-kubernetes-validations[0].rule"
    assert _causes("self.nope == 1") == [
        f"{rule}: Invalid value: \"self.nope == 1\": compilation failed: ERROR: <input>:1:5: undefined field 'nope'"
        "\n | self.nope == 1\n | ....^"]
    assert "ERROR: <input>:1:9: undefined field 'nope'" in _causes("has(self.nope)")[0]
    assert "ERROR: <input>:1:6: undeclared reference to 'other' (in container '')" in _causes("self.other.size() > 0 && other")[0] \
        or "undeclared reference to 'other'" in _causes("other > 1")[0]
    assert "found no matching overload for '_+_' applied to '(int, string)'" in _causes("self.replicas + self.name > 0")[0]
    assert "found no matching overload for '_==_' applied to '(string, int)'" in _causes("self.name == 1")[0]
    assert "found no matching overload for 'startsWith' applied to 'int.(string)'" in \
        _causes("self.replicas.startsWith('a')")[0]
    assert "undeclared reference to 'shout'" in _causes("self.name.shout() == 'A'")[0]
    assert _causes("self.replicas")[0].endswith("cel expression must evaluate to a bool")


def test_schema_decides_what_a_rule_may_name() -> None:
    # the root of a resource always has apiVersion, kind, metadata.name and metadata.generateName
    assert _causes("self.metadata.name.startsWith('a') && self.kind == 'X' && self.apiVersion != ''") == []
    assert "undefined field 'labels'" in _causes("size(self.metadata.labels) > 0")[0]
    # int-or-string is dyn: anything type-checks, the value decides at runtime
    assert _causes("self.port == 80 || self.port == 'http'", port={"x-kubernetes-int-or-string": True}) == []
    # maps allow any key; objects only their properties, even with preserve-unknown-fields
    assert _causes("self.labels.anything == 'x'", labels={"type": "object", "additionalProperties": {"type": "string"}}) == []
    free = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    assert "undefined field 'anything'" in _causes("self.free.anything == 'x'", free=free)[0]
    # formatted strings are timestamps and durations
    assert _causes("self.at < timestamp('2030-01-01T00:00:00Z') && self.every > duration('1s')",
                   at={"type": "string", "format": "date-time"}, every={"type": "string", "format": "duration"}) == []
    assert "found no matching overload" in _causes("self.at.startsWith('2')", at={"type": "string", "format": "date-time"})[0]


def test_rule_cost_counts_how_often_the_rule_runs() -> None:
    # a cheap rule on the items of an unbounded list of unbounded lists runs ~10^12 times
    inner = {"type": "array", "items": {"type": "string", "x-kubernetes-validations": [{"rule": "self.size() < 3"}]}}
    schema = {"type": "object", "properties": {"grid": {"type": "array", "items": inner}}}
    causes = compile_rules(schema, "s")[1]
    assert "estimated rule cost exceeds budget by factor of more than 100x" in causes[0]["message"]
    inner["maxItems"] = 10
    schema["properties"]["grid"]["maxItems"] = 10
    assert compile_rules(schema, "s")[1] == []


def test_total_cost_of_a_schema_is_bounded() -> None:
    # each rule fits its own budget; forty of them together exceed the schema's
    rule = {"rule": "self.all(x, x.size() < 10)"}
    props = {f"f{i}": {"type": "array", "maxItems": 1_000_000, "items": {"type": "string", "maxLength": 8},
                       "x-kubernetes-validations": [rule]} for i in range(40)}
    causes = compile_rules({"type": "object", "properties": props}, "spec.validation.openAPIV3Schema")[1]
    texts = [cause_text(c) for c in causes]
    assert texts[-1].startswith("spec.validation.openAPIV3Schema: Forbidden: x-kubernetes-validations estimated rule "
                                "cost total for entire OpenAPIv3 schema exceeds budget by factor of")
    assert sum("contributed to estimated rule cost total" in t for t in texts) == 4


def test_runtime_cost_limits() -> None:
    # the per-rule budget (10M) is above the per-call limit (1M): a rule estimated between them
    # compiles, and is stopped when the value at hand makes one evaluation too dear
    schema = {"type": "object", "properties": {"items": {
        "type": "array", "maxItems": 1000, "items": {"type": "integer"},
        "x-kubernetes-validations": [{"rule": "self.all(x, self.all(y, x <= y || x > y))",
                                      "message": "pairs are ordered"}]}}}
    rules, causes = compile_rules(schema, "")
    assert causes == []
    assert rules.validate({"items": list(range(50))}) == []
    out = [cause_text(c) for c in rules.validate({"items": list(range(1000))})]
    assert out == ["items: Invalid value: \"array\": 'operation cancelled: actual cost limit exceeded': no further "
                   "validation rules will be run due to call cost exceeds limit for rule: pairs are ordered"]


def test_runtime_budget_of_one_object() -> None:
    # twelve regex rules over 100k-character strings: each call costs about 0.9M, all of them
    # together more than the 10M an object may spend
    pattern = "^[a-z]*" + "x?" * 176 + "$"
    rule = {"rule": f"self.matches('{pattern}')"}
    props = {f"f{i}": {"type": "string", "maxLength": 100_000, "x-kubernetes-validations": [rule]} for i in range(12)}
    rules, causes = compile_rules({"type": "object", "properties": props}, "")
    assert causes == []
    assert rules.validate({"f0": "a" * 100_000}) == []
    out = [cause_text(c) for c in rules.validate({f"f{i}": "a" * 100_000 for i in range(12)})]
    assert len(out) == 1 and out[0].endswith(
        "validation failed due to running out of cost budget, no further validation rules will be run")


def test_formatted_strings_reach_rules_as_timestamps_and_durations() -> None:
    schema = {"type": "object", "properties": {
        "start": {"type": "string", "format": "date-time"}, "end": {"type": "string", "format": "date-time"},
        "every": {"type": "string", "format": "duration"}},
        "x-kubernetes-validations": [{"rule": "self.end - self.start >= self.every", "message": "too short"}]}
    rules, causes = compile_rules(schema, "")
    assert causes == []
    ok = {"start": "2030-01-01T00:00:00Z", "end": "2030-01-01T01:00:00Z", "every": "30m"}
    assert rules.validate(ok) == []
    assert [cause_text(c) for c in rules.validate({**ok, "every": "2h"})] == ['Invalid value: "object": too short']


def test_optional_old_self_runs_on_create_with_no_old_value() -> None:
    schema = {"type": "object", "properties": {"tier": {
        "type": "string", "x-kubernetes-validations": [{
            "rule": "oldSelf.hasValue() ? self == oldSelf.value() || self == 'gold' : self != 'gold'",
            "message": "tier starts below gold and may only be raised to gold", "optionalOldSelf": True}]}}}
    rules, causes = compile_rules(schema, "")
    assert causes == []
    create = lambda obj: [cause_text(c) for c in rules.validate(obj)]  # noqa: E731
    update = lambda new, old: [cause_text(c) for c in rules.validate(new, old, transition_only=True)]  # noqa: E731
    assert create({"tier": "silver"}) == []
    assert create({"tier": "gold"}) == ['tier: Invalid value: "string": tier starts below gold and may only be '
                                        "raised to gold"]
    assert update({"tier": "gold"}, {"tier": "silver"}) == []
    assert update({"tier": "bronze"}, {"tier": "silver"}) != []
    # a plain transition rule does not run on create; optionalOldSelf without oldSelf is refused
    schema["properties"]["tier"]["x-kubernetes-validations"] = [{"rule": "self == 'x'", "optionalOldSelf": True}]
    causes = [cause_text(c) for c in compile_rules(schema, "s")[1]]
    assert causes == ["s.properties[tier].x-kubernetes-validations[0].optionalOldSelf: Invalid value: true: "
                      "may not be set if oldSelf is not used in rule"]


def test_random_rules_compile_or_are_refused_never_crash() -> None:
    import random

    rnd = random.Random(7)
    atoms = ["self", "self.name", "self.tags", "self.m", "1", "1.5", "'a'", "b'x'", "true", "null", "[1,2]",
             "{'a':1}", "self.tags.all(t, t == 'a')", "self.?name", "optional.of(1)", "quantity('1')",
             "ip('1.2.3.4')", "self.m['k']", "size(self.tags)", "self.name.split(',')", "-1", "0x1F", "1u",
             "dyn(self.n)", "type(self.n)", "has(self.name)", "self.tags[?0]", "url('/a')", "oldSelf"]
    ops = [" + ", " - ", " * ", " / ", " % ", " == ", " != ", " < ", " && ", " || ", " in ", "."]
    schema = {"type": "object", "properties": {
        "name": {"type": "string", "maxLength": 10}, "n": {"x-kubernetes-int-or-string": True},
        "tags": {"type": "array", "maxItems": 5, "items": {"type": "string", "maxLength": 5}},
        "m": {"type": "object", "additionalProperties": {"type": "integer"}}}}
    compiled = 0
    for _ in range(600):
        parts = [rnd.choice(atoms)]
        for _ in range(rnd.randint(0, 3)):
            parts += [rnd.choice(ops), rnd.choice(atoms)]
        text = "".join(parts)
        if rnd.random() < 0.3:
            at = rnd.randrange(len(text))
            text = text[:at] + rnd.choice("()[]{}.,?!:'\"") + text[at:]
        rules, causes = compile_rules({**schema, "x-kubernetes-validations": [{"rule": text}]}, "s")
        assert all(c["field"].startswith("s.") for c in causes), causes
        if rules.root is not None and rules.root.rules:
            compiled += 1
            rules.validate({"name": "abc", "n": 3, "tags": ["a", "bb"], "m": {"k": 1}})
            rules.validate({"name": "abc", "n": "x", "tags": [], "m": {}}, {"name": "abd", "n": 1, "tags": [], "m": {}},
                           transition_only=True)
    assert compiled > 20  # the generator does make valid rules too (most are refused: not bool)


def test_two_variable_comprehensions_over_the_schema() -> None:
    schema = {"type": "object", "properties": {
        "steps": {"type": "array", "maxItems": 10, "items": {"type": "integer"}},
        "limits": {"type": "object", "maxProperties": 10, "additionalProperties": {"type": "integer"}}},
        "x-kubernetes-validations": [
            {"rule": "self.steps.all(i, v, i == 0 || v > self.steps[i - 1])", "message": "steps must increase"},
            {"rule": "self.limits.all(name, limit, limit <= 10 || name.startsWith('big-'))",
             "messageExpression": "'limits over 10 need a big- name'"}]}
    rules, causes = compile_rules(schema, "")
    assert causes == []
    assert rules.validate({"steps": [1, 2, 5], "limits": {"a": 3, "big-b": 20}}) == []
    out = [cause_text(c) for c in rules.validate({"steps": [1, 1], "limits": {"b": 20}})]
    assert out == ['Invalid value: "object": steps must increase', 'Invalid value: "object": limits over 10 need a big- name']



def test_rules_see_the_fields_they_read_and_whole_values_where_they_need_them() -> None:
    # only the fields a rule (and its messageExpression) reads reach CEL; whole-object uses
    # (size, comparison with oldSelf) get everything
    schema = {"type": "object", "properties": {k: {"type": "string"} for k in ("a", "b", "c", "d")},
              "x-kubernetes-validations": [
                  {"rule": "has(self.a) || self.b == 'x'", "messageExpression": "'got ' + self.c"},
                  {"rule": "[self].all(o, o.d != 'w')", "message": "d may not be w"}]}
    rules, causes = compile_rules(schema, "")
    assert causes == []
    assert [r.self_fields for r in rules.root.rules] == [frozenset({"a", "b", "c"}), None]
    out = [cause_text(c) for c in rules.validate({"b": "y", "c": "z", "d": "w"})]
    assert out == ['Invalid value: "object": got z', 'Invalid value: "object": d may not be w']
    assert rules.validate({"a": "1", "d": "x"}) == []  # has(self.a) || …: the missing b does not matter
