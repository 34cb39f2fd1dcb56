"""How an APIService's service becomes an address (``aggproxy.resolve``), on one control plane
with the real kubectl (the proxy presenting its front-proxy client certificate, as published in
``kube-system/extension-apiserver-authentication``): a ClusterIP service with no endpoints is EndpointsNotFound, one whose
endpoints are not ready is MissingEndpoints, and a ready endpoint that is a pod with the
embedded host's ``vkube.io/port-forward-PORT`` annotation is reached at that real address."""

from __future__ import annotations

import asyncio
import base64
import json
import ssl

import aiohttp
import yaml

from tests.aggregator.wardle import GROUP, VERSION, Wardle
from vkube.pki.cluster import ADMIN
from vkube.pki.tls import client_context


async def kubectl(cp, *args: str, input: str | None = None, check: bool = True):
    return await asyncio.to_thread(cp.kubectl, *args, input=input, check=check)


async def condition(cp, name: str, reason: str, timeout: float = 60) -> dict:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        obj = json.loads((await kubectl(cp, "get", "apiservice", name, "-o", "json")).stdout)
        cond = next((c for c in obj.get("status", {}).get("conditions", []) if c["type"] == "Available"), {})
        if cond.get("reason") == reason or asyncio.get_running_loop().time() > deadline:
            assert cond.get("reason") == reason, cond
            return cond
        await asyncio.sleep(0.3)


def _get_with_headers(kubeconfig: str, path: str, headers: dict[str, str]) -> dict:
    """A GET with extra request headers, through the official client."""
    from kubernetes import client as k8s
    from kubernetes import config as k8s_config

    configuration = k8s.Configuration()
    k8s_config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
    with k8s.ApiClient(configuration) as api:
        request = api.param_serialize(method="GET", resource_path=path, header_params=dict(headers),
                                      auth_settings=["BearerToken"])
        response = api.call_api(*request)
        response.read()
        return json.loads(response.data)


async def _status_as(cp, pair) -> int | str:
    """GET /api with a client certificate: the status, or "refused" when the TLS handshake is
    (a certificate from an unknown CA, refused after a TLS 1.3 handshake, shows as a disconnect)."""
    try:
        async with aiohttp.ClientSession() as http, http.get(cp.url + "/api",
                                                              ssl=client_context(cp.cp.pki.ca_pem, pair)) as r:
            return r.status
    except (aiohttp.ClientConnectionError, ssl.SSLError):
        return "refused"


def manifests(port: int, *, ready: bool) -> str:
    docs = [
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "wardle", "namespace": "default"},
         "spec": {"ports": [{"name": "https", "port": 443, "targetPort": 8443}]}},
        {"apiVersion": "v1", "kind": "Pod", "metadata": {
            "name": "wardle-0", "namespace": "default",
            "annotations": {"vkube.io/port-forward-8443": f"127.0.0.1:{port}"}},
         "spec": {"containers": [{"name": "server", "image": "wardle"}]}},
        {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "metadata": {
            "name": "wardle-abc", "namespace": "default", "labels": {"kubernetes.io/service-name": "wardle"}},
         "addressType": "IPv4", "ports": [{"name": "https", "port": 8443, "protocol": "TCP"}],
         "endpoints": [{"addresses": ["10.244.0.9"], "conditions": {"ready": ready},
                        "targetRef": {"kind": "Pod", "namespace": "default", "name": "wardle-0"}}]},
    ]
    return "\n---\n".join(json.dumps(d) for d in docs)


async def test_endpoints_and_port_forward_annotation(control_plane):
    cp = control_plane
    name = f"{VERSION}.{GROUP}"
    auth = json.loads((await kubectl(cp, "get", "configmap", "-n", "kube-system",
                                     "extension-apiserver-authentication", "-o", "json")).stdout)["data"]
    assert json.loads(auth["requestheader-allowed-names"]) == ["front-proxy-client"]
    assert json.loads(auth["requestheader-username-headers"]) == ["X-Remote-User"]
    assert json.loads(auth["requestheader-group-headers"]) == ["X-Remote-Group"]
    assert json.loads(auth["requestheader-extra-headers-prefix"]) == ["X-Remote-Extra-"]
    # the front-proxy CA is its own (DATA/pki/front-proxy-ca.crt), not the cluster CA clients use
    kubeconfig = yaml.safe_load(cp.kubeconfig.read_text())
    cluster_ca = base64.b64decode(kubeconfig["clusters"][0]["cluster"]["certificate-authority-data"]).decode()
    assert auth["client-ca-file"] == cluster_ca != auth["requestheader-client-ca-file"]
    assert (cp.kubeconfig.parent / "pki" / "front-proxy-ca.crt").read_text() == auth["requestheader-client-ca-file"]
    with Wardle() as wardle:
        wardle.trust_clients(auth["requestheader-client-ca-file"])
        await kubectl(cp, "apply", "-f", "-", input=json.dumps({
            "apiVersion": "v1", "kind": "Service", "metadata": {"name": "wardle", "namespace": "default"},
            "spec": {"ports": [{"name": "https", "port": 443, "targetPort": 8443}]}}))
        await kubectl(cp, "apply", "-f", "-", input=json.dumps({
            "apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService", "metadata": {"name": name},
            "spec": {"group": GROUP, "version": VERSION, "groupPriorityMinimum": 1000, "versionPriority": 15,
                     "caBundle": wardle.ca_bundle, "service": {"namespace": "default", "name": "wardle"}}}))
        cond = await condition(cp, name, "EndpointsNotFound")
        assert cond["message"] == 'cannot find endpointslices for service/wardle in "default"'

        await kubectl(cp, "apply", "-f", "-", input=manifests(wardle.port, ready=False))
        cond = await condition(cp, name, "MissingEndpoints")
        assert cond["message"] == 'endpointslices for service/wardle in "default" have no addresses with port name "https"'

        await kubectl(cp, "apply", "-f", "-", input=manifests(wardle.port, ready=True))
        await condition(cp, name, "Passed")
        flunders = json.loads((await kubectl(cp, "get", "flunders", "-n", "default", "-o", "json")).stdout)
        assert [f["metadata"]["name"] for f in flunders["items"]] == ["one"]
        # the proxy authenticates itself with the front-proxy client certificate
        assert {r["client_cn"] for r in wardle.requests} == {"front-proxy-client"}
        # ... which is no credential on the API server itself (another CA)
        assert await _status_as(cp, cp.cp.pki.client_pair(*ADMIN)) == 200
        assert await _status_as(cp, cp.cp.pki.front_proxy_client()) in (401, "refused")
        # identity headers a client sends are dropped: the server sees who the caller is
        spoofed = await asyncio.to_thread(_get_with_headers, str(cp.kubeconfig),
                                          f"/apis/{GROUP}/{VERSION}/namespaces/default/flunders/one",
                                          {"X-Remote-User": "mallory", "X-Remote-Group": "system:masters"})
        last = wardle.requests[-1]
        assert spoofed["metadata"]["annotations"]["seen-user"] == last["user"] != "mallory"
        assert last["groups"].count("system:masters") <= 1 and "mallory" not in last["groups"]
        # a watch streams through the proxy, event by event
        watched = await kubectl(cp, "get", "--raw", f"/apis/{GROUP}/{VERSION}/namespaces/default/flunders?watch=1")
        events = [json.loads(line) for line in watched.stdout.splitlines() if line.strip()]
        assert [e["type"] for e in events] == ["ADDED", "MODIFIED"]


async def test_a_crd_version_is_a_local_apiservice_while_served(control_plane):
    cp = control_plane
    crd = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
           "metadata": {"name": "gadgets.toys.example.com"},
           "spec": {"group": "toys.example.com", "scope": "Namespaced",
                    "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget"},
                    "versions": [{"name": "v1", "served": True, "storage": True, "schema": {
                        "openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}}]}}
    await kubectl(cp, "apply", "-f", "-", input=json.dumps(crd))
    cond = await condition(cp, "v1.toys.example.com", "Local")
    assert cond["status"] == "True"
    obj = json.loads((await kubectl(cp, "get", "apiservice", "v1.toys.example.com", "-o", "json")).stdout)
    assert obj["metadata"]["labels"] == {"kube-aggregator.kubernetes.io/automanaged": "true"}
    assert obj["spec"] == {"group": "toys.example.com", "version": "v1", "groupPriorityMinimum": 1000,
                           "versionPriority": 100}
    await kubectl(cp, "delete", "crd", "gadgets.toys.example.com")
    for _ in range(100):
        names = (await kubectl(cp, "get", "apiservices", "-o", "name")).stdout.split()
        if "apiservice.apiregistration.k8s.io/v1.toys.example.com" not in names:
            break
        await asyncio.sleep(0.3)
    assert "apiservice.apiregistration.k8s.io/v1.toys.example.com" not in names
    assert "apiservice.apiregistration.k8s.io/v1.apps" in names


async def test_an_oversized_discovery_answer_is_not_read(control_plane):
    """The availability check reads at most ``aggproxy.DISCOVERY_MAX`` of the discovery answer
    (a tenant's server answering 600 MB grew the process by hundreds of MB): past it the
    APIService is FailedDiscoveryCheck naming the limit."""
    from vkube.apiserver.aggproxy import DISCOVERY_MAX

    cp = control_plane
    name = f"{VERSION}.{GROUP}"
    big = {"kind": "APIResourceList", "groupVersion": f"{GROUP}/{VERSION}", "resources": [],
           "padding": "x" * (DISCOVERY_MAX + 1)}
    with Wardle(routes=lambda path, user: (200, big) if path.rstrip("/") == f"/apis/{GROUP}/{VERSION}" else None) as wardle:
        await kubectl(cp, "apply", "-f", "-", input=json.dumps({
            "apiVersion": "v1", "kind": "Service", "metadata": {"name": "wardle", "namespace": "default"},
            "spec": {"type": "ExternalName", "externalName": "127.0.0.1"}}))
        await kubectl(cp, "apply", "-f", "-", input=json.dumps({
            "apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService", "metadata": {"name": name},
            "spec": {"group": GROUP, "version": VERSION, "groupPriorityMinimum": 1000, "versionPriority": 15,
                     "caBundle": wardle.ca_bundle,
                     "service": {"namespace": "default", "name": "wardle", "port": wardle.port}}}))
        cond = await condition(cp, name, "FailedDiscoveryCheck")
        assert cond["message"].endswith(f"the response body exceeds the limit of {DISCOVERY_MAX} bytes"), cond


async def test_apiservices_past_the_per_cluster_limit_are_not_checked(control_plane, monkeypatch):
    """Each cluster checks (and keeps the discovery of) at most ``MAX_REMOTE_APISERVICES``
    remote APIServices; the ones past it, by name, read Available=False naming the limit."""
    from vkube.apiserver import aggregator

    monkeypatch.setattr(aggregator, "MAX_REMOTE_APISERVICES", 2)
    cp = control_plane
    docs = [{"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService", "metadata": {"name": f"v1.g{i}.example.com"},
             "spec": {"group": f"g{i}.example.com", "version": "v1", "groupPriorityMinimum": 1000, "versionPriority": 15,
                      "insecureSkipTLSVerify": True, "service": {"namespace": "default", "name": f"s{i}"}}}
            for i in range(3)]
    await kubectl(cp, "apply", "-f", "-", input="\n---\n".join(json.dumps(d) for d in docs))
    await condition(cp, "v1.g0.example.com", "ServiceNotFound")
    await condition(cp, "v1.g1.example.com", "ServiceNotFound")
    cond = await condition(cp, "v1.g2.example.com", "TooManyAPIServices")
    assert "more than 2 APIServices with a service" in cond["message"]
