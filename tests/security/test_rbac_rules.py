"""PolicyRule matching, covering and compaction, with cases from upstream's evaluation and comparator tests."""

from __future__ import annotations

import pytest

from vkube.api.rbac.rules import breakdown, compact_rules, compact_string, compile_rule, covers


def r(verbs, groups=None, resources=None, names=None, urls=None):
    out = {"verbs": list(verbs)}
    if groups is not None:
        out["apiGroups"] = list(groups)
    if resources is not None:
        out["resources"] = list(resources)
    if names is not None:
        out["resourceNames"] = list(names)
    if urls is not None:
        out["nonResourceURLs"] = list(urls)
    return out


@pytest.mark.parametrize("rule, verb, group, resource, sub, name, allowed", [
    (r(["get"], [""], ["pods"]), "get", "", "pods", "", "", True),
    (r(["get"], [""], ["pods"]), "list", "", "pods", "", "", False),
    (r(["*"], [""], ["pods"]), "deletecollection", "", "pods", "", "", True),
    (r(["get"], ["*"], ["pods"]), "get", "metrics.k8s.io", "pods", "", "", True),
    (r(["get"], ["apps"], ["pods"]), "get", "", "pods", "", "", False),
    (r(["get"], [""], ["*"]), "get", "", "secrets", "", "", True),
    (r(["get"], [""], ["*"]), "get", "", "pods", "log", "", True),
    # a resource does not grant its subresources, and a subresource not its parent
    (r(["get"], [""], ["pods"]), "get", "", "pods", "log", "", False),
    (r(["get"], [""], ["pods/log"]), "get", "", "pods", "log", "", True),
    (r(["get"], [""], ["pods/log"]), "get", "", "pods", "", "", False),
    (r(["get"], ["*"], ["*/scale"]), "get", "apps", "deployments", "scale", "", True),
    (r(["get"], ["*"], ["*/scale"]), "get", "apps", "deployments", "status", "", False),
    (r(["get"], ["*"], ["*/scale"]), "get", "apps", "scale", "", "", False),
    # resourceNames restrict to named requests; list/create carry no name
    (r(["get"], [""], ["configmaps"], ["a"]), "get", "", "configmaps", "", "a", True),
    (r(["get"], [""], ["configmaps"], ["a"]), "get", "", "configmaps", "", "b", False),
    (r(["list"], [""], ["configmaps"], ["a"]), "list", "", "configmaps", "", "", False),
    (r(["get"], [""], ["configmaps"], []), "get", "", "configmaps", "", "b", True),
    # a non-resource rule grants no resource access
    (r(["get"], urls=["*"]), "get", "", "pods", "", "", False),
])
def test_resource_rule_matching(rule, verb, group, resource, sub, name, allowed):
    assert compile_rule(rule).allows_resource(verb, group, resource, sub, name) is allowed


@pytest.mark.parametrize("urls, verb, path, allowed", [
    (["/healthz"], "get", "/healthz", True),
    (["/healthz"], "get", "/healthz/etcd", False),
    (["/healthz*"], "get", "/healthz/etcd", True),
    (["/healthz/*"], "get", "/healthz", False),
    (["/apis/*"], "get", "/apis/apps/v1", True),
    (["*"], "get", "/anything", True),
    (["/version"], "post", "/version", False),
])
def test_non_resource_matching(urls, verb, path, allowed):
    assert compile_rule(r(["get"] if verb == "get" else ["get"], urls=urls)).allows_path(verb, path) is allowed


COVERS = [
    # (owner rules, servant rules, covered, missing)
    ([r(["*"], ["*"], ["*"])], [r(["get", "delete"], ["apps"], ["deployments"], ["a"])], True, []),
    ([r(["get"], [""], ["pods"])], [r(["get", "list"], [""], ["pods"])], False,
     [r(["list"], [""], ["pods"])]),
    ([r(["get"], [""], ["pods"], ["a", "b"])], [r(["get"], [""], ["pods"], ["a"])], True, []),
    ([r(["get"], [""], ["pods"], ["a"])], [r(["get"], [""], ["pods"])], False, [r(["get"], [""], ["pods"])]),
    ([r(["get"], [""], ["*/log"])], [r(["get"], [""], ["pods/log", "nodes/log"])], True, []),
    ([r(["get"], [""], ["*/log"])], [r(["get"], [""], ["pods"])], False, [r(["get"], [""], ["pods"])]),
    ([r(["get"], urls=["/api/*"])], [r(["get"], urls=["/api/v1", "/api"])], False,
     [r(["get"], urls=["/api"])]),
    ([r(["get"], urls=["/api*"])], [r(["get"], urls=["/api/v1", "/api"])], True, []),
    ([r(["get"], [""], ["pods"])], [r(["get"], urls=["/healthz"])], False, [r(["get"], urls=["/healthz"])]),
    ([r(["get"], [""], ["pods"]), r(["list"], [""], ["pods"])], [r(["get", "list"], [""], ["pods"])], True, []),
]


@pytest.mark.parametrize("owner, servant, covered, missing", COVERS)
def test_covers(owner, servant, covered, missing):
    assert covers(owner, servant) == (covered, missing)


def test_breakdown_is_atomic():
    parts = breakdown(r(["get", "list"], ["", "apps"], ["pods"], ["a", "b"], ["/x"]))
    assert len(parts) == 2 * 2 * 2 + 2
    assert {"apiGroups": ["apps"], "resources": ["pods"], "verbs": ["list"], "resourceNames": ["b"]} in parts
    assert {"nonResourceURLs": ["/x"], "verbs": ["get"]} in parts


def test_compaction_and_compact_string():
    missing = [r(["get"], [""], ["pods"]), r(["list"], [""], ["pods"]), r(["get"], [""], ["pods"], ["x"]),
               r(["get"], urls=["/metrics"])]
    compacted = compact_rules(missing)
    assert sorted(compact_string(c) for c in compacted) == [
        '{APIGroups:[""], Resources:["pods"], ResourceNames:["x"], Verbs:["get"]}',
        '{APIGroups:[""], Resources:["pods"], Verbs:["get" "list"]}',
        '{NonResourceURLs:["/metrics"], Verbs:["get"]}',
    ]
