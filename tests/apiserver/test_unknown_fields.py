"""Unknown fields of built-in kinds are dropped as kube-apiserver drops them (decoding into
its typed structs): with no ``fieldValidation`` (the official Python client, curl) the write
succeeds without them and a ``Warning: 299`` names each; ``Ignore`` drops them silently;
``Strict`` refuses. Driven through the official ``kubernetes`` client."""

from __future__ import annotations

import asyncio
import json

import pytest
from kubernetes import client as k8s
from kubernetes import config as k8s_config


@pytest.fixture
def api(control_plane):
    configuration = k8s.Configuration()
    k8s_config.load_kube_config(config_file=str(control_plane.kubeconfig), client_configuration=configuration)
    api_client = k8s.ApiClient(configuration)
    yield k8s.CoreV1Api(api_client)
    api_client.close()


def _raw(api: k8s.CoreV1Api, method: str, path: str, body: object, query: list | None = None,
         content_type: str = "application/json") -> tuple[dict, int, dict]:
    """One call through the official client's own serializer and transport (its typed models
    cannot carry an unknown field), returning (body, status, headers)."""
    c = api.api_client
    params = c.param_serialize(method, path, query_params=query or [], body=body,
                               header_params={"Content-Type": content_type, "Accept": "application/json"},
                               auth_settings=["BearerToken"])
    resp = c.call_api(*params)
    data = resp.read()
    return json.loads(data), resp.status, dict(resp.getheaders())


CM = "/api/v1/namespaces/default/configmaps"
POD = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "zzz0": 1},
       "spec": {"zzz2": True, "containers": [{"name": "c", "image": "busybox", "zzz": {"a": 1},
                                              "resources": {"zzz3": 1}}]}}


async def test_unknown_fields_are_dropped_and_warned(api):
    def run() -> None:
        cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "u1"}, "zzz": {"a": 1},
              "data": {"k": "v"}}
        obj, status, headers = _raw(api, "POST", CM, cm)
        assert status == 201 and "zzz" not in obj and obj["data"] == {"k": "v"}
        assert headers.get("Warning") == '299 - "unknown field \\"zzz\\""', headers
        assert api.read_namespaced_config_map("u1", "default").to_dict().get("zzz") is None
        got = _raw(api, "GET", CM + "/u1", None)[0]
        assert "zzz" not in got

        # nested fields of a Pod
        _, status, headers = _raw(api, "POST", "/api/v1/namespaces/default/pods", POD)
        assert status == 201
        stored = _raw(api, "GET", "/api/v1/namespaces/default/pods/p", None)[0]
        for fields in (stored["metadata"], stored["spec"], stored["spec"]["containers"][0],
                       stored["spec"]["containers"][0]["resources"]):
            assert not [k for k in fields if k.startswith("zzz")], fields
        for name in ("metadata.zzz0", "spec.zzz2", "spec.containers[0].zzz", "spec.containers[0].resources.zzz3"):
            assert f'unknown field \\"{name}\\"' in headers["Warning"], headers

        # an unknown field does not get around the ConfigMap size limit: it is not stored
        big = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "u2"},
               "data": {"k": "v"}, "blob": "x" * (2 * 1024 * 1024)}
        obj, status, _ = _raw(api, "POST", CM, big)
        assert status == 201 and "blob" not in _raw(api, "GET", CM + "/u2", None)[0]

        # Ignore: dropped, no warning; replace and patches drop them too
        cm2 = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "u3"}, "zzz": 1}
        obj, status, headers = _raw(api, "POST", CM, cm2, query=[("fieldValidation", "Ignore")])
        assert status == 201 and "zzz" not in obj and "Warning" not in headers
        obj, status, headers = _raw(api, "PUT", CM + "/u3", dict(cm2, data={"a": "b"}))
        assert status == 200 and "zzz" not in obj and obj["data"] == {"a": "b"} and "Warning" in headers
        for ctype in ("application/merge-patch+json", "application/strategic-merge-patch+json"):
            obj, status, headers = _raw(api, "PATCH", CM + "/u3", {"zzz": 2, "data": {"c": "d"}},
                                        content_type=ctype)
            assert status == 200 and "zzz" not in obj and obj["data"]["c"] == "d", obj
            assert headers.get("Warning") == '299 - "unknown field \\"zzz\\""', headers
        assert "zzz" not in _raw(api, "GET", CM + "/u3", None)[0]

        # Strict refuses and stores nothing
        st, status, _ = _raw(api, "POST", CM, dict(cm, metadata={"name": "u4"}), query=[("fieldValidation", "Strict")])
        assert status == 400 and st["message"] == (
            'ConfigMap in version "v1" cannot be handled as a ConfigMap: strict decoding error: unknown field "zzz"')
        with pytest.raises(k8s.ApiException) as err:
            api.read_namespaced_config_map("u4", "default")
        assert err.value.status == 404

    await asyncio.to_thread(run)
