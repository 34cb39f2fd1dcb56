"""Integer fields hold what their Go types hold: a number out of an ``int32``/``int64`` field's
range, or not whole, is kube-apiserver's 400 while decoding (``json: cannot unmarshal number
2147483648 into Go struct field ScaleSpec.spec.replicas of type int32``) on create, update,
every patch type and the scale subresource; a Scale names the URL's object; a custom resource
the scale subresource cannot read is upstream's accessor error, never a Python message."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import kubernetes
import pytest

from vkube.api import openapi_convert as conv
from vkube.api.typecheck import describe, type_errors

DEPLOY = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: d1, namespace: default}
spec:
  replicas: 1
  selector: {matchLabels: {app: d1}}
  template:
    metadata: {labels: {app: d1}}
    spec: {containers: [{name: c, image: nginx}]}
"""
GO = "json: cannot unmarshal number"


def _schema(group: str, version: str, kind: str) -> dict[str, Any]:
    return conv.builtin_resolver().definition(conv.gvk_index()[(group, version, kind)]) or {}


@pytest.mark.parametrize("kind,obj,message", [
    (("apps", "v1", "Deployment"), {"spec": {"replicas": 2147483648}},
     f"{GO} 2147483648 into Go struct field DeploymentSpec.spec.replicas of type int32"),
    (("apps", "v1", "Deployment"), {"spec": {"revisionHistoryLimit": 99999999999999}},
     f"{GO} 99999999999999 into Go struct field DeploymentSpec.spec.revisionHistoryLimit of type int32"),
    (("apps", "v1", "Deployment"), {"spec": {"replicas": 1.5}},
     f"{GO} 1.5 into Go struct field DeploymentSpec.spec.replicas of type int32"),
    (("batch", "v1", "Job"), {"spec": {"parallelism": 1099511627776}},
     f"{GO} 1099511627776 into Go struct field JobSpec.spec.parallelism of type int32"),
    (("", "v1", "Pod"), {"spec": {"containers": [{"name": "c", "ports": [{"containerPort": -2147483649}]}]}},
     f"{GO} -2147483649 into Go struct field ContainerPort.spec.containers.ports.containerPort of type int32"),
    (("", "v1", "ConfigMap"), {"metadata": {"generation": 2**63}},
     f"{GO} 9223372036854775808 into Go struct field ObjectMeta.metadata.generation of type int64"),
    (("autoscaling", "v1", "Scale"), {"spec": {"replicas": 2**31}},
     f"{GO} 2147483648 into Go struct field ScaleSpec.spec.replicas of type int32"),
])
def test_out_of_range_numbers_are_go_decoding_errors(kind, obj, message):
    assert describe(type_errors(obj, _schema(*kind))) == message


def test_numbers_in_range_pass():
    ok = {"metadata": {"generation": 2**63 - 1},
          "spec": {"replicas": 2147483647, "progressDeadlineSeconds": -2147483648, "minReadySeconds": 3.0}}
    assert type_errors(ok, _schema("apps", "v1", "Deployment")) == []


def _fails(cp, *args: str, input: str | None = None) -> str:
    proc = cp.kubectl(*args, input=input, check=False)
    assert proc.returncode != 0, proc.stdout
    return proc.stderr


async def test_kubectl_refuses_out_of_range_values_everywhere(control_plane):
    cp = control_plane

    def scenario() -> None:
        cp.kubectl("apply", "-f", "-", input=DEPLOY)
        # a patched object Go cannot decode is the patcher's 422 on the field "patch"
        err = _fails(cp, "patch", "deploy", "d1", "--subresource=scale", "-p", '{"spec":{"replicas":2147483648}}')
        assert ("The request is invalid: patch: Invalid value: \"map[spec:map[replicas:2.147483648e+09]]\": "
                "json: cannot unmarshal number 2147483648 into Go struct field ScaleSpec.spec.replicas of type int32"
                ) in err, err
        for ptype, patch in [("merge", '{"spec":{"revisionHistoryLimit":99999999999999}}'),
                             ("strategic", '{"spec":{"revisionHistoryLimit":99999999999999}}'),
                             ("json", '[{"op":"replace","path":"/spec/replicas","value":4294967296}]')]:
            err = _fails(cp, "patch", "deploy", "d1", "--type", ptype, "-p", patch)
            assert "The request is invalid: patch: Invalid value: " in err, err
            assert "json: cannot unmarshal number" in err and "of type int32" in err, err
            if ptype != "strategic":  # the patched object's JSON, as the jsonPatcher quotes it
                assert '\\"kind\\":\\"Deployment\\"' in err, err
        # the same class: a string where an int belongs
        err = _fails(cp, "patch", "deploy", "d1", "--type=merge", "-p", '{"spec":{"replicas":"two"}}')
        assert "The request is invalid: patch: Invalid value: " in err, err
        assert "json: cannot unmarshal string into Go struct field DeploymentSpec.spec.replicas of type int32" in err, err
        scale = {"apiVersion": "autoscaling/v1", "kind": "Scale", "metadata": {"name": "d1", "namespace": "default"},
                 "spec": {"replicas": 99999999999999}}
        err = _fails(cp, "replace", "--raw", "/apis/apps/v1/namespaces/default/deployments/d1/scale", "-f", "-",
                     input=json.dumps(scale))
        assert "ScaleSpec.spec.replicas of type int32" in err
        err = _fails(cp, "apply", "--server-side", "-f", "-",
                     input=DEPLOY.replace("replicas: 1", "replicas: 2147483648"))
        assert "DeploymentSpec.spec.replicas of type int32" in err
        job = ("apiVersion: batch/v1\nkind: Job\nmetadata: {name: j1}\nspec:\n  parallelism: 1099511627776\n"
               "  template:\n    spec:\n      restartPolicy: Never\n      containers: [{name: c, image: busybox}]\n")
        err = _fails(cp, "create", "-f", "-", input=job)
        assert "JobSpec.spec.parallelism of type int32" in err
        dep = json.loads(cp.kubectl("get", "deploy", "d1", "-o", "json").stdout)
        assert dep["spec"]["replicas"] == 1 and dep["spec"]["revisionHistoryLimit"] == 10
        # a Scale for another object (or namespace) than the URL's is refused
        scale["spec"]["replicas"], scale["metadata"]["name"] = 2, "other"
        err = _fails(cp, "replace", "--raw", "/apis/apps/v1/namespaces/default/deployments/d1/scale", "-f", "-",
                     input=json.dumps(scale))
        assert "the name of the object (other) does not match the name on the URL (d1)" in err
        scale["metadata"].update(name="d1", namespace="elsewhere")
        err = _fails(cp, "replace", "--raw", "/apis/apps/v1/namespaces/default/deployments/d1/scale", "-f", "-",
                     input=json.dumps(scale))
        assert "the namespace of the provided object does not match the namespace sent on the request" in err
        err = _fails(cp, "patch", "deploy", "d1", "--subresource=scale", "-p", '{"metadata":{"name":"x"}}')
        assert "the name of the object (x) does not match the name on the URL (d1)" in err
        assert json.loads(cp.kubectl("get", "deploy", "d1", "-o", "json").stdout)["spec"]["replicas"] == 1
        cp.kubectl("scale", "deploy", "d1", "--replicas=2147483647")  # the largest int32 is fine

    await asyncio.to_thread(scenario)


async def test_official_client_gets_422_for_patches_400_for_bodies(control_plane):
    cp = control_plane

    def scenario() -> None:
        cp.kubectl("apply", "-f", "-", input=DEPLOY)
        cfg = kubernetes.client.Configuration()
        kubernetes.config.load_kube_config(config_file=str(cp.kubeconfig), client_configuration=cfg)
        with kubernetes.client.ApiClient(cfg) as api:
            apps = kubernetes.client.AppsV1Api(api)
            statuses: list[int] = []
            for call in (lambda: apps.patch_namespaced_deployment_scale("d1", "default", {"spec": {"replicas": 2**31}}),
                         lambda: apps.patch_namespaced_deployment("d1", "default", {"spec": {"minReadySeconds": 2**40}}),
                         lambda: apps.replace_namespaced_deployment_scale("d1", "default", {
                             "metadata": {"name": "d1"}, "spec": {"replicas": 2**46}})):
                with pytest.raises(kubernetes.client.ApiException) as exc:
                    call()
                body = json.loads(exc.value.body)
                statuses.append(exc.value.status)
                assert "of type int32" in body["message"], body
                if exc.value.status == 422:  # a patch: NewInvalid(GroupKind{}, "", ...) starts with a space
                    assert body["reason"] == "Invalid" and body["message"].startswith(' "" is invalid: patch: '), body
                    assert [c["field"] for c in body["details"]["causes"]] == ["patch"], body
                else:  # a PUT body: the decoder's 400
                    assert (exc.value.status, body["reason"]) == (400, "BadRequest"), body
            assert statuses == [422, 422, 400]
            # an unknown field under fieldValidation=Strict: the patcher's 422 too (kubectl patch
            # sends no fieldValidation, so it only warns)
            with pytest.raises(kubernetes.client.ApiException) as exc:
                apps.patch_namespaced_deployment("d1", "default", {"spec": {"replica": 2}}, field_validation="Strict")
            body = json.loads(exc.value.body)
            assert (exc.value.status, body["reason"]) == (422, "Invalid"), body
            assert body["message"] == (' "" is invalid: patch: Invalid value: "map[spec:map[replica:2]]": '
                                       'strict decoding error: unknown field "spec.replica"'), body
            assert apps.read_namespaced_deployment_scale("d1", "default").spec.replicas == 1

    await asyncio.to_thread(scenario)


CRD = {
    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {"name": "loose.ex.com"},
    "spec": {"group": "ex.com", "scope": "Namespaced",
             "names": {"plural": "loose", "singular": "loose", "kind": "Loose"},
             "versions": [{"name": "v1", "served": True, "storage": True,
                           "subresources": {"scale": {"specReplicasPath": ".spec.replicas",
                                                      "statusReplicasPath": ".status.replicas",
                                                      "labelSelectorPath": ".status.selector"}},
                           "schema": {"openAPIV3Schema": {"type": "object",
                                                          "x-kubernetes-preserve-unknown-fields": True}}}]},
}


async def test_custom_resource_scale_reads_like_upstream(control_plane):
    cp = control_plane

    def cr(name: str, **fields: Any) -> str:
        return json.dumps({"apiVersion": "ex.com/v1", "kind": "Loose", "metadata": {"name": name}, **fields})

    def scenario() -> None:
        cp.kubectl("apply", "-f", "-", input=json.dumps(CRD))
        cp.kubectl("wait", "--for=condition=Established", "crd/loose.ex.com")
        cp.kubectl("create", "-f", "-", input=cr("s", spec="foo"))
        cp.kubectl("create", "-f", "-", input=cr("l", spec=[1]))
        cp.kubectl("create", "-f", "-", input=cr("m", spec={"replicas": "many"}, status={"selector": [1, 2]}))
        cp.kubectl("create", "-f", "-", input=cr("sel", spec={"replicas": 1}, status={"selector": [1, 2]}))
        cp.kubectl("create", "-f", "-", input=cr("ok", spec={"replicas": 1}, status={"selector": "a=b"}))
        cases = {
            "s": ".spec.replicas accessor error: foo is of the type string, expected map[string]interface{}",
            "l": ".spec.replicas accessor error: [1] is of the type []interface {}, expected map[string]interface{}",
            "m": ".spec.replicas accessor error: many is of the type string, expected int64",
            "sel": ".status.selector accessor error: [1 2] is of the type []interface {}, expected string",
        }
        for name, message in cases.items():
            err = _fails(cp, "scale", "loose", name, "--replicas=3")
            assert f"Internal error occurred: {message}" in err, err
            assert "object does not support" not in err and "Traceback" not in err
            err = _fails(cp, "get", "--raw", f"/apis/ex.com/v1/namespaces/default/loose/{name}/scale")
            assert message in err, err
        cp.kubectl("scale", "loose", "ok", "--replicas=3")
        scale = json.loads(cp.kubectl("get", "--raw", "/apis/ex.com/v1/namespaces/default/loose/ok/scale").stdout)
        assert scale["spec"]["replicas"] == 3 and scale["status"]["selector"] == "a=b"
        err = _fails(cp, "patch", "loose", "ok", "--subresource=scale", "--type=merge", "-p",
                     '{"spec":{"replicas":2147483648}}')
        assert "ScaleSpec.spec.replicas of type int32" in err

    await asyncio.to_thread(scenario)


COUNTS = {
    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {"name": "counts.ex.com"},
    "spec": {"group": "ex.com", "scope": "Namespaced",
             "names": {"plural": "counts", "singular": "count", "kind": "Count"},
             "versions": [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {
                 "type": "object", "properties": {"spec": {"type": "object", "properties": {
                     "big": {"type": "integer", "format": "int64"},
                     "small": {"type": "integer", "format": "int32"}}}}}}}]},
}


async def test_custom_resource_integers_are_bounded(control_plane):
    """A CR number that fits no int64 decodes as a float64, which kube-openapi calls "number"
    once it is beyond ±(2^53-1); an int32 field holds an int32."""
    cp = control_plane

    def count(name: str, spec: str) -> str:
        return f'{{"apiVersion":"ex.com/v1","kind":"Count","metadata":{{"name":"{name}"}},"spec":{spec}}}'

    def scenario() -> None:
        cp.kubectl("apply", "-f", "-", input=json.dumps(COUNTS))
        cp.kubectl("wait", "--for=condition=Established", "crd/counts.ex.com")
        for spec in ('{"big":18446744073709551616}', '{"big":99999999999999999999999}', '{"big":1e20}'):
            err = _fails(cp, "create", "-f", "-", input=count("a", spec))
            assert 'spec.big: Invalid value: "number": spec.big in body must be of type integer: "number"' in err, err
        err = _fails(cp, "create", "-f", "-", input=count("b", '{"small":2147483648}'))
        assert "spec.small in body must be of type int32" in err, err
        cp.kubectl("create", "-f", "-", input=count("ok", '{"big":9223372036854775807,"small":-2147483648}'))
        got = json.loads(cp.kubectl("get", "count", "ok", "-o", "json").stdout)["spec"]
        assert got == {"big": 9223372036854775807, "small": -2147483648}

    await asyncio.to_thread(scenario)
