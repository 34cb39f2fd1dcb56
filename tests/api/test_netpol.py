"""The pure NetworkPolicy evaluator (vkube.api.netpol) against the cases of upstream's netpol
e2e suite: default deny both ways, pod/namespace selectors and their AND, ipBlock with except,
ports, endPort ranges, named ports, protocols, policyTypes defaulting, additivity."""

from __future__ import annotations

from vkube.api.netpol import Endpoint, check, check_egress, check_ingress, pod_endpoint, policy_types


def pod(ns: str, name: str, ip: str, labels: dict | None = None, ns_labels: dict | None = None,
        named: dict | None = None) -> Endpoint:
    return Endpoint(ip=ip, namespace=ns, name=name, labels=labels or {},
                    namespace_labels={"kubernetes.io/metadata.name": ns, **(ns_labels or {})},
                    named_ports=named or {})


def pol(ns: str, name: str, spec: dict) -> dict:
    return {"metadata": {"namespace": ns, "name": name}, "spec": spec}


WEB = pod("shop", "web", "10.244.0.5", {"app": "web"}, named={"http": ((8080, "TCP"),)})
CLIENT = pod("shop", "client", "10.244.0.6", {"role": "client"})
OTHER = pod("ops", "tool", "10.244.1.7", {"role": "client"}, {"team": "ops"})
OUTSIDE = Endpoint(ip="8.8.8.8")


def test_no_policy_allows_everything() -> None:
    assert check([], CLIENT, WEB, 80)
    assert check([], CLIENT, OUTSIDE, 53, "UDP")


def test_default_deny_ingress_and_egress() -> None:
    deny_in = pol("shop", "deny", {"podSelector": {}})
    v = check([deny_in], CLIENT, WEB, 80)
    assert not v and v.policies == ("shop/deny",) and "ingress" in v.reason
    assert check([deny_in], WEB, OUTSIDE, 80)  # ingress-only: egress still open
    assert check([deny_in], WEB, OTHER, 80)  # the other namespace has no policy
    deny_out = pol("shop", "deny-out", {"podSelector": {}, "policyTypes": ["Egress"]})
    v = check([deny_out], CLIENT, OUTSIDE, 443)
    assert not v and "egress" in v.reason
    assert check([deny_out], OTHER, WEB, 80)  # ingress into shop is not isolated


def test_pod_selector_peer_is_own_namespace_only() -> None:
    p = pol("shop", "web", {"podSelector": {"matchLabels": {"app": "web"}},
                            "ingress": [{"from": [{"podSelector": {"matchLabels": {"role": "client"}}}]}]})
    assert check([p], CLIENT, WEB, 80)
    assert not check([p], OTHER, WEB, 80)  # same labels, other namespace
    assert check([p], WEB, CLIENT, 80)  # client is not selected by the policy


def test_namespace_and_pod_selector_are_anded_separate_peers_ored() -> None:
    anded = pol("shop", "a", {"podSelector": {"matchLabels": {"app": "web"}}, "ingress": [{"from": [
        {"namespaceSelector": {"matchLabels": {"team": "ops"}}, "podSelector": {"matchLabels": {"role": "admin"}}}]}]})
    assert not check([anded], OTHER, WEB, 80)
    admin = pod("ops", "admin", "10.244.1.8", {"role": "admin"}, {"team": "ops"})
    assert check([anded], admin, WEB, 80)
    ored = pol("shop", "o", {"podSelector": {"matchLabels": {"app": "web"}}, "ingress": [{"from": [
        {"namespaceSelector": {"matchLabels": {"team": "ops"}}}, {"podSelector": {"matchLabels": {"role": "admin"}}}]}]})
    assert check([ored], OTHER, WEB, 80)
    assert not check([ored], CLIENT, WEB, 80)
    all_ns = pol("shop", "all", {"podSelector": {}, "ingress": [{"from": [{"namespaceSelector": {}}]}]})
    assert check([all_ns], OTHER, WEB, 80)
    assert not check([all_ns], OUTSIDE, WEB, 80)  # an external address is no pod of a namespace


def test_ip_block_with_except() -> None:
    p = pol("shop", "ip", {"podSelector": {}, "policyTypes": ["Egress"], "egress": [
        {"to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": ["10.0.0.0/8", "127.0.0.0/8"]}}]}]})
    assert check([p], CLIENT, OUTSIDE, 443)
    assert not check([p], CLIENT, Endpoint(ip="10.1.2.3"), 443)
    assert not check([p], CLIENT, Endpoint(ip="127.0.0.1"), 443)
    assert not check([p], CLIENT, WEB, 80)  # the pod's address is in an excepted range
    v6 = pol("shop", "v6", {"podSelector": {}, "policyTypes": ["Egress"], "egress": [
        {"to": [{"ipBlock": {"cidr": "fd00::/8"}}]}]})
    assert check([v6], CLIENT, Endpoint(ip="fd00::1"), 80)
    assert not check([v6], CLIENT, Endpoint(ip="2001:db8::1"), 80)


def test_ports_end_port_protocol_and_named_ports() -> None:
    p = pol("shop", "ports", {"podSelector": {"matchLabels": {"app": "web"}}, "ingress": [
        {"ports": [{"port": 80}, {"port": 9000, "endPort": 9010}, {"protocol": "UDP", "port": 53},
                   {"port": "http"}]}]})
    assert check([p], CLIENT, WEB, 80)
    assert not check([p], CLIENT, WEB, 80, "UDP")
    assert check([p], CLIENT, WEB, 9005) and check([p], CLIENT, WEB, 9010)
    assert not check([p], CLIENT, WEB, 9011)
    assert check([p], CLIENT, WEB, 53, "UDP") and not check([p], CLIENT, WEB, 53)
    assert check([p], CLIENT, WEB, 8080)  # named port "http" of the destination
    assert not check([p], CLIENT, WEB, 8081)
    egress_named = pol("shop", "e", {"podSelector": {"matchLabels": {"role": "client"}},
                                     "policyTypes": ["Egress"], "egress": [{"ports": [{"port": "http"}]}]})
    assert check([egress_named], CLIENT, WEB, 8080)
    assert not check([egress_named], CLIENT, OUTSIDE, 8080)  # an address has no named ports


def test_policies_are_additive_and_both_sides_must_allow() -> None:
    deny = pol("shop", "deny", {"podSelector": {}})
    allow = pol("shop", "allow", {"podSelector": {"matchLabels": {"app": "web"}},
                                  "ingress": [{"from": [{"podSelector": {}}]}]})
    assert check([deny, allow], CLIENT, WEB, 80)
    assert not check([deny, allow], WEB, CLIENT, 80)
    egress_deny = pol("shop", "no-out", {"podSelector": {"matchLabels": {"role": "client"}},
                                         "policyTypes": ["Egress"]})
    v = check([deny, allow, egress_deny], CLIENT, WEB, 80)
    assert not v and v.policies == ("shop/no-out",)
    assert check_ingress([deny, allow, egress_deny], CLIENT, WEB, 80)
    assert not check_egress([deny, allow, egress_deny], CLIENT, WEB, 80)


def test_empty_rules_and_policy_types_defaulting() -> None:
    assert policy_types({"podSelector": {}}) == ("Ingress",)
    assert policy_types({"podSelector": {}, "egress": [{}]}) == ("Ingress", "Egress")
    assert policy_types({"podSelector": {}, "policyTypes": ["Egress"]}) == ("Egress",)
    allow_all = pol("shop", "all", {"podSelector": {}, "ingress": [{}]})
    assert check([allow_all], OTHER, WEB, 1234) and check([allow_all], OUTSIDE, WEB, 1)


def test_host_network_pods_are_not_selected_and_pod_endpoint_reads_pods() -> None:
    obj = {"metadata": {"namespace": "shop", "name": "web", "labels": {"app": "web"}},
           "spec": {"containers": [{"name": "c", "ports": [{"name": "http", "containerPort": 8080}]}]},
           "status": {"podIP": "10.244.0.5"}}
    ep = pod_endpoint(obj, {"team": "a"})
    assert ep.ip == "10.244.0.5" and ep.named_ports == {"http": ((8080, "TCP"),)}
    assert ep.namespace_labels["kubernetes.io/metadata.name"] == "shop"
    deny = pol("shop", "deny", {"podSelector": {}})
    assert not check([deny], CLIENT, ep, 80)
    host = pod_endpoint({**obj, "spec": {**obj["spec"], "hostNetwork": True}})
    assert check([deny], CLIENT, host, 80)
