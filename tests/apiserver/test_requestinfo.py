"""RequestInfo as k8s.io/apiserver's RequestInfoFactory computes it: the cases of upstream's
requestinfo_test.go (TestGetAPIRequestInfo, TestGetNonAPIRequestInfo, TestSelectorParsing),
written out here as our own table."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from vkube.apiserver.requestinfo import parse


def info_for(method: str, url: str):  # noqa: ANN201
    parts = urlsplit(url)
    return parse(method, parts.path, parts.query)


# method, url, verb, prefix, group, version, namespace, resource, subresource, name, parts
RESOURCE_CASES = [
    ("GET", "/api/v1/namespaces", "list", "api", "", "v1", "", "namespaces", "", "", ["namespaces"]),
    ("GET", "/api/v1/namespaces/other", "get", "api", "", "v1", "other", "namespaces", "", "other", ["namespaces", "other"]),
    ("GET", "/api/v1/namespaces/other/pods", "list", "api", "", "v1", "other", "pods", "", "", ["pods"]),
    ("GET", "/api/v1/namespaces/other/pods/foo", "get", "api", "", "v1", "other", "pods", "", "foo", ["pods", "foo"]),
    ("HEAD", "/api/v1/namespaces/other/pods/foo", "get", "api", "", "v1", "other", "pods", "", "foo", ["pods", "foo"]),
    ("GET", "/api/v1/pods", "list", "api", "", "v1", "", "pods", "", "", ["pods"]),
    ("HEAD", "/api/v1/pods", "list", "api", "", "v1", "", "pods", "", "", ["pods"]),
    ("GET", "/api/v1/proxy/namespaces/other/pods/foo", "proxy", "api", "", "v1", "other", "pods", "", "foo", ["pods", "foo"]),
    ("GET", "/api/v1/proxy/namespaces/other/pods/foo/subpath/not/a/subresource", "proxy", "api", "", "v1", "other",
     "pods", "", "foo", ["pods", "foo", "subpath", "not", "a", "subresource"]),
    ("GET", "/api/v1/watch/pods", "watch", "api", "", "v1", "", "pods", "", "", ["pods"]),
    ("GET", "/api/v1/pods?watch=true", "watch", "api", "", "v1", "", "pods", "", "", ["pods"]),
    ("GET", "/api/v1/pods?watch=false", "list", "api", "", "v1", "", "pods", "", "", ["pods"]),
    ("GET", "/api/v1/watch/namespaces/other/pods", "watch", "api", "", "v1", "other", "pods", "", "", ["pods"]),
    ("GET", "/api/v1/namespaces/other/pods?watch=1", "watch", "api", "", "v1", "other", "pods", "", "", ["pods"]),
    ("GET", "/api/v1/namespaces/other/pods?watch=0", "list", "api", "", "v1", "other", "pods", "", "", ["pods"]),
    ("GET", "/api/v1/namespaces/other/pods/foo/status", "get", "api", "", "v1", "other", "pods", "status", "foo",
     ["pods", "foo", "status"]),
    ("GET", "/api/v1/namespaces/other/pods/foo/proxy/subpath", "get", "api", "", "v1", "other", "pods", "proxy", "foo",
     ["pods", "foo", "proxy", "subpath"]),
    ("PUT", "/api/v1/namespaces/other/finalize", "update", "api", "", "v1", "other", "namespaces", "finalize", "other",
     ["namespaces", "other", "finalize"]),
    ("PUT", "/api/v1/namespaces/other/status", "update", "api", "", "v1", "other", "namespaces", "status", "other",
     ["namespaces", "other", "status"]),
    ("PATCH", "/api/v1/namespaces/other/pods/foo", "patch", "api", "", "v1", "other", "pods", "", "foo", ["pods", "foo"]),
    ("DELETE", "/api/v1/namespaces/other/pods/foo", "delete", "api", "", "v1", "other", "pods", "", "foo", ["pods", "foo"]),
    ("POST", "/api/v1/namespaces/other/pods", "create", "api", "", "v1", "other", "pods", "", "", ["pods"]),
    ("DELETE", "/api/v1/nodes", "deletecollection", "api", "", "v1", "", "nodes", "", "", ["nodes"]),
    ("DELETE", "/api/v1/namespaces", "deletecollection", "api", "", "v1", "", "namespaces", "", "", ["namespaces"]),
    ("DELETE", "/api/v1/namespaces/other/pods", "deletecollection", "api", "", "v1", "other", "pods", "", "", ["pods"]),
    ("DELETE", "/apis/extensions/v1/namespaces/other/pods", "deletecollection", "apis", "extensions", "v1", "other",
     "pods", "", "", ["pods"]),
    ("POST", "/apis/extensions/v1/namespaces/other/pods", "create", "apis", "extensions", "v1", "other", "pods", "", "",
     ["pods"]),
    ("POST", "/apis/extensions/v1beta3/namespaces/other/pods", "create", "apis", "extensions", "v1beta3", "other",
     "pods", "", "", ["pods"]),
    # beyond upstream's table: subresources and groups vkube serves
    ("POST", "/api/v1/namespaces/ns/pods/p/eviction", "create", "api", "", "v1", "ns", "pods", "eviction", "p",
     ["pods", "p", "eviction"]),
    ("GET", "/apis/apps/v1/namespaces/ns/deployments/d/scale", "get", "apis", "apps", "v1", "ns", "deployments",
     "scale", "d", ["deployments", "d", "scale"]),
    ("GET", "/apis/apps/v1/watch/namespaces/ns/deployments/d", "watch", "apis", "apps", "v1", "ns", "deployments", "",
     "d", ["deployments", "d"]),
    ("OPTIONS", "/api/v1/pods", "", "api", "", "v1", "", "pods", "", "", ["pods"]),
]


@pytest.mark.parametrize("case", RESOURCE_CASES, ids=[f"{c[0]} {c[1]}" for c in RESOURCE_CASES])
def test_resource_request_info(case):
    method, url, verb, prefix, group, version, namespace, resource, subresource, name, parts = case
    info = info_for(method, url)
    assert info.is_resource
    assert (info.verb, info.api_prefix, info.group, info.version, info.namespace, info.resource,
            info.subresource, info.name, list(info.parts)) == (
        verb, prefix, group, version, namespace, resource, subresource, name, parts)
    assert info.path == urlsplit(url).path


@pytest.mark.parametrize("url,resource", [
    ("/api/version/resource", True), ("/apis/group/version/resource/name/subresource", True),
    ("/api/version/resource/name/subresource", True), ("/apis/batch/v1/job", True), ("/apis/batch/v1/job/foo", True),
    ("/apis/batch/v1/job/foo/scale", True),
    ("/not-api/version/resource", False), ("/apis/extensions/v1beta1", False), ("/apis/extensions/v1beta1/", False),
    ("/api/version", False), ("/api", False), ("/", False), ("", False),
    ("/", False), ("/api/version/", False), ("/apis/group/version/", False), ("/badprefix/version/resource", False),
    ("/apis/version/resource", False),
])
def test_resource_or_not(url, resource):
    info = info_for("GET", url)
    assert info.is_resource is resource
    if not resource:
        assert info.verb == "get" and info.resource == "" and info.namespace == ""


def test_non_resource_verb_is_the_method():
    assert info_for("POST", "/healthz").verb == "post"
    assert info_for("HEAD", "/version").verb == "head"


# method, url, name, verb, fieldSelector, labelSelector
SELECTOR_CASES = [
    ("GET", "/apis/group/version/resource", "", "list", "", ""),
    ("GET", "/apis/group/version/resource?fieldSelector=metadata.name=name1", "name1", "list", "metadata.name=name1", ""),
    ("GET", "/apis/group/version/resource?watch=true&fieldSelector=metadata.name=name1", "name1", "watch",
     "metadata.name=name1", ""),
    ("GET", "/apis/group/version/resource?fieldSelector=foo=bar&labelSelector=baz=qux", "", "list", "foo=bar", "baz=qux"),
    ("GET", "/apis/group/version/resource?fieldSelector=metadata.name=name1,foo", "", "list",
     "metadata.name=name1,foo", ""),
    ("GET", "/apis/group/version/resource?fieldSelector=metadata.name=name1,foo&watch=true", "", "watch",
     "metadata.name=name1,foo", ""),
    ("GET", "/apis/group/version/resource?fieldSelector=metadata.name=name1,foo&watch=false", "", "list",
     "metadata.name=name1,foo", ""),
    ("DELETE", "/apis/group/version/resource?fieldSelector=foo=bar&labelSelector=baz=qux", "", "deletecollection",
     "foo=bar", "baz=qux"),
    ("GET", "/apis/group/version/resource/name?fieldSelector=foo=bar&labelSelector=baz=qux", "name", "get", "", ""),
    ("GET", "/apis/group/version/watch/resource?fieldSelector=foo=bar&labelSelector=baz=qux", "", "watch", "", ""),
    # a name that is not a path segment is not taken from the selector
    ("GET", "/apis/group/version/resource?fieldSelector=metadata.name%3Da%2Fb", "", "list", "metadata.name=a/b", ""),
    ("GET", "/apis/group/version/resource?fieldSelector=metadata.name!%3Dx", "", "list", "metadata.name!=x", ""),
    ("GET", "/apis/group/version/resource?fieldSelector=metadata.name%3D%3Dx", "x", "list", "metadata.name==x", ""),
]


@pytest.mark.parametrize("case", SELECTOR_CASES, ids=[f"{c[0]} {c[1]}" for c in SELECTOR_CASES])
def test_selector_parsing(case):
    method, url, name, verb, fs, ls = case
    info = info_for(method, url)
    assert (info.name, info.verb, info.field_selector, info.label_selector) == (name, verb, fs, ls)
    assert info.path_name == (info.parts[1] if len(info.parts) > 1 else "")


def test_empty_segments_are_kept():
    info = info_for("GET", "/api/v1/namespaces//pods")
    assert info.namespace == "" and info.parts == ("pods",) and info.namespaced_path
