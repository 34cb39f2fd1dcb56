"""The kubelet's dnsPolicy rules (pkg/kubelet/network/dns) as the pod rewrite applies them with
the virtual cluster's DNS as clusterDNS: table tests over plain pod specs."""

from __future__ import annotations

import copy

import pytest

from vkube.syncer.podrewrite import PodRewriteConfig, apply_cluster_dns, rewrite_pod
from vkube.syncer.translate import Translator

SERVER = "10.96.0.10"
SEARCHES = ["team.svc.cluster.local", "svc.cluster.local", "cluster.local"]


def dns_of(spec: dict) -> tuple[str | None, dict | None]:
    spec = copy.deepcopy(spec)
    apply_cluster_dns(spec, "team", SERVER)
    return spec.get("dnsPolicy"), spec.get("dnsConfig")


def test_cluster_first_is_the_default() -> None:
    for spec in ({}, {"dnsPolicy": "ClusterFirst"}, {"dnsPolicy": "ClusterFirstWithHostNet"},
                 {"dnsPolicy": "ClusterFirstWithHostNet", "hostNetwork": True}):
        assert dns_of(spec) == ("None", {"nameservers": [SERVER], "searches": SEARCHES,
                                         "options": [{"name": "ndots", "value": "5"}]}), spec


@pytest.mark.parametrize("spec", [
    {"dnsPolicy": "Default"},
    {"dnsPolicy": "None", "dnsConfig": {"nameservers": ["1.1.1.1"]}},
    {"dnsPolicy": "ClusterFirst", "hostNetwork": True},  # the kubelet falls back to Default
])
def test_policies_that_keep_their_own(spec: dict) -> None:
    assert dns_of(spec) == (spec["dnsPolicy"], spec.get("dnsConfig"))


def test_own_dns_config_is_appended_and_its_options_win() -> None:
    policy, cfg = dns_of({"dnsConfig": {
        "nameservers": ["1.1.1.1", SERVER, "8.8.8.8", "9.9.9.9"],
        "searches": ["corp.example", "cluster.local"],
        "options": [{"name": "ndots", "value": "1"}, {"name": "timeout", "value": "2"}]}})
    assert policy == "None"
    assert cfg["nameservers"] == [SERVER, "1.1.1.1", "8.8.8.8"]  # deduplicated, at most 3
    assert cfg["searches"] == [*SEARCHES, "corp.example"]
    assert cfg["options"] == [{"name": "ndots", "value": "1"}, {"name": "timeout", "value": "2"}]


def test_without_a_cluster_dns_nothing_changes() -> None:
    spec = {"dnsPolicy": "ClusterFirst"}
    apply_cluster_dns(spec, "team", "")
    assert spec == {"dnsPolicy": "ClusterFirst"}


def test_rewrite_pod_uses_the_namespace_of_the_virtual_pod() -> None:
    vpod = {"metadata": {"name": "p", "namespace": "team", "uid": "u"},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]}}
    cfg = PodRewriteConfig(translator=Translator("vc", "vkube-vc"), host_service_account="sa",
                           token_secret=None, cluster_dns=SERVER)
    spec = rewrite_pod(vpod, cfg)["spec"]
    assert spec["dnsPolicy"] == "None" and spec["dnsConfig"]["searches"] == SEARCHES


def test_in_cluster_control_plane_advertises_its_pod_ip() -> None:
    """``vkube render`` (the control plane as a host pod): pods reach it at its pod IP."""
    from vkube.cli.render import manifests

    sts = next(o for o in manifests("vc", "vkube-vc", {}) if o["kind"] == "StatefulSet")
    c = sts["spec"]["template"]["spec"]["containers"][0]
    assert c["args"][c["args"].index("--advertise-address") + 1] == "$(POD_IP)"
    assert {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}} in c["env"]


def test_in_cluster_rbac_reads_host_ingress_classes_only_when_asked() -> None:
    from vkube.cli.render import manifests

    # by default the ClusterRole reads nodes (the node syncer watches the host's nodes) and
    # lists ingresses (a host name another Ingress on the host claims is refused); without
    # ingress sync, nodes only
    default = [o for o in manifests("vc", "vkube-vc", {}) if o["kind"] == "ClusterRole"]
    assert [r["resources"] for o in default for r in o["rules"]] == [["nodes"], ["ingresses"]]
    bare = [o for o in manifests("vc", "vkube-vc", {"sync": {"ingresses": {"enabled": False}}})
            if o["kind"] == "ClusterRole"]
    assert [r["resources"] for o in bare for r in o["rules"]] == [["nodes"]]
    role = next(o for o in manifests("vc", "vkube-vc", {"sync": {"ingressclasses": {"enabled": True}}})
                if o["kind"] == "ClusterRole")
    assert {"apiGroups": ["networking.k8s.io"], "resources": ["ingressclasses"],
            "verbs": ["get", "list", "watch"]} in role["rules"]


def test_dns_upstream_flag() -> None:
    from vkube.cli.output import CLIError
    from vkube.cli.serving import dns_upstream

    assert dns_upstream("1.1.1.1") == ("1.1.1.1", 53)
    assert dns_upstream("127.0.0.1:5353") == ("127.0.0.1", 5353)
    assert dns_upstream("[::1]:5353") == ("::1", 5353)
    assert dns_upstream("::1") == ("::1", 53)
    assert dns_upstream("none") is None
    for bad in ("resolver.example", "1.2.3.4:x", "1.2.3.4:70000"):
        with pytest.raises(CLIError, match="--dns-upstream"):
            dns_upstream(bad)
