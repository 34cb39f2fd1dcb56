"""The built-in registry matches what kube-apiserver 1.3x serves."""

from vkube.api.builtin import builtin_registry, storage_version_hash
from vkube.api.kinds_core import PodStrategy


def test_registry_is_new_each_time():
    a, b = builtin_registry(), builtin_registry()
    assert a is not b
    assert a.get("", "v1", "pods").strategy is not b.get("", "v1", "pods").strategy


def test_group_order_follows_discovery():
    groups = list(builtin_registry().groups())
    # the aggregator's group priorities: apiregistration (18200) before apps (17800);
    # authentication (17700), authorization (17600) and autoscaling (17500) come between
    # events.k8s.io (17750) and batch (17400)
    assert groups[:8] == ["", "apiregistration.k8s.io", "apps", "events.k8s.io", "authentication.k8s.io",
                          "authorization.k8s.io", "autoscaling", "batch"]
    assert groups.index("networking.k8s.io") < groups.index("rbac.authorization.k8s.io") < groups.index("discovery.k8s.io")


def test_pods_spec():
    pods = builtin_registry().get("", "v1", "pods")
    assert pods.short_names == ("po",) and pods.categories == ("all",)
    assert pods.namespaced and pods.status_subresource
    assert {"status", "binding", "eviction", "log", "exec", "attach", "portforward", "ephemeralcontainers"} <= set(pods.subresources)
    assert isinstance(pods.strategy, PodStrategy)
    assert pods.strategy.kind == "Pod" and pods.strategy.status_subresource
    assert pods.storage_version_hash == "xPOwRZ+Yhw8="  # as served by real clusters


def test_scopes_short_names_and_scale():
    reg = builtin_registry()
    assert not reg.get("", "v1", "namespaces").namespaced
    assert "deletecollection" not in reg.get("", "v1", "namespaces").verbs
    assert reg.get("", "v1", "persistentvolumeclaims").short_names == ("pvc",)
    assert reg.get("", "v1", "resourcequotas").short_names == ("quota",)
    assert reg.get("batch", "v1", "cronjobs").short_names == ("cj",)
    assert reg.get("", "v1", "endpoints").singular == "endpoints"
    for group, plural in [("apps", "deployments"), ("apps", "replicasets"), ("apps", "statefulsets"), ("", "replicationcontrollers")]:
        assert reg.get(group, "v1", plural).scale is not None
    assert reg.get("apps", "v1", "daemonsets").scale is None
    assert reg.get("apps", "v1", "daemonsets").categories == ("all",)
    assert reg.get("", "v1", "configmaps").categories == ()
    assert reg.by_kind("events.k8s.io", "Event").group == "events.k8s.io"
    assert reg.by_api_version_kind("v1", "Event").group == ""
    assert storage_version_hash("apps", "v1", "Deployment") == "8aSe+NMegvE="
