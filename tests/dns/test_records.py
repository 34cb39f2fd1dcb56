"""The cluster DNS records, as the Kubernetes DNS specification (and CoreDNS) answer them."""

from __future__ import annotations

import pytest

from vkube.dns.records import NOERROR, NXDOMAIN, Zone


def svc(name, ns="default", *, cluster_ip="10.96.0.10", ports=(("http", 80, "TCP"),), **spec):
    s = {"clusterIP": cluster_ip, "ports": [{"name": n, "port": p, "protocol": pr} for n, p, pr in ports]}
    if cluster_ip and cluster_ip != "None":
        s["clusterIPs"] = [cluster_ip]
    s.update(spec)
    return {"metadata": {"name": name, "namespace": ns}, "spec": s}


def eslice(service, ns="default", endpoints=(), ports=(("http", 8080, "TCP"),)):
    return {"metadata": {"name": f"{service}-abc", "namespace": ns,
                         "labels": {"kubernetes.io/service-name": service}},
            "endpoints": list(endpoints),
            "ports": [{"name": n, "port": p, "protocol": pr} for n, p, pr in ports]}


def ep(ip, *, ready=True, hostname=None):
    e = {"addresses": [ip], "conditions": {"ready": ready}}
    if hostname:
        e["hostname"] = hostname
    return e


def pod(name, ip, ns="default", phase="Running"):
    return {"metadata": {"name": name, "namespace": ns},
            "status": {"phase": phase, "podIP": ip, "podIPs": [{"ip": ip}]}}


@pytest.fixture
def zone() -> Zone:
    return Zone.build(
        services=[
            svc("nginx", "demo-nginx", cluster_ip="10.96.3.4"),
            svc("dual", cluster_ip="10.96.0.20", clusterIPs=["10.96.0.20", "fd00::20"]),
            svc("db", cluster_ip="None", ports=(("pg", 5432, "TCP"),)),
            svc("web", cluster_ip="None", publishNotReadyAddresses=True),
            svc("ext", cluster_ip=None, type="ExternalName", externalName="example.org"),
        ],
        slices=[
            eslice("db", endpoints=[ep("10.1.0.5", hostname="db-0"), ep("10.1.0.6", hostname="db-1"),
                                    ep("10.1.0.7", ready=False, hostname="db-2")],
                   ports=(("pg", 5432, "TCP"),)),
            eslice("web", endpoints=[ep("10.1.0.8"), ep("10.1.0.9", ready=False)]),
        ],
        pods=[pod("a", "10.1.0.5"), pod("done", "10.1.0.99", phase="Succeeded")])


def values(ans, rtype=None):
    return sorted(str(r.value) for r in ans.records if rtype is None or r.rtype == rtype)


def test_cluster_ip_service(zone):
    ans = zone.resolve("nginx.demo-nginx.svc.cluster.local.", "A")
    assert (ans.rcode, values(ans)) == (NOERROR, ["10.96.3.4"])
    # no trailing dot and any case work too
    assert values(zone.resolve("NGINX.demo-nginx.svc.cluster.local", "A")) == ["10.96.3.4"]


def test_aaaa_of_ipv4_service_is_nodata_not_nxdomain(zone):
    ans = zone.resolve("nginx.demo-nginx.svc.cluster.local.", "AAAA")
    assert (ans.rcode, ans.records) == (NOERROR, ())


def test_dual_stack_service(zone):
    assert values(zone.resolve("dual.default.svc.cluster.local.", "A")) == ["10.96.0.20"]
    assert values(zone.resolve("dual.default.svc.cluster.local.", "AAAA")) == ["fd00::20"]


def test_headless_service_returns_ready_endpoints_only(zone):
    assert values(zone.resolve("db.default.svc.cluster.local.", "A")) == ["10.1.0.5", "10.1.0.6"]


def test_publish_not_ready_addresses(zone):
    assert values(zone.resolve("web.default.svc.cluster.local.", "A")) == ["10.1.0.8", "10.1.0.9"]


def test_statefulset_hostname(zone):
    assert values(zone.resolve("db-1.db.default.svc.cluster.local.", "A")) == ["10.1.0.6"]
    assert zone.resolve("db-2.db.default.svc.cluster.local.", "A").rcode == NXDOMAIN  # not ready


def test_srv_for_named_ports(zone):
    ans = zone.resolve("_http._tcp.nginx.demo-nginx.svc.cluster.local.", "SRV")
    assert [r.value for r in ans.records] == [(0, 100, 80, "nginx.demo-nginx.svc.cluster.local.")]
    targets = sorted(r.value[3] for r in zone.resolve("_pg._tcp.db.default.svc.cluster.local.", "SRV").records)
    assert targets == ["db-0.db.default.svc.cluster.local.", "db-1.db.default.svc.cluster.local."]


def test_pod_records(zone):
    assert values(zone.resolve("10-1-0-5.default.pod.cluster.local.", "A")) == ["10.1.0.5"]
    # verified pods: an IP that no pod has, or a finished pod's, does not resolve
    assert zone.resolve("10-1-0-77.default.pod.cluster.local.", "A").rcode == NXDOMAIN
    assert zone.resolve("10-1-0-99.default.pod.cluster.local.", "A").rcode == NXDOMAIN
    assert zone.resolve("10-1-0-5.other.pod.cluster.local.", "A").rcode == NXDOMAIN


def test_external_name_is_a_cname(zone):
    ans = zone.resolve("ext.default.svc.cluster.local.", "A")
    assert [(r.rtype, r.value) for r in ans.records] == [("CNAME", "example.org.")]


def test_unknown_names_and_empty_non_terminals(zone):
    assert zone.resolve("missing.default.svc.cluster.local.", "A").rcode == NXDOMAIN
    assert zone.resolve("nginx.other.svc.cluster.local.", "A").rcode == NXDOMAIN
    ans = zone.resolve("demo-nginx.svc.cluster.local.", "A")
    assert (ans.rcode, ans.records) == (NOERROR, ())
    assert zone.resolve("svc.cluster.local.", "A").rcode == NOERROR


def test_outside_names_are_for_upstream(zone):
    assert zone.resolve("example.org.", "A") is None
    assert zone.resolve("cluster.local.example.org.", "A") is None


def test_schema_version_and_reverse_lookup(zone):
    assert values(zone.resolve("dns-version.cluster.local.", "TXT")) == ["1.1.0"]
    assert values(zone.resolve("4.3.96.10.in-addr.arpa.", "PTR")) == ["nginx.demo-nginx.svc.cluster.local."]
    assert values(zone.resolve("5.0.1.10.in-addr.arpa.", "PTR")) == ["db-0.db.default.svc.cluster.local."]
    assert zone.resolve("1.2.3.4.in-addr.arpa.", "PTR") is None


def test_custom_domain():
    z = Zone.build(services=[svc("a")], slices=[], pods=[], domain="corp.internal")
    assert values(z.resolve("a.default.svc.corp.internal.", "A")) == ["10.96.0.10"]
    assert z.resolve("a.default.svc.cluster.local.", "A") is None
