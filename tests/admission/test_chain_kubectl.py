"""The admission chain through the real kubectl: Pod Security, ResourceQuota with the quota
controller, LimitRanger, ServiceAccount, Priority, DefaultStorageClass and storage protection."""

from __future__ import annotations

import asyncio
import json

from tests.admission.conftest import eventually, get_json, kubectl

PRIVILEGED = """
apiVersion: v1
kind: Pod
metadata: {name: priv}
spec:
  containers:
  - name: c
    image: nginx
    securityContext: {privileged: true}
"""


def pod_yaml(name: str, extra: str = "") -> str:
    return f"""
apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  containers:
  - name: c
    image: nginx{extra}
"""


async def ns(cp, name: str, *labels: str) -> None:
    await kubectl(cp, "create", "namespace", name)
    if labels:
        await kubectl(cp, "label", "namespace", name, *labels)
    await eventually(lambda: _has_sa(cp, name))


async def _has_sa(cp, name: str) -> bool:
    out = await kubectl(cp, "get", "serviceaccount", "default", "-n", name, check=False)
    return out.returncode == 0


async def test_enforce_restricted_refuses_privileged_pod(cluster):
    await ns(cluster, "locked", "pod-security.kubernetes.io/enforce=restricted")
    out = await kubectl(cluster, "apply", "-n", "locked", "-f", "-", input=PRIVILEGED, check=False)
    assert out.returncode != 0
    assert ('Error from server (Forbidden): error when creating "STDIN": pods "priv" is forbidden: '
            'violates PodSecurity "restricted:latest": privileged (container "c" must not set '
            'securityContext.privileged=true), allowPrivilegeEscalation != false (container "c" must '
            'set securityContext.allowPrivilegeEscalation=false), unrestricted capabilities (container '
            '"c" must set securityContext.capabilities.drop=["ALL"]), runAsNonRoot != true (pod or '
            'container "c" must set securityContext.runAsNonRoot=true), seccompProfile (pod or container '
            '"c" must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost")') in out.stderr
    got = await kubectl(cluster, "get", "pod", "priv", "-n", "locked", check=False)
    assert got.returncode != 0 and "NotFound" in got.stderr


async def test_warn_restricted_creates_with_warning(cluster):
    await ns(cluster, "warned", "pod-security.kubernetes.io/warn=restricted")
    out = await kubectl(cluster, "apply", "-n", "warned", "-f", "-", input=PRIVILEGED)
    assert 'Warning: would violate PodSecurity "restricted:latest": privileged (container "c" must not ' \
           'set securityContext.privileged=true)' in out.stderr
    assert "pod/priv created" in out.stdout
    # a workload only warns, even under enforce
    await ns(cluster, "locked2", "pod-security.kubernetes.io/enforce=baseline")
    dep = await kubectl(cluster, "create", "deployment", "web", "--image=nginx", "-n", "locked2")
    assert "deployment.apps/web created" in dep.stdout


async def test_bad_pod_security_label_is_invalid(cluster):
    out = await kubectl(cluster, "create", "-f", "-", check=False, input="""
apiVersion: v1
kind: Namespace
metadata:
  name: badlabel
  labels: {pod-security.kubernetes.io/enforce: strict}
""")
    assert out.returncode != 0
    assert out.stderr.strip() == (
        'The Namespace "badlabel" is invalid: metadata.labels[pod-security.kubernetes.io/enforce]: '
        'Invalid value: "strict": must be one of privileged, baseline, restricted')


async def test_quota_of_two_pods_refuses_the_third(cluster):
    await ns(cluster, "q")
    await kubectl(cluster, "create", "quota", "pods2", "--hard=pods=2", "-n", "q")

    async def status_ready():
        q = await get_json(cluster, "resourcequota", "pods2", "-n", "q")
        return (q.get("status") or {}).get("hard") == {"pods": "2"}
    await eventually(status_ready)
    for name in ("a", "b"):
        await kubectl(cluster, "apply", "-n", "q", "-f", "-", input=pod_yaml(name))
    out = await kubectl(cluster, "apply", "-n", "q", "-f", "-", input=pod_yaml("c"), check=False)
    assert out.returncode != 0
    assert ('pods "c" is forbidden: exceeded quota: pods2, requested: pods=1, used: pods=2, '
            'limited: pods=2') in out.stderr

    async def described():
        d = (await kubectl(cluster, "describe", "quota", "pods2", "-n", "q")).stdout
        return d if "pods" in d and " 2 " in d.replace("\t", " ") else ""
    d = await eventually(described)
    lines = [ln.split() for ln in d.splitlines()]
    assert ["Resource", "Used", "Hard"] in lines, d
    assert ["pods", "2", "2"] in lines, d
    # deleting one pod gives the quota back (the controller recounts)
    await kubectl(cluster, "delete", "pod", "a", "-n", "q", "--wait=false")

    async def freed():
        q = await get_json(cluster, "resourcequota", "pods2", "-n", "q")
        return q["status"]["used"]["pods"] == "1"
    await eventually(freed)
    await kubectl(cluster, "apply", "-n", "q", "-f", "-", input=pod_yaml("c"))


async def test_quota_compute_count_and_must_specify(cluster):
    await ns(cluster, "qc")
    await kubectl(cluster, "create", "quota", "compute", "-n", "qc",
                  "--hard=requests.cpu=1,limits.memory=1Gi,count/configmaps=2,services.nodeports=0")
    await eventually(lambda: _status_set(cluster, "qc", "compute"))
    out = await kubectl(cluster, "apply", "-n", "qc", "-f", "-", input=pod_yaml("nores"), check=False)
    assert 'pods "nores" is forbidden: failed quota: compute: must specify limits.memory for: c; ' \
           'requests.cpu for: c' in out.stderr
    big = pod_yaml("big", "\n    resources: {requests: {cpu: 800m}, limits: {cpu: 800m, memory: 512Mi}}")
    await kubectl(cluster, "apply", "-n", "qc", "-f", "-", input=big)
    out = await kubectl(cluster, "apply", "-n", "qc", "-f", "-", input=big.replace("big", "big2"), check=False)
    assert ('pods "big2" is forbidden: exceeded quota: compute, requested: requests.cpu=800m, '
            'used: requests.cpu=800m, limited: requests.cpu=1') in out.stderr
    out = await kubectl(cluster, "create", "service", "nodeport", "np", "--tcp=80:80", "-n", "qc", check=False)
    assert ('services "np" is forbidden: exceeded quota: compute, requested: services.nodeports=1, '
            'used: services.nodeports=0, limited: services.nodeports=0') in out.stderr
    # kube-root-ca.crt already counts as one configmap
    await eventually(lambda: _used(cluster, "qc", "compute", "count/configmaps", "1"))
    await kubectl(cluster, "create", "configmap", "one", "-n", "qc")
    out = await kubectl(cluster, "create", "configmap", "two", "-n", "qc", check=False)
    assert ('configmaps "two" is forbidden: exceeded quota: compute, requested: count/configmaps=1, '
            'used: count/configmaps=2, limited: count/configmaps=2') in out.stderr


async def _status_set(cp, ns: str, name: str) -> bool:
    q = await get_json(cp, "resourcequota", name, "-n", ns)
    return bool((q.get("status") or {}).get("hard"))


async def _used(cp, ns: str, name: str, key: str, value: str) -> bool:
    q = await get_json(cp, "resourcequota", name, "-n", ns)
    return ((q.get("status") or {}).get("used") or {}).get(key) == value


async def test_quota_scopes(cluster):
    await ns(cluster, "qs")
    await kubectl(cluster, "create", "quota", "be", "--hard=pods=1", "--scopes=BestEffort", "-n", "qs")
    await eventually(lambda: _status_set(cluster, "qs", "be"))
    await kubectl(cluster, "apply", "-n", "qs", "-f", "-", input=pod_yaml("be1"))
    out = await kubectl(cluster, "apply", "-n", "qs", "-f", "-", input=pod_yaml("be2"), check=False)
    assert "exceeded quota: be, requested: pods=1, used: pods=1, limited: pods=1" in out.stderr
    # a pod with requests is not BestEffort: the scoped quota does not see it
    burst = pod_yaml("burst", "\n    resources: {requests: {cpu: 10m}}")
    await kubectl(cluster, "apply", "-n", "qs", "-f", "-", input=burst)


async def test_limitrange_defaults_and_bounds(cluster):
    await ns(cluster, "lr")
    await kubectl(cluster, "apply", "-n", "lr", "-f", "-", input="""
apiVersion: v1
kind: LimitRange
metadata: {name: limits}
spec:
  limits:
  - type: Container
    default: {cpu: 500m, memory: 256Mi}
    defaultRequest: {cpu: 100m, memory: 128Mi}
    max: {cpu: "1"}
    maxLimitRequestRatio: {memory: "4"}
  - type: PersistentVolumeClaim
    min: {storage: 1Gi}
    max: {storage: 5Gi}
""")
    await kubectl(cluster, "apply", "-n", "lr", "-f", "-", input=pod_yaml("plain"))
    pod = await get_json(cluster, "pod", "plain", "-n", "lr")
    res = pod["spec"]["containers"][0]["resources"]
    assert res == {"limits": {"cpu": "500m", "memory": "256Mi"}, "requests": {"cpu": "100m", "memory": "128Mi"}}
    assert pod["metadata"]["annotations"]["kubernetes.io/limit-ranger"] == (
        "LimitRanger plugin set: cpu, memory request for container c; cpu, memory limit for container c")
    big = pod_yaml("big", "\n    resources: {limits: {cpu: '2'}}")
    out = await kubectl(cluster, "apply", "-n", "lr", "-f", "-", input=big, check=False)
    assert 'pods "big" is forbidden: maximum cpu usage per Container is 1, but limit is 2' in out.stderr
    ratio = pod_yaml("ratio", "\n    resources: {requests: {memory: 64Mi}, limits: {memory: 512Mi}}")
    out = await kubectl(cluster, "apply", "-n", "lr", "-f", "-", input=ratio, check=False)
    assert ('pods "ratio" is forbidden: memory max limit to request ratio per Container is 4, '
            'but provided ratio is 8.000000') in out.stderr
    claim = """
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: NAME}
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: SIZE}}
"""
    out = await kubectl(cluster, "apply", "-n", "lr", "-f", "-", check=False,
                        input=claim.replace("NAME", "small").replace("SIZE", "500Mi"))
    assert ('persistentvolumeclaims "small" is forbidden: minimum storage usage per '
            'PersistentVolumeClaim is 1Gi, but request is 500Mi') in out.stderr
    out = await kubectl(cluster, "apply", "-n", "lr", "-f", "-", check=False,
                        input=claim.replace("NAME", "huge").replace("SIZE", "10Gi"))
    assert ('persistentvolumeclaims "huge" is forbidden: maximum storage usage per '
            'PersistentVolumeClaim is 5Gi, but request is 10Gi') in out.stderr


async def test_service_account_token_volume_and_missing_account(cluster):
    await ns(cluster, "sa")
    await kubectl(cluster, "apply", "-n", "sa", "-f", "-", input=pod_yaml("p"))
    pod = await get_json(cluster, "pod", "p", "-n", "sa")
    spec = pod["spec"]
    assert spec["serviceAccountName"] == "default"
    vol = next(v for v in spec["volumes"] if v["name"].startswith("kube-api-access-"))
    assert len(vol["name"]) == len("kube-api-access-") + 5
    assert vol["projected"]["defaultMode"] == 420
    kinds = [next(iter(s)) for s in vol["projected"]["sources"]]
    assert kinds == ["serviceAccountToken", "configMap", "downwardAPI"]
    assert spec["containers"][0]["volumeMounts"] == [
        {"name": vol["name"], "readOnly": True, "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}]
    out = await kubectl(cluster, "apply", "-n", "sa", "-f", "-", check=False,
                        input=pod_yaml("ghost").replace("spec:\n", "spec:\n  serviceAccountName: ghost\n"))
    assert ('pods "ghost" is forbidden: error looking up service account sa/ghost: '
            'serviceaccount "ghost" not found') in out.stderr
    # automount off on the service account: no volume
    await kubectl(cluster, "apply", "-n", "sa", "-f", "-", input="""
apiVersion: v1
kind: ServiceAccount
metadata: {name: quiet}
automountServiceAccountToken: false
""")
    await kubectl(cluster, "apply", "-n", "sa", "-f", "-",
                  input=pod_yaml("q").replace("spec:\n", "spec:\n  serviceAccountName: quiet\n"))
    pod = await get_json(cluster, "pod", "q", "-n", "sa")
    assert not any(v["name"].startswith("kube-api-access-") for v in pod["spec"].get("volumes") or [])


async def test_priority_and_storage_defaults(cluster):
    await ns(cluster, "pr")
    await kubectl(cluster, "create", "priorityclass", "high", "--value=1000", "--global-default=true")
    out = await kubectl(cluster, "create", "priorityclass", "other", "--value=5", "--global-default=true",
                        check=False)
    assert "PriorityClass high is already marked as default. Only one default can exist" in out.stderr
    # system- names are reserved (as upstream's IsKnownSystemPriorityClass)
    for args, why in ((("system-mine", "--value=5"), "system-mine is not a known system priority "
                       "class"),
                      (("system-node-critical", "--value=5"), "value of system-node-critical "
                       "PriorityClass must be 2000001000")):
        out = await kubectl(cluster, "create", "priorityclass", *args, check=False)
        assert out.returncode != 0 and ("metadata.name: Forbidden: priority class names with "
                                        f"'system-' prefix are reserved for system use only. "
                                        f"error: {why}") in out.stderr, out.stderr
    await kubectl(cluster, "apply", "-n", "pr", "-f", "-", input=pod_yaml("p"))
    pod = await get_json(cluster, "pod", "p", "-n", "pr")
    assert (pod["spec"]["priorityClassName"], pod["spec"]["priority"]) == ("high", 1000)
    out = await kubectl(cluster, "apply", "-n", "pr", "-f", "-", check=False,
                        input=pod_yaml("x").replace("spec:\n", "spec:\n  priorityClassName: nope\n"))
    assert 'pods "x" is forbidden: no PriorityClass with name nope was found' in out.stderr
    await kubectl(cluster, "create", "priorityclass", "batch", "--value=10", "--preemption-policy=Never")
    await kubectl(cluster, "apply", "-n", "pr", "-f", "-",
                  input=pod_yaml("b").replace("spec:\n", "spec:\n  priorityClassName: batch\n"))
    b = await get_json(cluster, "pod", "b", "-n", "pr")
    assert (b["spec"]["priority"], b["spec"]["preemptionPolicy"]) == (10, "Never")
    dry = await kubectl(cluster, "run", "dry", "--image=nginx", "-n", "pr", "--dry-run=server", "-o", "json")
    assert json.loads(dry.stdout)["spec"]["priority"] == 1000
    assert any(t.get("key") == "node.kubernetes.io/not-ready" and t.get("tolerationSeconds") == 300
               for t in pod["spec"]["tolerations"])
    await kubectl(cluster, "apply", "-f", "-", input="""
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: fast
  annotations: {storageclass.kubernetes.io/is-default-class: "true"}
provisioner: example.com/fast
""")
    await kubectl(cluster, "apply", "-n", "pr", "-f", "-", input="""
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data}
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 1Gi}}
""")
    pvc = await get_json(cluster, "pvc", "data", "-n", "pr")
    assert pvc["spec"]["storageClassName"] == "fast"
    assert "kubernetes.io/pvc-protection" in pvc["metadata"]["finalizers"]
    await asyncio.sleep(0)
