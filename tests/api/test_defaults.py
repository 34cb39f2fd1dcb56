"""Golden defaulting tests: input dict -> what kube-apiserver stores."""

import copy

from vkube.api.builtin import builtin_registry

REG = builtin_registry()


def run(group, plural, obj, *, create=True):
    strategy = REG.get(group, "v1", plural).strategy
    obj = copy.deepcopy(obj)
    strategy.default(obj)
    if create:
        strategy.prepare_for_create(obj)
    return obj


CONTAINER = {"name": "web", "image": "nginx", "ports": [{"containerPort": 80}],
             "readinessProbe": {"httpGet": {"port": 80}}}
DEFAULTED_CONTAINER = {
    "name": "web", "image": "nginx", "imagePullPolicy": "Always",
    "ports": [{"containerPort": 80, "protocol": "TCP"}],
    "readinessProbe": {"httpGet": {"port": 80, "path": "/", "scheme": "HTTP"}, "timeoutSeconds": 1,
                       "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3},
    "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File", "resources": {},
}
TEMPLATE_SPEC = {"containers": [DEFAULTED_CONTAINER], "restartPolicy": "Always", "dnsPolicy": "ClusterFirst",
                 "terminationGracePeriodSeconds": 30, "securityContext": {}, "schedulerName": "default-scheduler"}


def test_pod():
    pod = run("", "pods", {"metadata": {"name": "p", "namespace": "d"}, "spec": {"containers": [CONTAINER]},
                           "status": {"phase": "Running"}})
    assert pod["spec"] == {
        **TEMPLATE_SPEC, "enableServiceLinks": True, "serviceAccountName": "default", "serviceAccount": "default",
        "priority": 0, "preemptionPolicy": "PreemptLowerPriority",
        "tolerations": [
            {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
            {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
        ],
    }
    assert pod["status"] == {"phase": "Pending", "qosClass": "BestEffort"}


def test_image_pull_policy_and_qos():
    def pod(*containers):
        return run("", "pods", {"metadata": {"name": "p", "namespace": "d"}, "spec": {"containers": list(containers)}})

    p = pod({"name": "a", "image": "nginx:1.25"}, {"name": "b", "image": "reg:5000/x:latest"},
            {"name": "c", "image": "x@sha256:abc"})
    assert [c["imagePullPolicy"] for c in p["spec"]["containers"]] == ["IfNotPresent", "Always", "IfNotPresent"]
    limits = {"cpu": "1", "memory": "1Gi"}
    guaranteed = pod({"name": "a", "image": "x:1", "resources": {"limits": limits}})
    assert guaranteed["spec"]["containers"][0]["resources"]["requests"] == limits  # copied from limits
    assert guaranteed["status"]["qosClass"] == "Guaranteed"
    burstable = pod({"name": "a", "image": "x:1", "resources": {"requests": {"cpu": "100m"}}})
    assert burstable["status"]["qosClass"] == "Burstable"


def test_deployment():
    dep = run("apps", "deployments", {"metadata": {"name": "d", "namespace": "n"}, "spec": {
        "selector": {"matchLabels": {"app": "web"}},
        "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [CONTAINER]}}},
        "status": {"replicas": 5}})
    assert dep["spec"] == {
        "replicas": 1, "revisionHistoryLimit": 10, "progressDeadlineSeconds": 600,
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}},
        "selector": {"matchLabels": {"app": "web"}},
        "template": {"metadata": {"labels": {"app": "web"}}, "spec": TEMPLATE_SPEC},
    }
    assert "status" not in dep


def test_statefulset_and_daemonset():
    sts = run("apps", "statefulsets", {"metadata": {"name": "s", "namespace": "n"}, "spec": {
        "serviceName": "s", "selector": {}, "template": {"spec": {"containers": [CONTAINER]}},
        "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"]}}]}})
    spec = sts["spec"]
    assert spec["podManagementPolicy"] == "OrderedReady"
    assert spec["updateStrategy"] == {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}
    assert spec["persistentVolumeClaimRetentionPolicy"] == {"whenDeleted": "Retain", "whenScaled": "Retain"}
    assert spec["replicas"] == 1 and spec["revisionHistoryLimit"] == 10
    assert spec["volumeClaimTemplates"][0] == {
        "apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data"},
        "spec": {"accessModes": ["ReadWriteOnce"], "volumeMode": "Filesystem"}, "status": {"phase": "Pending"}}
    ds = run("apps", "daemonsets", {"metadata": {"name": "d", "namespace": "n"}, "spec": {"template": {"spec": {}}}})
    assert ds["spec"]["updateStrategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}}


def test_job_generates_selector_from_uid():
    job = run("batch", "jobs", {"metadata": {"name": "pi", "namespace": "n", "uid": "1234"},
                                "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [CONTAINER]}}}})
    spec = job["spec"]
    assert (spec["completions"], spec["parallelism"], spec["backoffLimit"]) == (1, 1, 6)
    assert spec["completionMode"] == "NonIndexed" and spec["suspend"] is False
    assert spec["podReplacementPolicy"] == "TerminatingOrFailed"
    assert spec["selector"] == {"matchLabels": {"batch.kubernetes.io/controller-uid": "1234"}}
    assert spec["template"]["metadata"]["labels"] == {
        "batch.kubernetes.io/controller-uid": "1234", "controller-uid": "1234",
        "batch.kubernetes.io/job-name": "pi", "job-name": "pi"}
    manual = run("batch", "jobs", {"metadata": {"name": "m", "namespace": "n", "uid": "1"},
                                   "spec": {"manualSelector": True, "parallelism": 3, "template": {"spec": {}}}})
    assert "selector" not in manual["spec"] and "completions" not in manual["spec"]


def test_cronjob():
    cj = run("batch", "cronjobs", {"metadata": {"name": "c", "namespace": "n"}, "spec": {
        "schedule": "* * * * *", "jobTemplate": {"spec": {"template": {"spec": {"containers": [CONTAINER]}}}}}})
    spec = cj["spec"]
    assert (spec["concurrencyPolicy"], spec["suspend"], spec["successfulJobsHistoryLimit"],
            spec["failedJobsHistoryLimit"]) == ("Allow", False, 3, 1)
    assert spec["jobTemplate"]["spec"]["template"]["spec"]["dnsPolicy"] == "ClusterFirst"


def test_service():
    svc = run("", "services", {"metadata": {"name": "s", "namespace": "n"},
                               "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}})
    assert svc["spec"] == {
        "type": "ClusterIP", "sessionAffinity": "None", "selector": {"app": "web"},
        "ports": [{"port": 80, "protocol": "TCP", "targetPort": 80}],
        "internalTrafficPolicy": "Cluster", "ipFamilyPolicy": "SingleStack", "ipFamilies": ["IPv4"]}
    assert svc["status"] == {"loadBalancer": {}}
    lb = run("", "services", {"metadata": {"name": "s", "namespace": "n"},
                              "spec": {"type": "LoadBalancer", "ports": [{"port": 80, "targetPort": "http"}]}})
    assert lb["spec"]["externalTrafficPolicy"] == "Cluster" and lb["spec"]["allocateLoadBalancerNodePorts"] is True
    assert lb["spec"]["ports"][0]["targetPort"] == "http"


def test_service_update_keeps_allocated_cluster_ip():
    strategy = REG.get("", "v1", "services").strategy
    old = run("", "services", {"metadata": {"name": "s", "namespace": "n"}, "spec": {"ports": [{"port": 80}]}})
    old["spec"]["clusterIP"] = "10.0.0.7"
    new = run("", "services", {"metadata": {"name": "s", "namespace": "n"}, "spec": {"ports": [{"port": 81}]}}, create=False)
    strategy.prepare_for_update(new, old)
    assert new["spec"]["clusterIP"] == "10.0.0.7" and new["status"] == {"loadBalancer": {}}


def test_namespace_secret_pvc_and_others():
    ns = run("", "namespaces", {"metadata": {"name": "team"}})
    assert ns["spec"] == {"finalizers": ["kubernetes"]} and ns["status"] == {"phase": "Active"}
    assert ns["metadata"]["labels"] == {"kubernetes.io/metadata.name": "team"}
    secret = run("", "secrets", {"metadata": {"name": "s", "namespace": "n"}, "stringData": {"a": "hi"}})
    assert secret["type"] == "Opaque" and secret["data"] == {"a": "aGk="} and "stringData" not in secret
    pvc = run("", "persistentvolumeclaims", {"metadata": {"name": "c", "namespace": "n"}, "spec": {}})
    assert pvc["spec"]["volumeMode"] == "Filesystem" and pvc["status"] == {"phase": "Pending"}
    rc = run("", "replicationcontrollers", {"metadata": {"name": "r", "namespace": "n"},
                                            "spec": {"template": {"metadata": {"labels": {"a": "b"}}, "spec": {}}}})
    assert rc["spec"]["selector"] == {"a": "b"} and rc["metadata"]["labels"] == {"a": "b"} and rc["spec"]["replicas"] == 1
    rb = run("rbac.authorization.k8s.io", "rolebindings", {"metadata": {"name": "r", "namespace": "n"},
                                                           "subjects": [{"kind": "User", "name": "u"}, {"kind": "ServiceAccount", "name": "s"}]})
    assert [s["apiGroup"] for s in rb["subjects"]] == ["rbac.authorization.k8s.io", ""]
    np = run("networking.k8s.io", "networkpolicies", {"metadata": {"name": "n", "namespace": "n"},
                                                      "spec": {"podSelector": {}, "egress": [{"ports": [{"port": 53}]}]}})
    assert np["spec"]["policyTypes"] == ["Ingress", "Egress"] and np["spec"]["egress"][0]["ports"][0]["protocol"] == "TCP"
    sc = run("storage.k8s.io", "storageclasses", {"metadata": {"name": "s"}, "provisioner": "x"})
    assert (sc["reclaimPolicy"], sc["volumeBindingMode"]) == ("Delete", "Immediate")


def test_defaulting_is_idempotent():
    obj = {"metadata": {"name": "p", "namespace": "d"}, "spec": {"containers": [CONTAINER]}}
    once = run("", "pods", obj)
    twice = run("", "pods", once)
    assert once["spec"] == twice["spec"]
