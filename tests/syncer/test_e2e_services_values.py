"""What the tenant chose on a Service reaches the host, or the virtual Service says why not;
mapped Services follow the values both ways (issue 11)."""

from __future__ import annotations

from vkube.api import errors
from vkube.client import Client
from vkube.client.resources import EVENTS, NAMESPACES, SERVICES
from vkube.syncer import load_values

from .conftest import HOST_NS, VC, eventually, getter, gone, start_syncer, stop_syncer


def nodeport(name: str, port: int, node_port: int | None = None, **spec) -> dict:
    p = {"name": "http", "port": port, "protocol": "TCP", "targetPort": port}
    if node_port:
        p["nodePort"] = node_port
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"type": "NodePort", "selector": {"app": name}, "ports": [p], **spec}}


async def events_for(v: Client, name: str, ns: str = "default") -> list[dict]:
    items = (await v.list(EVENTS, namespace=ns)).get("items") or []
    return [e for e in items if e["involvedObject"].get("name") == name]


async def test_user_chosen_ports_and_fields_reach_the_host(planes):
    vcp, hcp = planes
    pair = await start_syncer(vcp, hcp)
    v, h = pair.virtual, pair.host
    try:
        # a nodePort the tenant chose is the host's nodePort
        await v.create(SERVICES, nodeport("web", 80, 31005), namespace="default")
        hs = await eventually(getter(h, SERVICES, f"web-x-default-x-{VC}"))
        assert hs["spec"]["ports"][0]["nodePort"] == 31005

        # the host refuses one that is taken: the host picks another, the virtual Service
        # gets a Warning event that says why
        async with Client(hcp.url, ssl=hcp.client_ssl()) as h0:
            await h0.create(SERVICES, nodeport("squatter", 81, 31006), namespace="default")
        await v.create(SERVICES, nodeport("api", 81, 31006), namespace="default")
        hs = await eventually(getter(h, SERVICES, f"api-x-default-x-{VC}"))
        assert hs["spec"]["ports"][0]["nodePort"] not in (None, 31006)

        async def warned():
            evs = [e for e in await events_for(v, "api") if e["reason"] == "NodePortNotAllocated"]
            assert evs, "no event"
            return evs[0]
        ev = await eventually(warned)
        assert ev["type"] == "Warning"
        assert "31006" in ev["message"] and "already allocated" in ev["message"]

        # a port the host allocated shows up in the virtual Service (no nodePort asked)
        await v.create(SERVICES, nodeport("free", 82), namespace="default")
        hs = await eventually(getter(h, SERVICES, f"free-x-default-x-{VC}"))

        async def shown():
            vs = await v.get(SERVICES, "free", namespace="default")
            assert vs["spec"]["ports"][0].get("nodePort") == hs["spec"]["ports"][0]["nodePort"]
        await eventually(shown)

        # another user-chosen field of the same kind: loadBalancerIP and the traffic policy
        # follow later edits too
        await v.create(SERVICES, {**nodeport("lb", 83), "spec": {
            **nodeport("lb", 83)["spec"], "type": "LoadBalancer",
            "loadBalancerIP": "203.0.113.7"}}, namespace="default")
        hs = await eventually(getter(h, SERVICES, f"lb-x-default-x-{VC}"))
        assert hs["spec"]["loadBalancerIP"] == "203.0.113.7"

        async def edited():
            vs = await v.get(SERVICES, "lb", namespace="default")
            vs["spec"]["loadBalancerIP"] = "203.0.113.8"
            vs["spec"]["externalTrafficPolicy"] = "Local"
            try:
                await v.update(SERVICES, vs)
            except errors.Conflict:  # the syncer wrote it meanwhile: read again, as any client
                raise AssertionError("conflict") from None
        await eventually(edited)

        async def followed():
            got = await h.get(SERVICES, f"lb-x-default-x-{VC}", namespace=HOST_NS)
            assert got["spec"]["loadBalancerIP"] == "203.0.113.8"
            assert got["spec"]["externalTrafficPolicy"] == "Local"
        await eventually(followed)

        # externalIPs never go down (CVE-2020-8554), and the virtual Service says so
        await v.create(SERVICES, {**nodeport("ext", 84), "spec": {
            **nodeport("ext", 84)["spec"], "externalIPs": ["198.51.100.1"]}},
            namespace="default")
        hs = await eventually(getter(h, SERVICES, f"ext-x-default-x-{VC}"))
        assert "externalIPs" not in hs["spec"]

        async def ext_warned():
            assert any(e["reason"] == "ExternalIPsNotSynced" for e in await events_for(v, "ext"))
        await eventually(ext_warned)
    finally:
        await stop_syncer(pair)


MAPPED = """
mapServices:
  fromHost: [{from: default/nettool-host, to: demo/nettool-host}]
  fromVirtual: [{from: demo/nettool-virtual, to: nettool-virtual}]
"""


async def test_mapped_services_follow_the_values(planes):
    """Removing mappings (as `vkube create --upgrade` restarts the syncer with new values)
    removes what they mapped, on both sides; the tenant's own Services stay."""
    vcp, hcp = planes
    async with Client(hcp.url, ssl=hcp.client_ssl()) as h0:
        await h0.create(SERVICES, {"metadata": {"name": "nettool-host"}, "spec": {
            "selector": {"app": "nettool"}, "ports": [{"port": 80}]}}, namespace="default")
    pair = await start_syncer(vcp, hcp, load_values(MAPPED))
    v, h = pair.virtual, pair.host
    try:
        await v.create(NAMESPACES, {"metadata": {"name": "demo"}})
        await v.create(SERVICES, {"metadata": {"name": "nettool-virtual"}, "spec": {
            "selector": {"app": "nt"}, "ports": [{"port": 80}]}}, namespace="demo")
        await v.create(SERVICES, {"metadata": {"name": "mine"}, "spec": {
            "selector": {"app": "mine"}, "ports": [{"port": 80}]}}, namespace="demo")
        await eventually(getter(v, SERVICES, "nettool-host", "demo"))
        await eventually(getter(h, SERVICES, "nettool-virtual"))
    finally:
        await stop_syncer(pair)

    # one mapping left: the other one's object goes
    pair = await start_syncer(vcp, hcp, load_values(
        "mapServices: {fromVirtual: [{from: demo/nettool-virtual, to: nettool-virtual}]}"))
    v, h = pair.virtual, pair.host
    try:
        await eventually(gone(v, SERVICES, "nettool-host", "demo"))
        await h.get(SERVICES, "nettool-virtual", namespace=HOST_NS)
    finally:
        await stop_syncer(pair)

    # no mappings at all (the default values): the rest goes too
    pair = await start_syncer(vcp, hcp)
    v, h = pair.virtual, pair.host
    try:
        await eventually(gone(h, SERVICES, "nettool-virtual"))
        await v.get(SERVICES, "mine", namespace="demo")
        await v.get(SERVICES, "nettool-virtual", namespace="demo")
        await h.get(SERVICES, "nettool-host", namespace="default")  # the host's own: untouched
        await eventually(getter(h, SERVICES, f"mine-x-demo-x-{VC}"))
    finally:
        await stop_syncer(pair)


CLAIMS = {
    "external-dns.alpha.kubernetes.io/hostname": "www.other-tenant.example.com",
    "metallb.universe.tf/loadBalancerIPs": "203.0.113.10",
    "metallb.universe.tf/allow-shared-ip": "their-key",
    "service.beta.kubernetes.io/aws-load-balancer-ssl-cert": "arn:aws:acm:eu-west-1:1:certificate/x",
}
OWN = {"service.beta.kubernetes.io/aws-load-balancer-type": "nlb", "example.com/team": "a"}


async def test_annotations_claiming_shared_names_and_addresses_stay_in_the_virtual_cluster(planes):
    """external-dns names, MetalLB addresses and sharing keys, a cloud certificate ARN: a
    shared controller on the host would claim them for this tenant — another's name, address
    or certificate. They stay virtual (a Warning says which) unless the values allow the key;
    under isolation so does spec.loadBalancerIP. The load balancer's own settings and the
    tenant's own keys go down as written."""
    vcp, hcp = planes
    lb = {"apiVersion": "v1", "kind": "Service",
          "metadata": {"name": "lb", "annotations": {**CLAIMS, **OWN}},
          "spec": {"type": "LoadBalancer", "selector": {"app": "lb"},
                   "allocateLoadBalancerNodePorts": False,  # isolation's quota: no nodePorts
                   "loadBalancerIP": "203.0.113.10", "ports": [{"port": 80}]}}
    pair = await start_syncer(vcp, hcp, load_values("isolation: {enabled: true}"))
    v, h = pair.virtual, pair.host
    try:
        await v.create(SERVICES, lb, namespace="default")
        hs = await eventually(getter(h, SERVICES, f"lb-x-default-x-{VC}"))
        ann = hs["metadata"]["annotations"]
        assert not set(CLAIMS) & set(ann), ann
        assert {k: ann.get(k) for k in OWN} == OWN
        assert "loadBalancerIP" not in hs["spec"]

        async def warned():
            evs = {e["reason"]: e["message"] for e in await events_for(v, "lb")}
            assert "AnnotationsNotSynced" in evs and "LoadBalancerIPNotSynced" in evs, evs
            return evs
        evs = await eventually(warned)
        assert all(k in evs["AnnotationsNotSynced"] for k in CLAIMS), evs
        assert "sync.services.allowedAnnotations" in evs["AnnotationsNotSynced"]
    finally:
        await stop_syncer(pair)

    # the platform team allows external-dns names (a zone per tenant) and the address
    pair = await start_syncer(vcp, hcp, load_values(
        "isolation: {enabled: true}\nsync: {services: {allowedAnnotations: "
        "[external-dns.alpha.kubernetes.io/, spec.loadBalancerIP]}}"))
    h = pair.host
    try:
        async def allowed():
            got = await h.get(SERVICES, f"lb-x-default-x-{VC}", namespace=HOST_NS)
            ann = got["metadata"]["annotations"]
            assert ann.get("external-dns.alpha.kubernetes.io/hostname") == "www.other-tenant.example.com"
            assert got["spec"].get("loadBalancerIP") == "203.0.113.10"
            assert not {k for k in CLAIMS if k.startswith(("metallb", "service.beta"))} & set(ann)
        await eventually(allowed)
    finally:
        await stop_syncer(pair)
