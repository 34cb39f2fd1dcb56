"""The syncer's host grants follow its values: nothing cluster-scoped beyond reading nodes unless
a feature asks for it, custom resources only for the kinds synced, and render emits exactly
what ``create`` applies."""

from __future__ import annotations

from vkube.cli import render
from vkube.syncer.hostrbac import guess_plural, host_rbac, manifests


def _resources(rules: list[dict]) -> set[tuple[str, str]]:
    return {(g, r) for rule in rules for g in rule["apiGroups"] for r in rule["resources"]}


def test_defaults_stay_in_the_host_namespace():
    rbac = host_rbac({}, "vkube-a")
    assert rbac.cluster == [{"apiGroups": [""], "resources": ["nodes"],
                             "verbs": ["get", "list", "watch"]},
                            # a host name another tenant's Ingress claims is refused
                            {"apiGroups": ["networking.k8s.io"], "resources": ["ingresses"],
                             "verbs": ["list"]}]
    assert rbac.elsewhere == {}
    have = _resources(rbac.namespaced)
    for want in [("", "pods"), ("", "pods/log"), ("", "pods/exec"), ("", "pods/portforward"),
                 ("", "services"), ("", "endpoints"), ("", "secrets"), ("", "resourcequotas"),
                 ("", "limitranges"), ("networking.k8s.io", "networkpolicies"),
                 ("coordination.k8s.io", "leases"), ("metrics.k8s.io", "pods")]:
        assert want in have, want
    assert not any(r.get("resourceNames") for r in rbac.namespaced)
    assert all("*" not in r["verbs"] and "*" not in r["resources"] for r in rbac.namespaced)


def test_cluster_grants_only_for_enabled_features():
    values = {"sync": {"storageclasses": {"enabled": True}, "persistentvolumes": {"enabled": True},
                       "priorityclasses": {"enabled": True}, "ingressclasses": {"enabled": True}},
              "isolation": {"enabled": True}}
    rbac = host_rbac(values, "vkube-a")
    have = _resources(rbac.cluster)
    assert {("storage.k8s.io", "storageclasses"), ("", "persistentvolumes"),
            ("scheduling.k8s.io", "priorityclasses"), ("networking.k8s.io", "ingressclasses"),
            ("", "namespaces"), ("", "nodes"), ("networking.k8s.io", "ingresses")} == have
    ns_rule = next(r for r in rbac.cluster if r["resources"] == ["namespaces"])
    assert ns_rule["resourceNames"] == ["vkube-a"] and ns_rule["verbs"] == ["get", "patch"]
    ic = next(r for r in rbac.cluster if r["resources"] == ["ingressclasses"])
    assert ic["verbs"] == ["get", "list", "watch"]
    # isolation's network policy reads exactly the host API's endpoints in default
    assert rbac.elsewhere == {"default": [{"apiGroups": [""], "resources": ["endpoints"],
                                           "resourceNames": ["kubernetes"], "verbs": ["get"]}]}


def test_custom_resources_only_the_synced_kinds():
    values = {"sync": {"toHost": {"customResources": {"Widget.example.com": {"enabled": True},
                                                      "Policy.example.com": {"enabled": False}}},
                       "fromHost": {"customResources": {"Gadget.tools.io": {"enabled": True}}}}}
    guessed = host_rbac(values, "vkube-a")
    assert ("example.com", "widgets") in _resources(guessed.namespaced)
    assert ("example.com", "policies") not in _resources(guessed.namespaced + guessed.cluster)
    assert ("tools.io", "gadgets") in _resources(guessed.cluster)
    crd = next(r for r in guessed.cluster if r["resources"] == ["customresourcedefinitions"])
    assert crd["resourceNames"] == ["gadgets.tools.io"] and crd["verbs"] == ["get"]
    # what the host serves wins over the guess; a cluster-scoped kind goes to the ClusterRole
    known = host_rbac(values, "vkube-a", {"Widget.example.com": ("widgetz", False)})
    assert ("example.com", "widgetz") in _resources(known.cluster)
    assert ("example.com", "widgetz") not in _resources(known.namespaced)


def test_node_metrics_only_with_real_nodes():
    assert ("metrics.k8s.io", "nodes") not in _resources(host_rbac({}, "vkube-a").cluster)
    real = host_rbac({"sync": {"nodes": {"enabled": True}}}, "vkube-a")
    assert ("metrics.k8s.io", "nodes") in _resources(real.cluster)


def test_mapped_host_services_read_only_in_their_namespace():
    values = {"mapServices": {"fromHost": [{"from": "shared/db", "to": "default/db"},
                                           {"from": "shared/cache", "to": "default/cache"},
                                           {"from": "vkube-a/x", "to": "default/x"}]}}
    rbac = host_rbac(values, "vkube-a")
    assert rbac.elsewhere == {"shared": [{"apiGroups": [""], "resources": ["services", "endpoints"],
                                          "verbs": ["get", "list", "watch"]}]}


def test_guess_plural():
    assert [guess_plural(k) for k in ("Widget", "Policy", "Ingress", "Gateway")] == \
        ["widgets", "policies", "ingresses", "gateways"]


def test_render_emits_the_same_rules():
    values = {"sync": {"storageclasses": {"enabled": True}},
              "mapServices": {"fromHost": [{"from": "shared/db", "to": "default/db"}]}}
    objs = render.manifests("a", "vkube-a", values)
    by = {(o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]): o for o in objs}
    rbac = host_rbac(values, "vkube-a")
    assert by[("Role", "vkube-a", "vkube-a")]["rules"] == rbac.namespaced
    assert by[("ClusterRole", None, "vkube-vkube-a.a")]["rules"] == rbac.cluster
    assert by[("Role", "shared", "vkube-vkube-a.a")]["rules"] == rbac.elsewhere["shared"]
    binding = by[("RoleBinding", "shared", "vkube-vkube-a.a")]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "apiGroup": "", "name": "vkube-a",
                                    "namespace": "vkube-a"}]
    ours = manifests("a", "vkube-a", rbac, render._labels("a"))
    assert all(o in objs for o in ours)


def test_cluster_scoped_names_are_one_per_cluster():
    """``b`` in ``vkube-a-x`` and ``x-b`` in ``vkube-a`` once shared ``vkube-vkube-a-x-b``: a
    cluster's create, upgrade or delete overwrote or removed the other's grants."""
    from vkube.syncer.hostrbac import cluster_role_name, legacy_cluster_role_name
    one, two = ("b", "vkube-a-x"), ("x-b", "vkube-a")
    assert legacy_cluster_role_name(*one) == legacy_cluster_role_name(*two)  # the fault
    assert cluster_role_name(*one) == "vkube-vkube-a-x.b"
    assert cluster_role_name(*two) == "vkube-vkube-a.x-b"
    pairs = [(n, ns) for n in ("b", "x-b", "a-x-b", "x") for ns in ("vkube-a", "vkube-a-x", "a")]
    names = [cluster_role_name(*p) for p in pairs]
    assert len(set(names)) == len(pairs)
    assert not set(names) & {legacy_cluster_role_name(*p) for p in pairs}
    for n, ns in pairs:  # every object the manifests name outside the host namespace
        objs = manifests(n, ns, host_rbac({"mapServices": {"fromHost": [
            {"from": "shared/db", "to": "default/db"}]}}, ns), render._labels(n))
        assert {o["metadata"]["name"] for o in objs
                if o["metadata"].get("namespace") != ns} == {cluster_role_name(n, ns)}


def test_a_former_name_is_removed_only_when_provably_this_clusters():
    from vkube.syncer.hostrbac import legacy_cluster_role_name, owns
    shared = legacy_cluster_role_name("b", "vkube-a-x")  # == x-b's in vkube-a

    def made_by(n: str, ns: str) -> list[dict]:  # what an earlier version applied
        objs = manifests(n, ns, host_rbac({}, ns), render._labels(n))
        out = []
        for o in objs:
            if o["kind"] in ("ClusterRole", "ClusterRoleBinding"):
                o = {**o, "metadata": {**o["metadata"], "name": shared}}
                if "roleRef" in o:
                    o["roleRef"] = {**o["roleRef"], "name": shared}
                out.append(o)
        return out
    for obj in made_by("x-b", "vkube-a"):  # x-b applied last: the objects are x-b's
        assert owns(obj, "x-b", "vkube-a")
        assert not owns(obj, "b", "vkube-a-x")
        bare = {k: v for k, v in obj.items() if k != "kind"}  # as list items come
        assert owns(bare, "x-b", "vkube-a") and not owns(bare, "b", "vkube-a-x")
    for obj in made_by("b", "vkube-a-x"):
        assert owns(obj, "b", "vkube-a-x") and not owns(obj, "x-b", "vkube-a")
    # a binding relabelled by hand but granting another account is not this cluster's
    binding = made_by("b", "vkube-a-x")[1]
    binding["subjects"] = [{**binding["subjects"][0], "namespace": "elsewhere"}]
    assert not owns(binding, "b", "vkube-a-x")
    # an object with the name but not the labels (someone else's) is never ours
    role = made_by("b", "vkube-a-x")[0]
    role["metadata"]["labels"] = {}
    assert not owns(role, "b", "vkube-a-x")
