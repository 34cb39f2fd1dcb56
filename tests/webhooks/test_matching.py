"""Which webhooks and policies apply (``vkube.api.admission_match``), against the cases of
upstream's ``predicates/rules`` tests: operations, wildcards, subresources, scope; and the
selectors' nil/empty semantics."""

from __future__ import annotations

import pytest

from vkube.api.admission_match import (Attributes, any_rule_matches, object_selector_matches,
                                       policy_rule_matches, rule_matches, selector_matches)


def attrs(resource: str = "pods", subresource: str = "", *, op: str = "CREATE", group: str = "",
          version: str = "v1", namespace: str = "ns") -> Attributes:
    return Attributes(op, group, version, resource, subresource, namespace)


def rule(resources: list[str], *, ops: list[str] = ["*"], groups: list[str] = ["*"],  # noqa: B006
         versions: list[str] = ["*"], scope: str | None = None) -> dict:  # noqa: B006
    out = {"operations": ops, "apiGroups": groups, "apiVersions": versions, "resources": resources}
    if scope is not None:
        out["scope"] = scope
    return out


@pytest.mark.parametrize("resources,request_attrs,want", [
    (["*"], attrs("pods"), True),
    (["*"], attrs("pods", "status"), False),
    (["*/*"], attrs("pods", "status"), True),
    (["*/status"], attrs("pods", "status"), True),
    (["*/status"], attrs("pods"), False),
    (["pods/*"], attrs("pods", "exec"), True),
    (["pods/*"], attrs("pods"), True),  # upstream: sub "*" matches the empty subresource too
    (["*/*"], attrs("pods"), True),
    (["pods"], attrs("pods", "status"), False),
    (["pods/status"], attrs("pods", "status"), True),
    (["deployments"], attrs("pods"), False),
])
def test_resources_and_subresources(resources, request_attrs, want):
    assert rule_matches(rule(resources), request_attrs) is want


def test_operations_groups_versions():
    r = rule(["deployments"], ops=["CREATE", "UPDATE"], groups=["apps"], versions=["v1"])
    assert rule_matches(r, attrs("deployments", group="apps"))
    assert not rule_matches(r, attrs("deployments", group="apps", op="DELETE"))
    assert not rule_matches(r, attrs("deployments", group="extensions"))
    assert not rule_matches(r, attrs("deployments", group="apps", version="v1beta1"))
    assert rule_matches(r, attrs("deployments", group="apps").with_version("v1"))


def test_scope():
    assert rule_matches(rule(["*"], scope="Namespaced"), attrs("pods"))
    assert not rule_matches(rule(["*"], scope="Namespaced"), attrs("nodes", namespace=""))
    assert rule_matches(rule(["*"], scope="Cluster"), attrs("nodes", namespace=""))
    # a Namespace is cluster-scoped although its request carries its own name as namespace
    assert rule_matches(rule(["*"], scope="Cluster"), attrs("namespaces", namespace="ns"))
    assert not rule_matches(rule(["*"], scope="Namespaced"), attrs("namespaces", namespace="ns"))
    assert rule_matches(rule(["*"], scope="*"), attrs("namespaces", namespace="ns"))


def test_any_rule_and_resource_names():
    rules = [rule(["configmaps"]), rule(["secrets"])]
    assert any_rule_matches(rules, attrs("secrets"))
    assert not any_rule_matches([], attrs("secrets"))
    named = [dict(rule(["configmaps"]), resourceNames=["a"])]
    assert policy_rule_matches(named, attrs("configmaps"), "a")
    assert not policy_rule_matches(named, attrs("configmaps"), "b")


def test_selectors():
    assert selector_matches(None, {"a": "b"}) and selector_matches({}, {})
    sel = {"matchExpressions": [{"key": "env", "operator": "NotIn", "values": ["prod"]}]}
    assert selector_matches(sel, {}) and not selector_matches(sel, {"env": "prod"})
    only = {"matchLabels": {"team": "x"}}
    new, old = {"metadata": {"labels": {"team": "y"}}}, {"metadata": {"labels": {"team": "x"}}}
    assert object_selector_matches(only, new, old)  # the old object's labels count too
    assert not object_selector_matches(only, new, None)
    assert object_selector_matches({}, None, None)
