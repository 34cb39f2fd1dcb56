"""pods/ephemeralcontainers through the official ``kubernetes`` client and raw patches as
kubectl debug sends them: only additions, upstream's 422 wording, RBAC of its own."""

from __future__ import annotations

import asyncio
import json

import pytest
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.rest import ApiException

from vkube.client.resources import PODS

POD = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "namespace": "default"},
       "spec": {"containers": [{"name": "app", "image": "nginx"}],
                "volumes": [{"name": "data", "emptyDir": {}}]}}


def _core(kubeconfig) -> k8s.CoreV1Api:
    return k8s.CoreV1Api(k8s_config.new_client_from_config(config_file=str(kubeconfig)))


def _refused(call) -> dict:
    with pytest.raises(ApiException) as info:
        call()
    assert info.value.status == 422, info.value.body
    return json.loads(info.value.body)


async def test_ephemeral_containers_subresource(control_plane):
    c = control_plane.client()
    await c.create(PODS, POD, namespace="default")
    api = _core(control_plane.kubeconfig)

    def scenario() -> None:
        # GET answers the Pod
        got = api.read_namespaced_pod_ephemeralcontainers("web", "default")
        assert got.kind == "Pod" and not got.spec.ephemeral_containers

        # a strategic merge patch adds one (what kubectl debug sends); defaults applied
        body = {"spec": {"ephemeralContainers": [{
            "name": "dbg", "image": "busybox", "targetContainerName": "app", "stdin": True,
            "tty": True, "resources": {}, "volumeMounts": [{"name": "data", "mountPath": "/d"}],
            "command": ["sh"]}]}}
        pod = api.patch_namespaced_pod_ephemeralcontainers("web", "default", body)
        ec = pod.spec.ephemeral_containers
        assert [e.name for e in ec] == ["dbg"] and ec[0].target_container_name == "app"
        assert ec[0].termination_message_path == "/dev/termination-log"
        assert ec[0].image_pull_policy == "Always"
        assert pod.metadata.generation == 2

        # only spec.ephemeralContainers changes through it: other changes are dropped
        pod.metadata.labels = {"sneaky": "yes"}
        pod.spec.containers[0].image = "evil"
        pod.spec.ephemeral_containers.append(k8s.V1EphemeralContainer(name="dbg2", image="alpine"))
        pod = api.replace_namespaced_pod_ephemeralcontainers("web", "default", pod)
        assert [e.name for e in pod.spec.ephemeral_containers] == ["dbg", "dbg2"]
        assert not pod.metadata.labels and pod.spec.containers[0].image == "nginx"

        # a JSON patch too
        op = [{"op": "add", "path": "/spec/ephemeralContainers/-",
               "value": {"name": "dbg3", "image": "alpine"}}]
        api.api_client.set_default_header("Content-Type", "application/json-patch+json")
        pod = api.patch_namespaced_pod_ephemeralcontainers("web", "default", op)
        assert [e.name for e in pod.spec.ephemeral_containers] == ["dbg", "dbg2", "dbg3"]

        # existing ones may not be removed or changed
        rm = [{"op": "remove", "path": "/spec/ephemeralContainers/0"}]
        st = _refused(lambda: api.patch_namespaced_pod_ephemeralcontainers("web", "default", rm))
        assert st["message"] == ('Pod "web" is invalid: spec.ephemeralContainers: Forbidden: '
                                 'existing ephemeral containers "dbg" may not be removed\n')
        assert st["details"]["causes"][0] == {
            "reason": "FieldValueForbidden", "field": "spec.ephemeralContainers",
            "message": 'Forbidden: existing ephemeral containers "dbg" may not be removed\n'}
        ch = [{"op": "replace", "path": "/spec/ephemeralContainers/1/image", "value": "x"}]
        st = _refused(lambda: api.patch_namespaced_pod_ephemeralcontainers("web", "default", ch))
        assert st["message"].startswith('Pod "web" is invalid: spec.ephemeralContainers: Forbidden: '
                                        'existing ephemeral containers "dbg2" may not be changed\n')

        # what an ephemeral container may not have, a duplicate name, an unknown target
        bad = [{"op": "add", "path": "/spec/ephemeralContainers/-", "value": {
            "name": "app", "image": "busybox", "targetContainerName": "nope",
            "ports": [{"containerPort": 80}], "resources": {"limits": {"cpu": "1"}},
            "readinessProbe": {"exec": {"command": ["true"]}}, "lifecycle": {"preStop": {
                "exec": {"command": ["true"]}}},
            "volumeMounts": [{"name": "data", "mountPath": "/d", "subPath": "x"}]}}]
        st = _refused(lambda: api.patch_namespaced_pod_ephemeralcontainers("web", "default", bad))
        p = "spec.ephemeralContainers[3]"
        assert st["message"] == (
            f'Pod "web" is invalid: [{p}.name: Duplicate value: "app", '
            f'{p}.targetContainerName: Not found: "nope", '
            f"{p}.ports: Forbidden: cannot be set for an Ephemeral Container, "
            f"{p}.resources: Forbidden: cannot be set for an Ephemeral Container, "
            f"{p}.readinessProbe: Forbidden: cannot be set for an Ephemeral Container, "
            f"{p}.lifecycle: Forbidden: cannot be set for an Ephemeral Container, "
            f"{p}.volumeMounts[0].subPath: Forbidden: cannot be set for an Ephemeral Container]")
        api.api_client.default_headers.pop("Content-Type", None)

        # the main resource does not take them, neither on update nor on create
        pod = api.read_namespaced_pod("web", "default")
        pod.spec.ephemeral_containers.append(k8s.V1EphemeralContainer(name="dbg4", image="alpine"))
        st = _refused(lambda: api.replace_namespaced_pod("web", "default", pod))
        assert "spec: Forbidden: pod updates may not change fields" in st["message"]
        fresh = k8s.V1Pod(metadata=k8s.V1ObjectMeta(name="other"), spec=k8s.V1PodSpec(
            containers=[k8s.V1Container(name="a", image="nginx")],
            ephemeral_containers=[k8s.V1EphemeralContainer(name="e", image="busybox")]))
        st = _refused(lambda: api.create_namespaced_pod("default", fresh))
        assert st["message"] == ('Pod "other" is invalid: spec.ephemeralContainers: Forbidden: '
                                 'cannot be set on create')
        # static pods take none
        mirror = k8s.V1Pod(metadata=k8s.V1ObjectMeta(
            name="static", annotations={"kubernetes.io/config.mirror": "x"}),
            spec=k8s.V1PodSpec(containers=[k8s.V1Container(name="a", image="nginx")]))
        api.create_namespaced_pod("default", mirror)
        st = _refused(lambda: api.patch_namespaced_pod_ephemeralcontainers(
            "static", "default", {"spec": {"ephemeralContainers": [{"name": "e", "image": "b"}]}}))
        assert st["details"]["causes"] == [{"reason": "FieldValueForbidden", "message":
                                            "Forbidden: static pods do not support ephemeral containers"}]

    await asyncio.to_thread(scenario)


async def test_ephemeral_containers_is_its_own_rbac_resource(control_plane):
    """`pods` patch does not grant pods/ephemeralcontainers, and the reverse."""
    c = control_plane.client()
    await c.create(PODS, POD, namespace="default")

    async def kctl(*args: str, **kw):  # the server runs on this loop: kubectl on a thread
        return await asyncio.to_thread(control_plane.kubectl, *args, **kw)
    rules = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
             "metadata": {"name": "pods-only", "namespace": "default"},
             "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "patch", "update"]}]}
    await kctl("apply", "-f", "-", input=json.dumps(rules))
    await kctl("create", "rolebinding", "pods-only", "--role=pods-only", "--user=dev")
    can = await kctl("auth", "can-i", "patch", "pods", "--subresource=ephemeralcontainers", "--as=dev",
                                check=False)
    assert can.stdout.strip() == "no"
    refused = await kctl(
        "patch", "pod", "web", "--as=dev", "--subresource=ephemeralcontainers", "-p",
        '{"spec":{"ephemeralContainers":[{"name":"d","image":"busybox"}]}}', check=False)
    assert refused.returncode != 0
    assert ('pods "web" is forbidden: User "dev" cannot get resource "pods/ephemeralcontainers" '
            'in API group "" in the namespace "default"') in refused.stderr
    rules["rules"][0]["resources"] = ["pods/ephemeralcontainers"]
    await kctl("apply", "-f", "-", input=json.dumps(rules))
    out = await kctl(
        "patch", "pod", "web", "--as=dev", "--subresource=ephemeralcontainers", "-p",
        '{"spec":{"ephemeralContainers":[{"name":"d","image":"busybox"}]}}')
    assert "patched" in out.stdout


async def test_pod_security_judges_a_new_ephemeral_container(control_plane):
    """Pod Security admission checks pods/ephemeralcontainers updates (upstream's
    isSignificantPodUpdate): kubectl debug's default profile adds SYS_PTRACE, which baseline
    forbids."""
    c = control_plane.client()
    await c.create(PODS, POD, namespace="default")
    api = _core(control_plane.kubeconfig)

    def scenario() -> None:
        api.patch_namespace("default", {"metadata": {"labels": {
            "pod-security.kubernetes.io/enforce": "baseline"}}})
        ptrace = {"spec": {"ephemeralContainers": [{
            "name": "dbg", "image": "busybox",
            "securityContext": {"capabilities": {"add": ["SYS_PTRACE"]}}}]}}
        with pytest.raises(ApiException) as info:
            api.patch_namespaced_pod_ephemeralcontainers("web", "default", ptrace)
        assert info.value.status == 403, info.value.body
        assert json.loads(info.value.body)["message"] == (
            'pods "web" is forbidden: violates PodSecurity "baseline:latest": non-default '
            'capabilities (container "dbg" must not include "SYS_PTRACE" in '
            "securityContext.capabilities.add)")
        plain = {"spec": {"ephemeralContainers": [{"name": "dbg", "image": "busybox"}]}}
        pod = api.patch_namespaced_pod_ephemeralcontainers("web", "default", plain)
        assert [e.name for e in pod.spec.ephemeral_containers] == ["dbg"]

    await asyncio.to_thread(scenario)


async def test_pod_templates_take_no_ephemeral_containers(control_plane):
    from vkube.api import errors
    from vkube.client.resources import DEPLOYMENTS

    c = control_plane.client()
    dep = {"apiVersion": "apps/v1", "kind": "Deployment",
           "metadata": {"name": "d", "namespace": "default"},
           "spec": {"selector": {"matchLabels": {"a": "b"}}, "template": {
               "metadata": {"labels": {"a": "b"}},
               "spec": {"containers": [{"name": "c", "image": "nginx"}],
                        "ephemeralContainers": [{"name": "e", "image": "busybox"}]}}}}
    with pytest.raises(errors.Invalid) as info:
        await c.create(DEPLOYMENTS, dep, namespace="default")
    assert str(info.value) == ('Deployment.apps "d" is invalid: spec.template.spec.ephemeralContainers: '
                               'Forbidden: ephemeral containers not allowed in pod template')
