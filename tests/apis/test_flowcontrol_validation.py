"""FlowSchema and PriorityLevelConfiguration validation worded as upstream's
``pkg/apis/flowcontrol/validation`` (checked against its source); the built-in mandatory and
suggested objects all pass it."""

from __future__ import annotations

import pytest

from vkube.api.kinds_flowcontrol import GROUP, STRATEGIES, mandatory_objects, suggested_objects


def messages(obj: dict) -> list[str]:
    strategy = STRATEGIES[(GROUP, obj["kind"])]()
    strategy.default(obj)
    return [f"{c['field']}: {c['message']}" for c in strategy.validate(obj)]


def schema(name: str = "fs", **spec: object) -> dict:
    body = {"priorityLevelConfiguration": {"name": "global-default"}, "matchingPrecedence": 500,
            "rules": [{"subjects": [{"kind": "Group", "group": {"name": "g"}}],
                       "resourceRules": [{"verbs": ["get"], "apiGroups": [""], "resources": ["pods"],
                                          "namespaces": ["*"]}]}]}
    body.update(spec)
    return {"apiVersion": f"{GROUP}/v1", "kind": "FlowSchema", "metadata": {"name": name}, "spec": body}


def rule(**fields: object) -> list[dict]:
    return [{"subjects": [{"kind": "Group", "group": {"name": "g"}}], **fields}]


@pytest.mark.parametrize("obj, expected", [
    (schema(), []),
    (schema(matchingPrecedence=20000), ["spec.matchingPrecedence: Invalid value: 20000: must not be greater than 10000"]),
    (schema(matchingPrecedence=-1), ["spec.matchingPrecedence: Invalid value: -1: must be a positive value"]),
    (schema(matchingPrecedence=1), ["spec.matchingPrecedence: Invalid value: 1: only the schema named 'exempt' may "
                                    "have matchingPrecedence 1"]),
    (schema(rules=rule(resourceRules=[{"verbs": ["get", "*"], "apiGroups": ["*", "apps"], "resources": ["pods"],
                                       "clusterScope": True}])),
     ['spec.rules[0].resourceRules[0].verbs: Invalid value: ["get","*"]: if \'*\' is present, must not specify other verbs',
      'spec.rules[0].resourceRules[0].apiGroups: Invalid value: ["*","apps"]: if \'*\' is present, must not specify '
      "other api groups"]),
    (schema(rules=rule(resourceRules=[{"verbs": ["fly"], "apiGroups": [""], "resources": ["pods"],
                                       "namespaces": ["Bad_NS"]}])),
     ['spec.rules[0].resourceRules[0].verbs: Unsupported value: ["fly"]: supported values: "create", "delete", '
      '"deletecollection", "get", "list", "patch", "proxy", "update", "watch"',
      "spec.rules[0].resourceRules[0].namespaces[0]: Invalid value: \"Bad_NS\": each member of this list must be '*' "
      "or a DNS-1123 label; a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
      "and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for "
      "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"]),
    (schema(rules=rule(nonResourceURLs=[], nonResourceRules=[{"verbs": ["get"], "nonResourceURLs": ["healthz", "/a/*/b"]}])),
     ['spec.rules[0].nonResourceRules[0].nonResourceURLs[0]: Invalid value: "healthz": must start with slash',
      'spec.rules[0].nonResourceRules[0].nonResourceURLs[1]: Invalid value: "/a/*/b": wildcard can only do suffix '
      "matching"]),
    (schema(rules=[{"subjects": [{"kind": "User", "user": {"name": ""}, "group": {"name": "g"}}],
                    "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}]}]),
     ["spec.rules[0].subjects[0].user.name: Required value",
      "spec.rules[0].subjects[0].group: Forbidden: group is forbidden when subject kind is not 'Group'"]),
])
def test_flow_schema_messages(obj: dict, expected: list[str]):
    assert messages(obj) == expected


def test_priority_level_forbidden_fields():
    limited = {"apiVersion": f"{GROUP}/v1", "kind": "PriorityLevelConfiguration", "metadata": {"name": "pl"},
               "spec": {"type": "Limited", "exempt": {}, "limited": {"limitResponse": {"type": "Reject", "queuing": {}}}}}
    assert messages(limited) == ["spec.exempt: Forbidden: must be nil if the type is Limited",
                                 "spec.limited.limitResponse.queuing: Forbidden: must be nil if "
                                 "limited.limitResponse.type is not Limited"]


def test_built_in_objects_are_valid():
    for obj in mandatory_objects() + suggested_objects():
        assert messages(obj) == [], obj["metadata"]["name"]
