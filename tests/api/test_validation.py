"""Validation: for each rule one valid and one invalid object, with the expected field path."""

import copy

import pytest

from vkube.api.builtin import builtin_registry
from vkube.api.errors import invalid
from vkube.api.validation import validate_object_meta

REG = builtin_registry()


def check(group, plural, obj, *, old=None):
    strategy = REG.get(group, "v1", plural).strategy
    obj = copy.deepcopy(obj)
    strategy.default(obj)
    if old is None:
        strategy.prepare_for_create(obj)
        return strategy.validate(obj)
    strategy.prepare_for_update(obj, old)
    return strategy.validate(obj) + strategy.validate_update(obj, old)


def fields(causes):
    return [c["field"] for c in causes]


def meta(name="x", ns="default"):
    return {"name": name, "namespace": ns} if ns else {"name": name}


POD = {"metadata": meta(), "spec": {"containers": [{"name": "web", "image": "nginx"}]}}


def test_object_meta():
    assert validate_object_meta({"metadata": meta()}, namespaced=True) == []
    causes = validate_object_meta({"metadata": {"namespace": "d"}}, namespaced=True)
    assert causes[0]["field"] == "metadata.name" and causes[0]["reason"] == "FieldValueRequired"
    assert causes[0]["message"] == "Required value: name or generateName is required"
    assert validate_object_meta({"metadata": {"generateName": "web-", "namespace": "d"}}, namespaced=True) == []
    bad = validate_object_meta({"metadata": {"name": "Bad_Name", "namespace": "d"}}, namespaced=True)
    assert bad[0]["message"].startswith('Invalid value: "Bad_Name": a lowercase RFC 1123 subdomain')
    assert fields(validate_object_meta({"metadata": meta()}, namespaced=False)) == ["metadata.namespace"]
    assert fields(validate_object_meta({"metadata": {**meta(), "labels": {"a": "x" * 64}}}, namespaced=True)) == ["metadata.labels"]
    assert fields(validate_object_meta({"metadata": {**meta(), "labels": {"-bad": "v"}}}, namespaced=True)) == ["metadata.labels"]
    assert validate_object_meta({"metadata": {**meta(), "labels": {"example.com/a": "", "b": "c.d_e"}}}, namespaced=True) == []
    huge = {"metadata": {**meta(), "annotations": {"a": "x" * (256 * 1024)}}}
    assert [c["reason"] for c in validate_object_meta(huge, namespaced=True)] == ["FieldValueTooLong"]


def test_invalid_error_message():
    causes = check("", "pods", {"metadata": meta(), "spec": {"containers": [{"name": "web"}]}})
    err = invalid("Pod", "x", causes)
    assert err.code == 422
    assert err.message == 'Pod "x" is invalid: spec.containers[0].image: Required value'


def test_pod_rules():
    assert check("", "pods", POD) == []
    assert fields(check("", "pods", {"metadata": meta(), "spec": {}})) == ["spec.containers"]
    dup = {"metadata": meta(), "spec": {"containers": [{"name": "a", "image": "x"}, {"name": "a", "image": "y"}]}}
    assert fields(check("", "pods", dup)) == ["spec.containers[1].name"]
    assert check("", "pods", dup)[0]["reason"] == "FieldValueDuplicate"
    bad_name = {"metadata": meta(), "spec": {"containers": [{"name": "Web", "image": "x"}]}}
    assert fields(check("", "pods", bad_name)) == ["spec.containers[0].name"]
    bad_port = {"metadata": meta(), "spec": {"containers": [{"name": "a", "image": "x", "ports": [{"containerPort": 70000}]}]}}
    assert fields(check("", "pods", bad_port)) == ["spec.containers[0].ports[0].containerPort"]
    vols = {"metadata": meta(), "spec": {"volumes": [{"name": "v"}, {"name": "v"}], "containers": [{"name": "a", "image": "x"}]}}
    assert fields(check("", "pods", vols)) == ["spec.volumes[1].name"]
    restart = {"metadata": meta(), "spec": {**POD["spec"], "restartPolicy": "Sometimes"}}
    causes = check("", "pods", restart)
    assert fields(causes) == ["spec.restartPolicy"] and causes[0]["reason"] == "FieldValueNotSupported"
    assert causes[0]["message"] == 'Unsupported value: "Sometimes": supported values: "Always", "OnFailure", "Never"'
    mount = {"metadata": meta(), "spec": {"containers": [{"name": "a", "image": "x", "volumeMounts": [{"name": "nope", "mountPath": "/d"}]}]}}
    assert fields(check("", "pods", mount)) == ["spec.containers[0].volumeMounts[0].name"]
    res = {"metadata": meta(), "spec": {"containers": [{"name": "a", "image": "x", "resources": {"requests": {"cpu": "2"}, "limits": {"cpu": "1"}}}]}}
    assert fields(check("", "pods", res)) == ["spec.containers[0].resources.requests"]


def test_pod_update_rules():
    old = copy.deepcopy(POD)
    REG.get("", "v1", "pods").strategy.default(old)
    new = copy.deepcopy(old)
    new["spec"]["containers"][0]["image"] = "nginx:2"
    new["spec"]["activeDeadlineSeconds"] = 30
    new["spec"]["tolerations"].append({"key": "k", "operator": "Exists"})
    assert check("", "pods", new, old=old) == []
    changed = copy.deepcopy(old)
    changed["spec"]["restartPolicy"] = "Never"
    causes = check("", "pods", changed, old=old)
    assert fields(causes) == ["spec"] and "pod updates may not change fields other than" in causes[0]["message"]
    bound = copy.deepcopy(old)
    bound["spec"]["nodeName"] = "node-1"  # binding sets nodeName once
    assert check("", "pods", bound, old=old) == []


def test_service_rules():
    ok = {"metadata": meta("web"), "spec": {"ports": [{"port": 80}]}}
    assert check("", "services", ok) == []
    assert fields(check("", "services", {"metadata": meta("web"), "spec": {}})) == ["spec.ports"]
    assert check("", "services", {"metadata": meta("web"), "spec": {"clusterIP": "None"}}) == []
    assert check("", "services", {"metadata": meta("web"), "spec": {"type": "ExternalName", "externalName": "example.com"}}) == []
    assert fields(check("", "services", {"metadata": meta("web"), "spec": {"type": "Weird", "ports": [{"port": 80}]}})) == ["spec.type"]
    assert fields(check("", "services", {"metadata": meta("web"), "spec": {"ports": [{"port": 0}]}})) == ["spec.ports[0].port", "spec.ports[0].targetPort"]
    two = {"metadata": meta("web"), "spec": {"ports": [{"port": 80}, {"port": 81}]}}
    assert fields(check("", "services", two)) == ["spec.ports[0].name", "spec.ports[1].name"]
    assert fields(check("", "services", {"metadata": meta("a.b"), "spec": {"ports": [{"port": 80}]}})) == ["metadata.name"]
    old = copy.deepcopy(ok)
    REG.get("", "v1", "services").strategy.default(old)
    old["spec"]["clusterIP"] = "10.0.0.1"
    moved = copy.deepcopy(old)
    moved["spec"]["clusterIP"] = "10.0.0.2"
    assert fields(check("", "services", moved, old=old)) == ["spec.clusterIP"]


def deployment(selector=None, labels=None, **spec):
    return {"metadata": meta("d"), "spec": {
        "selector": {"matchLabels": {"app": "web"}} if selector is None else selector,
        "template": {"metadata": {"labels": {"app": "web"} if labels is None else labels},
                     "spec": {"containers": [{"name": "c", "image": "x"}]}}, **spec}}


def test_deployment_rules():
    assert check("apps", "deployments", deployment()) == []
    assert fields(check("apps", "deployments", deployment(labels={"app": "db"}))) == ["spec.template.metadata.labels"]
    assert fields(check("apps", "deployments", deployment(selector={}))) == ["spec.selector"]
    assert fields(check("apps", "deployments", deployment(replicas=-1))) == ["spec.replicas"]
    no_sel = deployment()
    del no_sel["spec"]["selector"]
    assert fields(check("apps", "deployments", no_sel)) == ["spec.selector"]
    never = deployment()
    never["spec"]["template"]["spec"]["restartPolicy"] = "Never"
    assert fields(check("apps", "deployments", never)) == ["spec.template.spec.restartPolicy"]
    old = deployment()
    REG.get("apps", "v1", "deployments").strategy.default(old)
    new = deployment(selector={"matchLabels": {"app": "web", "x": "y"}}, labels={"app": "web", "x": "y"})
    assert fields(check("apps", "deployments", new, old=old)) == ["spec.selector"]
    scaled = copy.deepcopy(old)
    scaled["spec"]["replicas"] = 5
    assert check("apps", "deployments", scaled, old=old) == []


@pytest.mark.parametrize("plural", ["replicasets", "statefulsets", "daemonsets"])
def test_other_workloads_need_matching_selector(plural):
    assert check("apps", plural, deployment()) == []
    assert "spec.template.metadata.labels" in fields(check("apps", plural, deployment(labels={"app": "db"})))


def test_statefulset_update_is_limited():
    old = deployment()
    REG.get("apps", "v1", "statefulsets").strategy.default(old)
    new = copy.deepcopy(old)
    new["spec"]["podManagementPolicy"] = "Parallel"
    assert fields(check("apps", "statefulsets", new, old=old)) == ["spec"]


def job(**spec):
    return {"metadata": {**meta("pi"), "uid": "u-1"}, "spec": {
        "template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "perl"}]}}, **spec}}


def test_job_rules():
    assert check("batch", "jobs", job()) == []
    always = job()
    always["spec"]["template"]["spec"]["restartPolicy"] = "Always"
    assert fields(check("batch", "jobs", always)) == ["spec.template.spec.restartPolicy"]
    always["spec"]["template"]["spec"].pop("restartPolicy")  # defaults to Always: still invalid
    assert fields(check("batch", "jobs", always)) == ["spec.template.spec.restartPolicy"]
    strategy = REG.get("batch", "v1", "jobs").strategy
    old = job()
    strategy.default(old)
    strategy.prepare_for_create(old)
    new = copy.deepcopy(old)
    new["spec"]["template"]["spec"]["containers"][0]["image"] = "perl:2"
    assert fields(check("batch", "jobs", new, old=old)) == ["spec.template"]
    new = copy.deepcopy(old)
    new["spec"]["selector"] = {"matchLabels": {"other": "x"}}
    assert "spec.selector" in fields(check("batch", "jobs", new, old=old))


def test_cronjob_rules():
    tpl = {"spec": {"template": {"spec": {"restartPolicy": "OnFailure", "containers": [{"name": "c", "image": "x"}]}}}}
    assert check("batch", "cronjobs", {"metadata": meta("c"), "spec": {"schedule": "*/5 * * * *", "jobTemplate": tpl}}) == []
    assert fields(check("batch", "cronjobs", {"metadata": meta("c"), "spec": {"jobTemplate": tpl}})) == ["spec.schedule"]
    assert fields(check("batch", "cronjobs", {"metadata": meta("c"), "spec": {"schedule": "nope", "jobTemplate": tpl}})) == ["spec.schedule"]
    assert fields(check("batch", "cronjobs", {"metadata": meta("c"), "spec": {"schedule": "@hourly", "timeZone": "Mars/Base", "jobTemplate": tpl}})) == ["spec.timeZone"]


def test_configmap_and_secret():
    assert check("", "configmaps", {"metadata": meta(), "data": {"a.b-c_D": "1"}}) == []
    assert fields(check("", "configmaps", {"metadata": meta(), "data": {"bad key": "1"}})) == ["data"]
    big = {"metadata": meta(), "data": {"a": "x" * (1024 * 1024)}}
    assert [c["reason"] for c in check("", "configmaps", big)] == ["FieldValueTooLong"]
    assert check("", "secrets", {"metadata": meta(), "data": {"k": "aGk="}}) == []
    assert fields(check("", "secrets", {"metadata": meta(), "data": {"k": "not base64!"}})) == ["data[k]"]
    assert fields(check("", "secrets", {"metadata": meta(), "type": "kubernetes.io/tls", "data": {"tls.crt": ""}})) == ["data[tls.key]"]
    old = {"metadata": meta(), "type": "Opaque", "data": {}}
    assert fields(check("", "secrets", {"metadata": meta(), "type": "Other", "data": {}}, old=old)) == ["type"]
    frozen = {"metadata": meta(), "immutable": True, "data": {"a": "1"}}
    assert fields(check("", "configmaps", {"metadata": meta(), "immutable": True, "data": {"a": "2"}}, old=frozen)) == ["data"]


def test_namespace_and_cluster_scoped():
    assert check("", "namespaces", {"metadata": meta("team-a", None)}) == []
    assert fields(check("", "namespaces", {"metadata": meta("team.a", None)})) == ["metadata.name"]
    assert fields(check("", "nodes", {"metadata": meta("n1")})) == ["metadata.namespace"]
    assert check("rbac.authorization.k8s.io", "clusterroles", {"metadata": meta("system:admin", None),
                 "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]}) == []
    assert fields(check("rbac.authorization.k8s.io", "roles", {"metadata": meta(), "rules": [{"resources": ["pods"], "apiGroups": [""]}]})) == ["rules[0].verbs"]


def test_pvc_rules():
    ok = {"metadata": meta(), "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}
    assert check("", "persistentvolumeclaims", ok) == []
    assert fields(check("", "persistentvolumeclaims", {"metadata": meta(), "spec": {}})) == ["spec.accessModes", "spec.resources[storage]"]


def test_statefulset_mounts_may_name_volume_claim_templates():
    from vkube.api.builtin import builtin_registry

    spec = builtin_registry().get("apps", "v1", "statefulsets")
    sts = {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db", "namespace": "default"},
           "spec": {"selector": {"matchLabels": {"a": "b"}}, "serviceName": "db",
                    "template": {"metadata": {"labels": {"a": "b"}},
                                 "spec": {"containers": [{"name": "c", "image": "x",
                                                          "volumeMounts": [{"name": "data", "mountPath": "/d"}]}]}},
                    "volumeClaimTemplates": [{"metadata": {"name": "data"},
                                              "spec": {"accessModes": ["ReadWriteOnce"],
                                                       "resources": {"requests": {"storage": "1Gi"}}}}]}}
    spec.strategy.default(sts)
    assert spec.strategy.validate(sts) == []
    sts["spec"]["template"]["spec"]["containers"][0]["volumeMounts"][0]["name"] = "other"
    assert any("volumeMounts[0].name" in c["field"] for c in spec.strategy.validate(sts))
