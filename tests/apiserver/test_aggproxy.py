"""The aggregator's pure pieces: front-proxy identity headers (as client-go's
``SetAuthProxyHeaders``: one X-Remote-Group per group, extra keys URL-escaped) and the
conversion of an aggregated server's APIResourceList into aggregated discovery."""

from __future__ import annotations

from vkube.api.user import UserInfo
from vkube.apiserver.aggproxy import aggregated_resources, identity_headers


def test_identity_headers():
    user = UserInfo("system:serviceaccount:ns:sa", groups=("system:serviceaccounts", "system:authenticated"),
                    extra={"authentication.kubernetes.io/pod-name": ("p1",), "scopes/with space": ("a", "b")})
    assert identity_headers(user) == [
        ("X-Remote-User", "system:serviceaccount:ns:sa"),
        ("X-Remote-Group", "system:serviceaccounts"), ("X-Remote-Group", "system:authenticated"),
        ("X-Remote-Extra-authentication.kubernetes.io%2Fpod-name", "p1"),
        ("X-Remote-Extra-scopes%2Fwith%20space", "a"), ("X-Remote-Extra-scopes%2Fwith%20space", "b")]


def test_legacy_resource_list_to_aggregated_discovery():
    listed = {"kind": "APIResourceList", "groupVersion": "wardle.example.com/v1alpha1", "resources": [
        {"name": "flunders", "singularName": "flunder", "namespaced": True, "kind": "Flunder",
         "verbs": ["get", "list"], "shortNames": ["fl"], "categories": ["all"]},
        {"name": "flunders/status", "singularName": "", "namespaced": True, "kind": "Flunder", "verbs": ["get"]},
        {"name": "fischers", "singularName": "", "namespaced": False, "kind": "Fischer", "verbs": ["list"]}]}
    assert aggregated_resources("wardle.example.com", "v1alpha1", listed) == [
        {"resource": "flunders", "responseKind": {"group": "wardle.example.com", "version": "v1alpha1", "kind": "Flunder"},
         "scope": "Namespaced", "singularResource": "flunder", "verbs": ["get", "list"], "shortNames": ["fl"],
         "categories": ["all"], "subresources": [
             {"subresource": "status", "verbs": ["get"],
              "responseKind": {"group": "wardle.example.com", "version": "v1alpha1", "kind": "Flunder"}}]},
        {"resource": "fischers", "responseKind": {"group": "wardle.example.com", "version": "v1alpha1", "kind": "Fischer"},
         "scope": "Cluster", "singularResource": "fischer", "verbs": ["list"]}]
