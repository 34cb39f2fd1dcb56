"""Isolation's pure parts: values, the host objects (exact defaults), the syncer's Pod Security
and registry admission, forced placement."""

from __future__ import annotations

import pytest

from vkube.syncer.admission import PodAdmission, normalize_image
from vkube.syncer.isolation import PRIVATE, QUOTA, host_api_peers, network_policies, quota_hard
from vkube.syncer.podrewrite import PodRewriteConfig, force_placement
from vkube.syncer.translate import Translator
from vkube.syncer.values import ValuesError, load_values

ISSUE_QUOTA = {  # issue 16, verbatim
    "count/configmaps": "100", "count/endpoints": "40", "count/persistentvolumeclaims": "20",
    "count/pods": "20", "count/secrets": "100", "count/services": "20", "limits.cpu": "20",
    "limits.ephemeral-storage": "160Gi", "limits.memory": "40Gi", "requests.cpu": "10",
    "requests.ephemeral-storage": "60Gi", "requests.memory": "20Gi",
    "requests.storage": "100Gi", "services.loadbalancers": "1", "services.nodeports": "0"}


def pod(spec: dict, name: str = "p") -> dict:
    return {"metadata": {"name": name, "namespace": "default"}, "spec": spec}


def test_quota_defaults_and_overrides():
    iso = load_values("isolation: {enabled: true}").isolation
    assert quota_hard(iso) == ISSUE_QUOTA == QUOTA
    iso = load_values("isolation: {enabled: true, resourceQuota: {cpu: '4', memory: 8Gi}}"
                      ).isolation
    hard = quota_hard(iso)
    assert (hard["limits.cpu"], hard["requests.cpu"]) == ("4", "2")
    assert (hard["limits.memory"], hard["requests.memory"]) == ("8Gi", "4Gi")
    assert {k: v for k, v in hard.items() if "cpu" not in k and "memory" not in k} == \
        {k: v for k, v in ISSUE_QUOTA.items() if "cpu" not in k and "memory" not in k}
    hard = quota_hard(load_values("isolation: {resourceQuota: {cpu: 500m}}").isolation)
    assert (hard["limits.cpu"], hard["requests.cpu"]) == ("500m", "250m")


@pytest.mark.parametrize("doc, words", [
    ("isolation: {resourceQuota: {cpu: lots}}", "isolation.resourceQuota.cpu"),
    ("isolation: {resourceQuota: {memory: '-1Gi'}}", "isolation.resourceQuota.memory"),
    ("isolation: {nodeSelector: dedicated}", "isolation.nodeSelector"),
    ("isolation: {tolerations: [{key: a, operator: Exists, value: b}]}",
     "isolation.tolerations[0].value"),
    ("isolation: {tolerations: [{operator: Equal}]}", "isolation.tolerations[0].key"),
    ("isolation: {tolerations: [{key: a, effect: Sometimes}]}", "isolation.tolerations[0].effect"),
    ("isolation: {podSecurityStandard: strict}", "isolation.podSecurityStandard"),
    ("isolation: {allowedRegistries: ['']}", "isolation.allowedRegistries[0]"),
])
def test_bad_isolation_values_name_the_key(doc, words):
    with pytest.raises(ValuesError, match=words.replace("[", r"\[").replace("]", r"\]")):
        load_values(doc)


def test_network_policies_exact():
    api = {"subsets": [{"addresses": [{"ip": "192.168.1.5"}],
                        "ports": [{"name": "https", "port": 6443, "protocol": "TCP"}]}]}
    workloads, control = network_policies("a", {"vkube.io/managed-by": "a"},
                                          api_peers=host_api_peers(api))
    dns = [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]
    kube_system = {"namespaceSelector": {"matchLabels": {
        "kubernetes.io/metadata.name": "kube-system"}}}
    cp = {"app.kubernetes.io/name": "vkube", "app.kubernetes.io/instance": "a"}
    assert control["spec"] == {
        "podSelector": {"matchLabels": cp}, "policyTypes": ["Egress"],
        "egress": [{"to": [kube_system], "ports": dns},
                   {"to": [{"ipBlock": {"cidr": "192.168.1.5/32"}}],
                    "ports": [{"protocol": "TCP", "port": 6443}]}]}
    assert workloads["spec"] == {
        "podSelector": {"matchLabels": {"vkube.io/managed-by": "a"}}, "policyTypes": ["Egress"],
        "egress": [{"to": [{"podSelector": {"matchLabels": cp}}]},
                   {"to": [kube_system], "ports": dns},
                   {"to": [{"podSelector": {"matchLabels": {"vkube.io/managed-by": "a"}}}]},
                   {"to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": [
                       "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10",
                       "127.0.0.0/8", "169.254.0.0/16", "168.63.129.16/32", "192.0.0.192/32"]}}]}]}
    assert PRIVATE == ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10",
                       "127.0.0.0/8", "169.254.0.0/16", "168.63.129.16/32", "192.0.0.192/32"]


def test_pod_security_baseline_names_every_check():
    adm = PodAdmission(load_values("isolation: {enabled: true}"))
    bad = pod({"hostNetwork": True, "containers": [{
        "name": "c", "image": "x", "securityContext": {
            "privileged": True, "capabilities": {"add": ["NET_ADMIN"]}}}],
        "volumes": [{"name": "h", "hostPath": {"path": "/"}}]})
    msg = adm.check(bad)
    assert msg is not None and msg.startswith('violates PodSecurity "baseline:latest": ')
    for words in ('host namespaces (hostNetwork=true)',
                  'privileged (container "c" must not set securityContext.privileged=true)',
                  'hostPath volumes (volume "h")',
                  'non-default capabilities (container "c" must not include "NET_ADMIN" in '
                  'securityContext.capabilities.add)'):
        assert words in msg
    assert adm.check(pod({"containers": [{"name": "c", "image": "nginx"}]})) is None


def test_pod_security_restricted_and_off():
    plain = pod({"containers": [{"name": "c", "image": "nginx"}]})
    msg = PodAdmission(load_values(
        "isolation: {enabled: true, podSecurityStandard: restricted}")).check(plain)
    assert msg is not None and 'violates PodSecurity "restricted:latest"' in msg
    assert "allowPrivilegeEscalation != false" in msg and "runAsNonRoot != true" in msg
    priv = pod({"containers": [{"name": "c", "image": "x",
                                "securityContext": {"privileged": True}}]})
    # no isolation: only sync.pods.hostAccess (reject: Pod Security baseline's host access)
    assert "host access is not allowed" in PodAdmission(load_values("")).check(priv)
    allow = load_values("sync: {pods: {hostAccess: allow}}")
    assert PodAdmission(allow).check(priv) is None


@pytest.mark.parametrize("image, ref", [
    ("nginx", "docker.io/library/nginx"), ("nginx:1.27", "docker.io/library/nginx"),
    ("acme/app:1", "docker.io/acme/app"), ("ghcr.io/acme/app@sha256:ab", "ghcr.io/acme/app"),
    ("localhost:5000/app:2", "localhost:5000/app"), ("index.docker.io/x/y", "docker.io/x/y"),
])
def test_normalize_image(image, ref):
    assert normalize_image(image) == ref


def test_allowed_registries():
    adm = PodAdmission(load_values("isolation: {allowedRegistries: [docker.io, ghcr.io/acme]}"))
    assert adm.image_allowed("nginx") and adm.image_allowed("ghcr.io/acme/app:1")
    assert not adm.image_allowed("ghcr.io/acmeevil/app") and not adm.image_allowed("quay.io/x")
    msg = adm.check(pod({"initContainers": [{"name": "i", "image": "quay.io/x/y"}],
                         "containers": [{"name": "c", "image": "nginx"}]}))
    assert msg == ('image registry not allowed (container "i" image "quay.io/x/y"; allowed: '
                   'docker.io, ghcr.io/acme)')


def test_force_placement_overrides_the_tenant():
    values = load_values("isolation: {runtimeClassName: gvisor, nodeSelector: 'pool=tenant-a', "
                         "tolerations: [{key: dedicated, value: tenant-a, effect: NoSchedule}]}")
    from vkube.syncer.pods import _tolerations
    cfg = PodRewriteConfig(translator=Translator("a", "vkube-a"), host_service_account="sa",
                           token_secret=None, node_selector=values.node_selector(),
                           runtime_class_name=values.isolation.runtime_class_name,
                           tolerations=_tolerations(values))
    spec = {"runtimeClassName": "runc-unsafe", "nodeSelector": {"pool": "shared", "disk": "ssd"},
            "tolerations": [{"operator": "Exists"}]}
    force_placement(spec, cfg)
    assert spec["runtimeClassName"] == "gvisor"
    assert spec["nodeSelector"] == {"pool": "tenant-a", "disk": "ssd"}
    assert spec["tolerations"] == [{"operator": "Exists"}, {
        "operator": "Equal", "key": "dedicated", "value": "tenant-a", "effect": "NoSchedule"}]


def test_tenant_egress_ip_blocks_lose_private_ranges():
    from vkube.syncer.isolation import public_only
    from vkube.syncer.networkpolicies import translate_policy_spec
    tr = Translator("a", "vkube-a")
    spec = {"podSelector": {}, "policyTypes": ["Egress"], "egress": [
        {"to": [{"ipBlock": {"cidr": "10.0.0.0/8"}}]},  # wholly private: the rule goes
        {"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}], "ports": [{"port": 443}]},
        {"to": [{"ipBlock": {"cidr": "8.8.8.0/24"}}, {"ipBlock": {"cidr": "10.1.2.3/32"}}]},
        {"to": [{"podSelector": {}}]}]}
    out = translate_policy_spec(tr, spec, "default", isolated=True)
    assert out["egress"][0] == {"to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": PRIVATE}}],
                                "ports": [{"port": 443}]}
    assert out["egress"][1] == {"to": [{"ipBlock": {"cidr": "8.8.8.0/24"}}]}
    assert "podSelector" in out["egress"][2]["to"][0]
    assert len(out["egress"]) == 3
    assert translate_policy_spec(tr, spec, "default")["egress"][0]["to"][0]["ipBlock"] == {
        "cidr": "10.0.0.0/8"}  # no isolation: as written
    assert public_only({"ipBlock": {"cidr": "172.0.0.0/8", "except": ["172.16.0.0/12"]}}) == {
        "ipBlock": {"cidr": "172.0.0.0/8", "except": ["172.16.0.0/12"]}}


def test_pods_with_resource_claims_are_refused_not_stripped():
    """The host pod would run without its devices: refused by name, never silently dropped."""
    adm = PodAdmission(load_values(""))
    msg = adm.check(pod({"containers": [{"name": "c", "image": "x"}],
                         "resourceClaims": [{"name": "gpu", "resourceClaimTemplateName": "t"}]}))
    assert msg is not None and msg.startswith("spec.resourceClaims: dynamic resource allocation is not synced")
    assert adm.check(pod({"containers": [{"name": "c", "image": "x"}]})) is None


def test_address_guard_never_lets_the_node_itself_down():
    """Endpoints stored before the API server refused special addresses (or written past it)
    never reach the host with one, isolated or not."""
    from types import SimpleNamespace

    from vkube.syncer.isolation import AddressGuard

    ctx = SimpleNamespace(values=SimpleNamespace(isolation=SimpleNamespace(enabled=False)),
                          kube_service_host="")
    guard = AddressGuard(ctx)  # type: ignore[arg-type]
    assert guard.refused(["127.0.0.1", "0.0.0.0", "::1", "169.254.169.254", "fe80::1",
                          "::ffff:127.0.0.1", "10.0.0.1", "8.8.8.8"]) == [
        "127.0.0.1", "0.0.0.0", "::1", "169.254.169.254", "fe80::1", "::ffff:127.0.0.1"]

