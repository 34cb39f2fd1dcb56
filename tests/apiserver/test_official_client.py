"""The official ``kubernetes`` Python client lists, creates, patches and watches, with resume."""

from __future__ import annotations

import asyncio

import kubernetes
import pytest


def api_client(kubeconfig: str) -> kubernetes.client.ApiClient:
    """The client as users configure it: from the kubeconfig (embedded CA and client cert)."""
    cfg = kubernetes.client.Configuration()
    kubernetes.config.load_kube_config(config_file=str(kubeconfig), client_configuration=cfg)
    return kubernetes.client.ApiClient(cfg)


def _scenario(url: str) -> None:
    with api_client(url) as api:
        core = kubernetes.client.CoreV1Api(api)
        apps = kubernetes.client.AppsV1Api(api)
        version = kubernetes.client.VersionApi(api).get_code()
        assert version.major == "1"
        created = core.create_namespaced_config_map(
            "default", kubernetes.client.V1ConfigMap(metadata=kubernetes.client.V1ObjectMeta(name="py", labels={"a": "1"}),
                                                     data={"k": "v"}))
        rv0 = created.metadata.resource_version
        patched = core.patch_namespaced_config_map("py", "default", {"data": {"k2": "v2"}})
        assert patched.data == {"k": "v", "k2": "v2"}
        assert int(patched.metadata.resource_version) > int(rv0)
        listed = core.list_namespaced_config_map("default", label_selector="a=1")
        assert [c.metadata.name for c in listed.items] == ["py"]
        # watch from the create's resourceVersion: exactly the later MODIFIED, then our delete
        core.delete_namespaced_config_map("py", "default")
        w = kubernetes.watch.Watch()
        events = []
        for ev in w.stream(core.list_namespaced_config_map, "default", resource_version=rv0, timeout_seconds=2):
            if ev["object"].metadata.name == "py":
                events.append(ev["type"])
            if len(events) == 2:
                w.stop()
        assert events == ["MODIFIED", "DELETED"]
        dep = apps.create_namespaced_deployment("default", {
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "d"}},
                     "template": {"metadata": {"labels": {"app": "d"}},
                                  "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}})
        assert dep.spec.strategy.type == "RollingUpdate" and dep.metadata.generation == 1
        scaled = apps.patch_namespaced_deployment_scale("d", "default", {"spec": {"replicas": 4}})
        assert scaled.spec.replicas == 4
        again = apps.read_namespaced_deployment("d", "default")
        assert again.spec.replicas == 4 and again.metadata.generation == 2
        with pytest.raises(kubernetes.client.ApiException) as err:
            core.read_namespaced_config_map("py", "default")
        assert err.value.status == 404


async def test_official_client_scenario(control_plane):
    await asyncio.to_thread(_scenario, control_plane.kubeconfig)
