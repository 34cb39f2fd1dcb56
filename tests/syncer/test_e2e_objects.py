"""Services, endpoints, policies, ingresses, PVCs; restart repair; cleanup."""

from __future__ import annotations

from vkube.api import errors
from vkube.client.resources import (
    CONFIGMAPS,
    ENDPOINTS,
    EVENTS,
    INGRESSES,
    NETWORKPOLICIES,
    PODS,
    PVCS,
    SECRETS,
    SERVICES,
)
from vkube.syncer import cleanup_host

from .conftest import (
    HOST_NS,
    VC,
    Pair,
    eventually,
    getter,
    gone,
    start_syncer,
    stop_syncer,
)


def svc(name: str, selector: dict | None = None, **spec: object) -> dict:
    s: dict = {"ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}],
               **spec}
    if selector:
        s["selector"] = selector
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": "demo"}, "spec": s}




async def test_service_selector_translated_and_cluster_ip_written_back(synced: Pair):
    v, h = synced.virtual, synced.host
    created = await v.create(SERVICES, svc("web", {"app": "web"}), namespace="demo")
    assert not created["spec"].get("clusterIP"), "the virtual server leaves allocation to us"
    hs = await eventually(getter(h, SERVICES, f"web-x-demo-x-{VC}"))
    assert hs["spec"]["selector"] == {"vkube.io/l-app": "web", "vkube.io/managed-by": VC,
                                      "vkube.io/namespace": "demo"}
    assert hs["spec"]["clusterIP"]

    async def ip_up():
        vs = await v.get(SERVICES, "web", namespace="demo")
        assert vs["spec"].get("clusterIP") == hs["spec"]["clusterIP"]
    await eventually(ip_up)

    # the host's endpoints controller output is copied up, targetRef translated
    hpod = await _host_pod(synced)
    await h.create(ENDPOINTS, {"metadata": {"name": f"web-x-demo-x-{VC}"}, "subsets": [{
        "addresses": [{"ip": "10.244.0.9", "targetRef": {
            "kind": "Pod", "namespace": HOST_NS, "name": hpod["metadata"]["name"]}}],
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]}]}, namespace=HOST_NS)
    ep = await eventually(getter(v, ENDPOINTS, "web", "demo"))
    assert ep["subsets"][0]["addresses"][0]["targetRef"]["name"] == "web-0"
    assert ep["subsets"][0]["addresses"][0]["targetRef"]["namespace"] == "demo"

    # a selector change goes down
    cur = await v.get(SERVICES, "web", namespace="demo")
    cur["spec"]["selector"] = {"app": "api"}
    await v.update(SERVICES, cur)

    async def selector_down():
        got = await h.get(SERVICES, f"web-x-demo-x-{VC}", namespace=HOST_NS)
        assert got["spec"]["selector"]["vkube.io/l-app"] == "api"
    await eventually(selector_down)

    await v.delete(SERVICES, "web", namespace="demo")
    await eventually(gone(h, SERVICES, f"web-x-demo-x-{VC}"))


async def _host_pod(pair: Pair) -> dict:
    await pair.virtual.create(PODS, {"metadata": {"name": "web-0", "namespace": "demo",
                                                  "labels": {"app": "web"}},
                                     "spec": {"containers": [{"name": "c", "image": "x"}]}},
                              namespace="demo")
    return await eventually(getter(pair.host, PODS, f"web-0-x-demo-x-{VC}"))


async def test_selectorless_service_endpoints_go_down(synced: Pair):
    v, h = synced.virtual, synced.host
    await v.create(SERVICES, svc("ext"), namespace="demo")
    await v.create(ENDPOINTS, {"metadata": {"name": "ext", "namespace": "demo"}, "subsets": [{
        "addresses": [{"ip": "192.0.2.10"}], "ports": [{"name": "http", "port": 8080}]}]},
        namespace="demo")
    hep = await eventually(getter(h, ENDPOINTS, f"ext-x-demo-x-{VC}"))
    assert hep["subsets"][0]["addresses"] == [{"ip": "192.0.2.10"}]
    assert hep["metadata"]["labels"]["vkube.io/managed-by"] == VC
    await v.delete(ENDPOINTS, "ext", namespace="demo")
    await eventually(gone(h, ENDPOINTS, f"ext-x-demo-x-{VC}"))


async def test_selectorless_service_endpointslices_go_down(synced: Pair):
    from vkube.client.resources import ENDPOINTSLICES

    v, h = synced.virtual, synced.host
    await v.create(SERVICES, svc("db"), namespace="demo")
    slice_ = {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
              "metadata": {"name": "db-1", "namespace": "demo", "labels": {"kubernetes.io/service-name": "db"}},
              "addressType": "IPv4", "ports": [{"name": "pg", "port": 5432, "protocol": "TCP"}],
              "endpoints": [{"addresses": ["192.0.2.20"], "conditions": {"ready": True},
                             "targetRef": {"kind": "Pod", "namespace": "demo", "name": "db-0"}}]}
    await v.create(ENDPOINTSLICES, slice_, namespace="demo")
    hs = await eventually(getter(h, ENDPOINTSLICES, f"db-1-x-demo-x-{VC}"))
    assert hs["metadata"]["labels"]["kubernetes.io/service-name"] == f"db-x-demo-x-{VC}"
    assert hs["endpoints"][0]["addresses"] == ["192.0.2.20"]
    assert hs["endpoints"][0]["targetRef"] == {"kind": "Pod", "namespace": HOST_NS,
                                               "name": f"db-0-x-demo-x-{VC}"}
    assert hs["ports"] == slice_["ports"]
    # a slice of a selector service is the controllers' business: never copied
    await v.create(SERVICES, svc("sel", {"app": "x"}), namespace="demo")
    await v.create(ENDPOINTSLICES, {**slice_, "metadata": {"name": "sel-1", "namespace": "demo",
                                                           "labels": {"kubernetes.io/service-name": "sel"}}},
                   namespace="demo")
    await v.delete(ENDPOINTSLICES, "db-1", namespace="demo")
    await eventually(gone(h, ENDPOINTSLICES, f"db-1-x-demo-x-{VC}"))
    assert [s["metadata"]["name"] for s in (await h.list(ENDPOINTSLICES, namespace=HOST_NS))["items"]
            if s["metadata"]["name"].startswith("sel-1")] == []


async def test_network_policy_ingress_pvc(synced: Pair):
    v, h = synced.virtual, synced.host
    await v.create(NETWORKPOLICIES, {"metadata": {"name": "np", "namespace": "demo"}, "spec": {
        "podSelector": {"matchLabels": {"app": "db"}},
        "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "web"}}},
                              {"namespaceSelector": {"matchLabels": {"team": "a"}}},
                              {"ipBlock": {"cidr": "10.0.0.0/8"}}]}],
        "policyTypes": ["Ingress"]}}, namespace="demo")
    np = await eventually(getter(h, NETWORKPOLICIES, f"np-x-demo-x-{VC}"))
    assert np["spec"]["podSelector"]["matchLabels"] == {
        "vkube.io/l-app": "db", "vkube.io/managed-by": VC, "vkube.io/namespace": "demo"}
    peers = np["spec"]["ingress"][0]["from"]
    assert peers[0]["podSelector"]["matchLabels"]["vkube.io/namespace"] == "demo"
    assert peers[1] == {"podSelector": {"matchLabels": {"vkube.io/managed-by": VC,
                                                        "vkube.io/n-team": "a"}}}
    assert peers[2] == {"ipBlock": {"cidr": "10.0.0.0/8"}}

    await v.create(SECRETS, {"metadata": {"name": "tls", "namespace": "demo"},
                             "type": "kubernetes.io/tls",
                             "data": {"tls.crt": "", "tls.key": ""}}, namespace="demo")
    await v.create(INGRESSES, {"metadata": {"name": "ing", "namespace": "demo"}, "spec": {
        "tls": [{"hosts": ["a.example"], "secretName": "tls"}],
        "rules": [{"host": "a.example", "http": {"paths": [{
            "path": "/", "pathType": "Prefix",
            "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}},
        namespace="demo")
    ing = await eventually(getter(h, INGRESSES, f"ing-x-demo-x-{VC}"))
    assert ing["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"] == \
        f"web-x-demo-x-{VC}"
    assert ing["spec"]["tls"][0]["secretName"] == f"tls-x-demo-x-{VC}"
    await eventually(getter(h, SECRETS, f"tls-x-demo-x-{VC}"))

    await v.create(PVCS, {"metadata": {"name": "data", "namespace": "demo"}, "spec": {
        "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}},
        namespace="demo")
    hpvc = await eventually(getter(h, PVCS, f"data-x-demo-x-{VC}"))
    hpvc["status"] = {"phase": "Bound", "capacity": {"storage": "1Gi"},
                      "accessModes": ["ReadWriteOnce"]}
    await h.update(PVCS, hpvc, subresource="status")

    async def bound_up():
        got = await v.get(PVCS, "data", namespace="demo")
        assert got["status"]["phase"] == "Bound"
    await eventually(bound_up)


async def test_restart_repairs_drift_removes_orphans_and_spares_foreign_objects(planes):
    vcp, hcp = planes
    pair = await start_syncer(vcp, hcp)
    v, h = pair.virtual, pair.host
    from vkube.client.resources import NAMESPACES
    await v.create(NAMESPACES, {"metadata": {"name": "demo"}})
    await v.create(SERVICES, svc("keep", {"app": "x"}), namespace="demo")
    await v.create(SERVICES, svc("drop", {"app": "x"}), namespace="demo")
    await eventually(getter(h, SERVICES, f"drop-x-demo-x-{VC}"))
    await eventually(getter(h, SERVICES, f"keep-x-demo-x-{VC}"))
    await stop_syncer(pair)

    # while the syncer is down: a virtual delete, host drift, a foreign host object
    async with type(v)(vcp.url, ssl=vcp.client_ssl()) as v2, type(h)(hcp.url, ssl=hcp.client_ssl()) as h2:
        await v2.delete(SERVICES, "drop", namespace="demo")
        hs = await h2.get(SERVICES, f"keep-x-demo-x-{VC}", namespace=HOST_NS)
        hs["spec"]["selector"] = {"hacked": "yes"}
        await h2.update(SERVICES, hs)
        await h2.create(CONFIGMAPS, {"metadata": {"name": "foreign"}, "data": {}},
                        namespace=HOST_NS)

    pair = await start_syncer(vcp, hcp)
    try:
        await eventually(gone(pair.host, SERVICES, f"drop-x-demo-x-{VC}"))

        async def repaired():
            got = await pair.host.get(SERVICES, f"keep-x-demo-x-{VC}", namespace=HOST_NS)
            assert got["spec"]["selector"].get("vkube.io/l-app") == "x"
            assert "hacked" not in got["spec"]["selector"]
        await eventually(repaired)
        await pair.host.get(CONFIGMAPS, "foreign", namespace=HOST_NS)
    finally:
        await stop_syncer(pair)

    # vkube pause/delete: the syncer is stopped, then everything it made goes
    async with type(h)(hcp.url, ssl=hcp.client_ssl()) as h3:
        n = await cleanup_host(h3, HOST_NS, VC)
        assert n >= 1
        await gone(h3, SERVICES, f"keep-x-demo-x-{VC}")()
        await h3.get(CONFIGMAPS, "foreign", namespace=HOST_NS)


async def test_host_events_are_copied_up(synced: Pair):
    v, h = synced.virtual, synced.host
    hpod = await _host_pod(synced)
    hname = hpod["metadata"]["name"]
    await h.create(EVENTS, {"metadata": {"name": f"{hname}.abc123"},
                            "involvedObject": {"kind": "Pod", "apiVersion": "v1",
                                               "namespace": HOST_NS, "name": hname},
                            "reason": "Pulled", "type": "Normal", "count": 1,
                            "message": f"pulled image for {hname}",
                            "source": {"component": "kubelet"}}, namespace=HOST_NS)
    ev = await eventually(getter(v, EVENTS, "web-0.abc123", "demo"))
    assert ev["involvedObject"]["name"] == "web-0"
    assert ev["involvedObject"]["namespace"] == "demo"
    assert ev["message"] == "pulled image for web-0"
    assert ev["reason"] == "Pulled"


async def test_map_services(planes):
    from vkube.client.resources import NAMESPACES
    from vkube.syncer import load_values
    vcp, hcp = planes
    values = load_values("""
mapServices:
  fromHost: [{from: default/nettool-host, to: demo/nettool-host}]
  fromVirtual: [{from: demo/nettool-virtual, to: nettool-virtual}]
""")
    async with type_client()(hcp.url, ssl=hcp.client_ssl()) as h0:
        await h0.create(SERVICES, {"metadata": {"name": "nettool-host"}, "spec": {
            "selector": {"app": "nettool"}, "ports": [{"port": 80}]}}, namespace="default")
    pair = await start_syncer(vcp, hcp, values)
    v, h = pair.virtual, pair.host
    try:
        await v.create(NAMESPACES, {"metadata": {"name": "demo"}})
        hsvc = await h.get(SERVICES, "nettool-host", namespace="default")

        async def mapped_in():
            got = await getter(v, SERVICES, "nettool-host", "demo")()
            assert got["spec"]["clusterIP"] == hsvc["spec"]["clusterIP"]
            assert got["spec"]["ports"][0]["port"] == 80
            return got
        await eventually(mapped_in)
        try:
            await h.get(SERVICES, f"nettool-host-x-demo-x-{VC}", namespace=HOST_NS)
            raise AssertionError("a mapped-in service must not be synced back down")
        except errors.NotFound:
            pass

        await v.create(SERVICES, svc("nettool-virtual", {"app": "nt"}), namespace="demo")
        out = await eventually(getter(h, SERVICES, "nettool-virtual"))
        assert out["spec"]["selector"] == {"vkube.io/l-app": "nt", "vkube.io/managed-by": VC,
                                           "vkube.io/namespace": "demo"}
        await v.delete(SERVICES, "nettool-virtual", namespace="demo")
        await eventually(gone(h, SERVICES, "nettool-virtual"))
    finally:
        await stop_syncer(pair)


def type_client():
    from vkube.client import Client
    return Client


async def _service_synced(vcp, hcp):
    """Start a syncer, create default/web, wait until both sides show one address."""
    pair = await start_syncer(vcp, hcp)
    v, h = pair.virtual, pair.host
    await v.create(SERVICES, svc("web", {"app": "web"}) | {"metadata": {"name": "web"}},
                   namespace="default")
    first = (await eventually(getter(h, SERVICES, f"web-x-default-x-{VC}")))["spec"]["clusterIP"]
    vs = await eventually(lambda: _virtual_ip(v, first))
    return pair, first, vs


async def _virtual_ip(v, want: str) -> dict:
    try:
        vs = await v.get(SERVICES, "web", namespace="default")
    except errors.NotFound:  # between the delete and the create of a re-created Service
        raise AssertionError("web is being re-created") from None
    assert vs["spec"].get("clusterIP") == want
    return vs


async def test_host_service_deleted_comes_back_with_the_same_address(planes):
    vcp, hcp = planes
    pair, first, old = await _service_synced(vcp, hcp)
    hname = f"web-x-default-x-{VC}"
    try:
        await pair.host.delete(SERVICES, hname, namespace=HOST_NS)
        hs = await eventually(getter(pair.host, SERVICES, hname))
        assert hs["spec"]["clusterIP"] == first
        vs = await pair.virtual.get(SERVICES, "web", namespace="default")
        assert vs["metadata"]["uid"] == old["metadata"]["uid"]
    finally:
        await stop_syncer(pair)


async def test_host_address_taken_meanwhile_recreates_the_virtual_service(planes):
    """If the host gave the address away while the syncer was down, the virtual Service is
    re-created with the host's new one (clusterIP is immutable): both sides agree again."""
    vcp, hcp = planes
    pair, first, old = await _service_synced(vcp, hcp)
    await stop_syncer(pair)
    hname = f"web-x-default-x-{VC}"
    async with type_client()(hcp.url, ssl=hcp.client_ssl()) as h:
        await h.delete(SERVICES, hname, namespace=HOST_NS)
        await h.create(SERVICES, {"metadata": {"name": "thief"}, "spec": {
            "clusterIP": first, "ports": [{"port": 1}]}}, namespace="default")
    pair = await start_syncer(vcp, hcp)
    try:
        hs = await eventually(getter(pair.host, SERVICES, hname))
        second = hs["spec"]["clusterIP"]
        assert second != first
        new = await eventually(lambda: _virtual_ip(pair.virtual, second))
        assert new["metadata"]["uid"] != old["metadata"]["uid"]
        assert new["spec"]["selector"] == {"app": "web"}
    finally:
        await stop_syncer(pair)
