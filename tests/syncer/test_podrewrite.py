"""Virtual pod → host pod rewrite: golden tests, no server."""

import copy
from dataclasses import replace

import pytest

from vkube.syncer.podrewrite import (
    SA_MOUNT_PATH,
    PodRejected,
    PodRewriteConfig,
    referenced_objects,
    rewrite_pod,
    service_env_vars,
    system_class_host_name,
    system_priority_message,
)
from vkube.syncer.translate import ANN_NAME, LABEL_NAMESPACE, Translator

tr = Translator("vc", "vkube-vc")
CFG = PodRewriteConfig(translator=tr, host_service_account="vc-workload-vc",
                       token_secret="vc-token-x", kube_service_host="10.0.0.5",
                       kube_service_port=443, namespace_labels={"team": "a"})

POD = {
    "apiVersion": "v1", "kind": "Pod",
    "metadata": {"name": "web-1", "namespace": "demo", "uid": "u1", "resourceVersion": "7",
                 "labels": {"app": "web"},
                 "ownerReferences": [{"kind": "ReplicaSet", "name": "web", "uid": "r"}]},
    "spec": {
        "serviceAccountName": "builder", "nodeName": "node-1", "priorityClassName": "high",
        "priority": 1000,
        "imagePullSecrets": [{"name": "regcred"}],
        "volumes": [
            {"name": "cfg", "configMap": {"name": "app-config"}},
            {"name": "sec", "secret": {"secretName": "app-secret"}},
            {"name": "data", "persistentVolumeClaim": {"claimName": "data"}},
            {"name": "kube-api-access-abcde", "projected": {"defaultMode": 420, "sources": [
                {"serviceAccountToken": {"path": "token", "expirationSeconds": 3607}},
                {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"fieldPath": "metadata.namespace"}}]}},
            ]}},
            {"name": "mix", "projected": {"sources": [{"configMap": {"name": "p-cm"}},
                                                      {"secret": {"name": "p-sec"}}]}},
            {"name": "info", "downwardAPI": {"items": [
                {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}}]}},
        ],
        "containers": [{
            "name": "app", "image": "nginx",
            "env": [
                {"name": "A", "valueFrom": {"configMapKeyRef": {"name": "env-cm", "key": "a"}}},
                {"name": "B", "valueFrom": {"secretKeyRef": {"name": "env-sec", "key": "b"}}},
                {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                {"name": "SA", "valueFrom": {"fieldRef": {"fieldPath": "spec.serviceAccountName"}}},
                {"name": "DB_SERVICE_HOST", "value": "mine"},
            ],
            "envFrom": [{"configMapRef": {"name": "from-cm"}}, {"secretRef": {"name": "from-sec"}}],
            "volumeMounts": [{"name": "kube-api-access-abcde", "mountPath": SA_MOUNT_PATH}],
        }],
        "affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
            {"labelSelector": {"matchLabels": {"app": "web"}}, "topologyKey": "kubernetes.io/hostname"}]}},
        "topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "zone",
                                       "whenUnsatisfiable": "DoNotSchedule",
                                       "labelSelector": {"matchLabels": {"app": "web"}}}],
    },
}


def test_references_are_found():
    cms, secrets, pvcs = referenced_objects(POD)
    assert cms == {"app-config", "p-cm", "env-cm", "from-cm"}  # not kube-api-access' CA
    assert secrets == {"app-secret", "p-sec", "env-sec", "from-sec", "regcred"}
    assert pvcs == {"data"}


def test_golden_rewrite():
    before = copy.deepcopy(POD)
    svc = {"metadata": {"name": "db"}, "spec": {"clusterIP": "10.96.0.9",
                                                "ports": [{"port": 5432, "name": "pg"}]}}
    cfg = replace(CFG, services=(svc,))
    host = rewrite_pod(POD, cfg)
    assert POD == before, "the input must not be mutated"
    meta, spec = host["metadata"], host["spec"]
    assert meta["name"] == "web-1-x-demo-x-vc" and meta["namespace"] == "vkube-vc"
    assert "ownerReferences" not in meta and "resourceVersion" not in meta
    assert meta["labels"]["vkube.io/l-app"] == "web"
    assert meta["labels"][LABEL_NAMESPACE] == "demo"
    assert meta["labels"]["vkube.io/n-team"] == "a"
    assert "app" not in meta["labels"]
    assert meta["annotations"][ANN_NAME] == "web-1"
    vols = {v["name"]: v for v in spec["volumes"]}
    assert vols["cfg"]["configMap"]["name"] == "app-config-x-demo-x-vc"
    assert vols["sec"]["secret"]["secretName"] == "app-secret-x-demo-x-vc"
    assert vols["data"]["persistentVolumeClaim"]["claimName"] == "data-x-demo-x-vc"
    assert vols["kube-api-access-abcde"] == {
        "name": "kube-api-access-abcde", "secret": {"secretName": "vc-token-x", "defaultMode": 420}}
    assert [s.get("configMap", s.get("secret"))["name"] for s in vols["mix"]["projected"]["sources"]] \
        == ["p-cm-x-demo-x-vc", "p-sec-x-demo-x-vc"]
    assert vols["info"]["downwardAPI"]["items"][0]["fieldRef"]["fieldPath"] == \
        f"metadata.annotations['{ANN_NAME}']"
    c = spec["containers"][0]
    env = {e["name"]: e for e in c["env"]}
    assert env["A"]["valueFrom"]["configMapKeyRef"]["name"] == "env-cm-x-demo-x-vc"
    assert env["B"]["valueFrom"]["secretKeyRef"]["name"] == "env-sec-x-demo-x-vc"
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == f"metadata.annotations['{ANN_NAME}']"
    assert env["SA"] == {"name": "SA", "value": "builder"}
    assert env["KUBERNETES_SERVICE_HOST"]["value"] == "10.0.0.5"
    assert env["KUBERNETES_SERVICE_PORT"]["value"] == "443"
    assert env["DB_SERVICE_HOST"]["value"] == "mine", "the container's own env wins"
    assert env["DB_SERVICE_PORT"]["value"] == "5432"
    assert env["DB_PORT_5432_TCP_ADDR"]["value"] == "10.96.0.9"
    assert c["envFrom"] == [{"configMapRef": {"name": "from-cm-x-demo-x-vc"}},
                            {"secretRef": {"name": "from-sec-x-demo-x-vc"}}]
    assert c["volumeMounts"] == [{"name": "kube-api-access-abcde", "mountPath": SA_MOUNT_PATH}]
    assert spec["imagePullSecrets"] == [{"name": "regcred-x-demo-x-vc"}]
    assert spec["serviceAccountName"] == "vc-workload-vc"
    assert spec["automountServiceAccountToken"] is False
    assert spec["enableServiceLinks"] is False
    assert "nodeName" not in spec and "priorityClassName" not in spec and "priority" not in spec
    assert spec["hostname"] == "web-1"
    term = spec["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][0]
    assert term["labelSelector"]["matchLabels"] == {
        "vkube.io/l-app": "web", "vkube.io/managed-by": "vc", LABEL_NAMESPACE: "demo"}
    assert spec["topologySpreadConstraints"][0]["labelSelector"]["matchLabels"] == {
        "vkube.io/l-app": "web", "vkube.io/managed-by": "vc", LABEL_NAMESPACE: "demo"}


def test_token_volume_added_when_none_present():
    pod = {"metadata": {"name": "p", "namespace": "n"},
           "spec": {"containers": [{"name": "c", "image": "x"}],
                    "initContainers": [{"name": "i", "image": "x"}]}}
    host = rewrite_pod(pod, CFG)
    assert {"name": "vkube-sa-token", "secret": {"secretName": "vc-token-x", "defaultMode": 420}} \
        in host["spec"]["volumes"]
    for c in host["spec"]["containers"] + host["spec"]["initContainers"]:
        assert {"name": "vkube-sa-token", "mountPath": SA_MOUNT_PATH, "readOnly": True} \
            in c["volumeMounts"]
    pod["spec"]["automountServiceAccountToken"] = False
    assert "volumes" not in rewrite_pod(pod, CFG)["spec"]


def test_node_name_kept_with_virtual_scheduler_and_priority_class_translated():
    pod = copy.deepcopy(POD)
    pod["spec"]["nodeSelector"] = {"disktype": "ssd"}  # a label the tenant put on a virtual node
    pod["spec"]["affinity"]["nodeAffinity"] = {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": [{"key": "disktype", "operator": "In",
                                                     "values": ["ssd"]}]}]}}
    host = rewrite_pod(pod, replace(CFG, keep_node_name=True, sync_priority_classes=True))
    assert host["spec"]["nodeName"] == "node-1"
    assert "nodeSelector" not in host["spec"]
    assert host["spec"]["affinity"]["nodeAffinity"] == {}
    kept = rewrite_pod(pod, CFG)["spec"]
    assert kept["nodeSelector"] == {"disktype": "ssd"}, "the host scheduler needs it"
    assert host["spec"]["priorityClassName"] == "high-x-vc"


@pytest.mark.parametrize("patch", [{"hostNetwork": True}, {"hostPID": True}, {"hostIPC": True},
                                   {"volumes": [{"name": "h", "hostPath": {"path": "/etc"}}]}])
def test_host_access_policy(patch):
    pod = {"metadata": {"name": "p", "namespace": "n"},
           "spec": {"containers": [{"name": "c", "image": "x"}], **patch}}
    with pytest.raises(PodRejected):
        rewrite_pod(pod, CFG)
    stripped = rewrite_pod(pod, replace(CFG, host_access="strip"))["spec"]
    assert not any(stripped.get(f) for f in ("hostNetwork", "hostPID", "hostIPC"))
    assert not any("hostPath" in v for v in stripped.get("volumes", []))
    allowed = rewrite_pod(pod, replace(CFG, host_access="allow"))["spec"]
    for k, v in patch.items():
        if k != "volumes":
            assert allowed[k] == v


def test_affinity_namespaces_and_namespace_selector():
    from vkube.syncer.translate import encode_label_key
    pod = {"metadata": {"name": "p", "namespace": "n"}, "spec": {
        "containers": [{"name": "c", "image": "x"}],
        "affinity": {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
            {"labelSelector": {"matchLabels": {"a": "b"}}, "namespaces": ["x", "y"],
             "topologyKey": "k"},
            {"labelSelector": {"matchLabels": {"a": "b"}},
             "namespaceSelector": {"matchLabels": {"team": "t"}}, "topologyKey": "k"},
        ]}}}}
    t1, t2 = rewrite_pod(pod, CFG)["spec"]["affinity"]["podAffinity"][
        "requiredDuringSchedulingIgnoredDuringExecution"]
    assert "namespaces" not in t1 and "namespaceSelector" not in t2
    assert t1["labelSelector"]["matchExpressions"] == [
        {"key": LABEL_NAMESPACE, "operator": "In", "values": ["x", "y"]}]
    assert t2["labelSelector"]["matchLabels"][encode_label_key("team", kind="n")] == "t"
    assert LABEL_NAMESPACE not in t2["labelSelector"]["matchLabels"]


def test_service_env_vars_skip_headless_and_sort():
    svcs = [{"metadata": {"name": "b-svc"}, "spec": {"clusterIP": "1.1.1.1",
                                                     "ports": [{"port": 80, "protocol": "UDP"}]}},
            {"metadata": {"name": "a"}, "spec": {"clusterIP": "None", "ports": [{"port": 1}]}}]
    env = {e["name"]: e["value"] for e in service_env_vars(svcs)}
    assert env["B_SVC_SERVICE_HOST"] == "1.1.1.1"
    assert env["B_SVC_PORT"] == "udp://1.1.1.1:80"
    assert env["B_SVC_PORT_80_UDP_PROTO"] == "udp"
    assert not any(k.startswith("A_") for k in env)


def _downward_pod() -> dict:
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "dw", "namespace": "demo", "uid": "u9",
                     "labels": {"app": "web", "example.com/tier": "front end"},
                     "annotations": {"note": 'say "hi"\nbye', "vkube.io/x": "kept"}},
        "spec": {"containers": [{"name": "c", "image": "busybox", "env": [
            {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
            {"name": "TIER", "valueFrom": {"fieldRef": {
                "fieldPath": "metadata.labels['example.com/tier']"}}}]}],
            "volumes": [
                {"name": "info", "downwardAPI": {"items": [
                    {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
                    {"path": "annotations", "fieldRef": {"fieldPath": "metadata.annotations"}},
                    {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}}]}},
                {"name": "proj", "projected": {"sources": [{"downwardAPI": {"items": [
                    {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]}}]}}]},
    }


def _field(host: dict, path: str) -> str:
    """What the kubelet would write for ``fieldPath`` of the host pod (annotations only)."""
    import re

    meta = host["metadata"]
    m = re.fullmatch(r"metadata\.(labels|annotations)\['(.+)'\]", path)
    assert m, f"{path} does not read a single host label/annotation"
    return meta[m.group(1)][m.group(2)]


def test_downward_api_shows_the_virtual_pod():
    """Downward API files and env show what the virtual pod shows, in the kubelet's format
    (sorted key="value" lines, Go quoting), not the host pod's translated metadata."""
    vpod = _downward_pod()
    host = rewrite_pod(vpod, CFG)
    items = host["spec"]["volumes"][0]["downwardAPI"]["items"]
    got = {it["path"]: _field(host, it["fieldRef"]["fieldPath"]) for it in items}
    assert got["labels"] == 'app="web"\nexample.com/tier="front end"'
    assert got["annotations"] == 'note="say \\"hi\\"\\nbye"\nvkube.io/x="kept"'
    assert got["name"] == "dw"
    proj = host["spec"]["volumes"][1]["projected"]["sources"][0]["downwardAPI"]["items"][0]
    assert _field(host, proj["fieldRef"]["fieldPath"]) == got["labels"]
    env = {e["name"]: e for e in host["spec"]["containers"][0]["env"]}
    assert _field(host, env["POD"]["valueFrom"]["fieldRef"]["fieldPath"]) == "dw"
    assert _field(host, env["NS"]["valueFrom"]["fieldRef"]["fieldPath"]) == "demo"
    assert _field(host, env["TIER"]["valueFrom"]["fieldRef"]["fieldPath"]) == "front end"
    # a pod that shows neither carries no copies of them
    plain = rewrite_pod({**vpod, "spec": {"containers": [{"name": "c", "image": "x"}]}}, CFG)
    assert not any(k.startswith("vkube.io/downward") for k in plain["metadata"]["annotations"])


def test_node_selector_confines_host_pods():
    cfg = replace(CFG, node_selector={"pool": "tenants", "disk": "ssd"})
    pod = copy.deepcopy(POD)
    pod["spec"]["nodeSelector"] = {"disk": "hdd", "gpu": "no"}
    host = rewrite_pod(pod, cfg)
    assert host["spec"]["nodeSelector"] == {"pool": "tenants", "disk": "ssd", "gpu": "no"}
    # with the virtual scheduler (node kept) the enforced selector still goes down
    host = rewrite_pod(pod, replace(cfg, keep_node_name=True))
    assert host["spec"]["nodeSelector"] == {"pool": "tenants", "disk": "ssd"}
    assert "nodeSelector" not in rewrite_pod(POD, CFG)["spec"]


#: every inline volume source upstream's VisitPodSecretNames says names a Secret
SECRET_VOLUMES = [
    {"name": "az", "azureFile": {"secretName": "s-az", "shareName": "x"}},
    {"name": "ceph", "cephfs": {"monitors": ["m"], "secretRef": {"name": "s-ceph"}}},
    {"name": "cin", "cinder": {"volumeID": "v", "secretRef": {"name": "s-cin"}}},
    {"name": "flex", "flexVolume": {"driver": "d", "secretRef": {"name": "s-flex"}}},
    {"name": "isc", "iscsi": {"targetPortal": "t", "iqn": "i", "lun": 0,
                              "secretRef": {"name": "s-isc"}}},
    {"name": "rbd", "rbd": {"monitors": ["m"], "image": "i", "secretRef": {"name": "s-rbd"}}},
    {"name": "sio", "scaleIO": {"gateway": "g", "system": "s", "secretRef": {"name": "s-sio"}}},
    {"name": "sos", "storageos": {"volumeName": "v", "secretRef": {"name": "s-sos"}}},
    {"name": "csi", "csi": {"driver": "d", "nodePublishSecretRef": {"name": "s-csi"}}},
]


def test_every_secret_a_volume_names_is_translated_and_synced():
    pod = {"metadata": {"name": "p", "namespace": "n"},
           "spec": {"containers": [{"name": "c", "image": "x"}], "volumes": SECRET_VOLUMES}}
    names = {f"s-{v['name']}" for v in SECRET_VOLUMES}
    assert referenced_objects(pod)[1] == names, "each goes down with the pod"
    host = rewrite_pod(pod, replace(CFG, host_access="allow"))
    flat = repr(host["spec"]["volumes"])
    for n in names:
        assert f"'{tr.host_name(n, 'n')}'" in flat and f"'{n}'" not in flat


def test_volumes_the_node_mounts_are_host_access():
    """nfs, iscsi, rbd, cephfs, gitRepo, cloud disks…: the node mounts them from its own
    network, files or cloud account, past the pod's sandbox and NetworkPolicies."""
    vols = SECRET_VOLUMES + [{"name": "nfs", "nfs": {"server": "10.0.0.1", "path": "/"}},
                             {"name": "git", "gitRepo": {"repository": "r"}},
                             {"name": "pd", "gcePersistentDisk": {"pdName": "other-tenant"}}]
    pod = {"metadata": {"name": "p", "namespace": "n"},
           "spec": {"containers": [{"name": "c", "image": "x"}], "volumes": vols}}
    with pytest.raises(PodRejected) as e:
        rewrite_pod(pod, CFG)
    assert "volume 'nfs' uses nfs" in str(e.value) and "volume 'pd' uses gcePersistentDisk" in str(e.value)
    assert "volume 'csi'" not in str(e.value) and "volume 'az' uses azureFile" in str(e.value)
    stripped = rewrite_pod(pod, replace(CFG, host_access="strip"))["spec"]["volumes"]
    node = {v["name"] for v in vols} - {"csi"}
    assert [sorted(v) for v in stripped if v["name"] in node] == [["emptyDir", "name"]] * len(node)


def test_ephemeral_claim_templates_are_translated():
    eph = {"volumeClaimTemplate": {
        "metadata": {"labels": {"app": "a", "vkube.io/managed-by": "other"},
                     "annotations": {"vkube.io/object-name": "x", "note": "n"}},
        "spec": {"storageClassName": "fast", "volumeName": "pv1",
                 "dataSource": {"kind": "PersistentVolumeClaim", "name": "src"},
                 "accessModes": ["ReadWriteOnce"],
                 "resources": {"requests": {"storage": "1Gi"}}}}}
    pod = {"metadata": {"name": "p", "namespace": "n"},
           "spec": {"containers": [{"name": "c", "image": "x"}],
                    "volumes": [{"name": "scratch", "ephemeral": eph}]}}
    cfg = replace(CFG, sync_storage_classes=True)
    tmpl = rewrite_pod(pod, cfg)["spec"]["volumes"][0]["ephemeral"]["volumeClaimTemplate"]
    assert tmpl["metadata"] == {"labels": {"app": "a"}, "annotations": {"note": "n"}}
    assert tmpl["spec"]["storageClassName"] == "fast-x-vc"
    assert tmpl["spec"]["volumeName"] == "pv1-x-vc"
    assert tmpl["spec"]["dataSource"]["name"] == tr.host_name("src", "n")
    plain = rewrite_pod(pod, CFG)["spec"]["volumes"][0]["ephemeral"]["volumeClaimTemplate"]
    assert plain["spec"]["storageClassName"] == "fast", "the host's own classes otherwise"


def test_ephemeral_claim_templates_keep_to_the_allowed_storage_classes():
    from vkube.syncer.admission import PodAdmission
    from vkube.syncer.values import load_values

    values = load_values("isolation:\n  allowedStorageClasses: [cheap]\n")
    pod = {"metadata": {"name": "p", "namespace": "n"},
           "spec": {"containers": [{"name": "c", "image": "x"}], "volumes": [
               {"name": "ok", "ephemeral": {"volumeClaimTemplate": {"spec": {
                   "storageClassName": "cheap"}}}},
               {"name": "bad", "ephemeral": {"volumeClaimTemplate": {"spec": {
                   "storageClassName": "premium"}}}}]}}
    msg = PodAdmission(values).check(pod)
    assert msg == ("spec.volumes[1].ephemeral.volumeClaimTemplate.spec.storageClassName: "
                   "storage class 'premium' is not allowed in this virtual cluster "
                   "(allowed: cheap)")
    pod["spec"]["volumes"].pop()
    assert PodAdmission(values).check(pod) is None


def test_host_access_reject_is_pod_security_baseline():
    """``hostAccess: reject`` (the default) refuses what Pod Security baseline calls host
    access: privileged containers, capabilities past baseline's, unconfined seccomp…"""
    from vkube.syncer.admission import PodAdmission
    from vkube.syncer.values import load_values

    def pod(sc: dict) -> dict:
        return {"metadata": {"name": "p", "namespace": "n"},
                "spec": {"containers": [{"name": "c", "image": "x", "securityContext": sc}]}}
    reject = PodAdmission(load_values(""))
    msg = reject.check(pod({"privileged": True}))
    assert msg == ('host access is not allowed (sync.pods.hostAccess: reject): violates '
                   'PodSecurity "baseline:latest": privileged (container "c" must not set '
                   'securityContext.privileged=true) — change the pod, or set '
                   'sync.pods.hostAccess: strip (removed on the host) or allow in the values '
                   '(vkube create NAME --upgrade -f values.yaml)')

    assert "SYS_ADMIN" in reject.check(pod({"capabilities": {"add": ["SYS_ADMIN"]}}))
    assert "Unconfined" in reject.check(pod({"seccompProfile": {"type": "Unconfined"}}))
    assert reject.check(pod({"capabilities": {"add": ["NET_BIND_SERVICE"]}})) is None
    for policy in ("strip", "allow"):
        values = load_values(f"sync:\n  pods:\n    hostAccess: {policy}\n")
        assert PodAdmission(values).check(pod({"privileged": True})) is None


def test_host_access_strip_takes_baseline_host_access_away():
    pod = {"metadata": {"name": "p", "namespace": "n", "annotations": {
        "container.apparmor.security.beta.kubernetes.io/c": "unconfined",
        "container.apparmor.security.beta.kubernetes.io/d": "runtime/default"}},
        "spec": {"securityContext": {"sysctls": [{"name": "kernel.msgmax", "value": "1"},
                                                 {"name": "net.ipv4.tcp_syncookies", "value": "1"}],
                                     "seccompProfile": {"type": "Unconfined"}},
                 "schedulerName": "host-special", "runtimeClassName": "runc-privileged",
                 "containers": [{"name": "c", "image": "x", "securityContext": {
                     "privileged": True, "procMount": "Unmasked",
                     "capabilities": {"add": ["SYS_ADMIN", "CHOWN"], "drop": ["NET_RAW"]},
                     "seLinuxOptions": {"type": "spc_t"}},
                     "livenessProbe": {"httpGet": {"host": "169.254.169.254", "port": 80}}}]}}
    removed: list[str] = []
    host = rewrite_pod(pod, replace(CFG, host_access="strip"), removed)
    spec = host["spec"]
    # each removed field is named (the syncer says them in a HostAccessStripped event)
    assert removed == [
        "spec.runtimeClassName", "spec.securityContext.seccompProfile",
        "spec.securityContext.sysctls kernel.msgmax",
        "spec.containers[0].securityContext.seLinuxOptions",
        "spec.containers[0].securityContext.privileged",
        "spec.containers[0].securityContext.capabilities.add SYS_ADMIN",
        "spec.containers[0].securityContext.procMount",
        "spec.containers[0].livenessProbe.httpGet.host",
        "metadata.annotations[container.apparmor.security.beta.kubernetes.io/c]"]
    assert spec["securityContext"] == {"sysctls": [{"name": "net.ipv4.tcp_syncookies", "value": "1"}]}
    assert spec["containers"][0]["securityContext"] == {
        "procMount": "Default", "capabilities": {"add": ["CHOWN"], "drop": ["NET_RAW"]}}
    assert spec["containers"][0]["livenessProbe"] == {"httpGet": {"port": 80}}
    assert "schedulerName" not in spec and "runtimeClassName" not in spec
    ann = host["metadata"]["annotations"]
    assert "container.apparmor.security.beta.kubernetes.io/c" not in ann
    assert ann["container.apparmor.security.beta.kubernetes.io/d"] == "runtime/default"
    allowed_removed: list[str] = []
    allowed = rewrite_pod(pod, replace(CFG, host_access="allow"), allowed_removed)["spec"]
    assert allowed_removed == []
    assert allowed["schedulerName"] == "host-special"
    assert allowed["containers"][0]["securityContext"]["privileged"] is True


def test_runtime_class_is_the_hosts_unless_the_operator_forces_one():
    pod = {"metadata": {"name": "p", "namespace": "n"},
           "spec": {"runtimeClassName": "runc", "schedulerName": "mine",
                    "containers": [{"name": "c", "image": "x"}]}}
    with pytest.raises(PodRejected, match=r"spec.runtimeClassName 'runc' \(a RuntimeClass of the host\)"):
        rewrite_pod(pod, CFG)
    forced = rewrite_pod(pod, replace(CFG, runtime_class_name="gvisor"))["spec"]
    assert forced["runtimeClassName"] == "gvisor" and "schedulerName" not in forced
    del pod["spec"]["runtimeClassName"]
    assert "schedulerName" not in rewrite_pod(pod, CFG)["spec"], "the host's default scheduler"


def test_persistent_volume_secret_references_are_found():
    from vkube.syncer.storage import pv_secret_fields

    assert pv_secret_fields({"csi": {"driver": "d", "nodePublishSecretRef": {"name": "x"},
                                     "controllerExpandSecretRef": {"name": "y"}},
                             "claimRef": {"name": "c"}}) == [
        "spec.csi.controllerExpandSecretRef", "spec.csi.nodePublishSecretRef"]
    assert pv_secret_fields({"azureFile": {"secretName": "s", "shareName": "x"}}) == [
        "spec.azureFile.secretName"]
    assert pv_secret_fields({"nfs": {"server": "s", "path": "/"}}) == []


def test_strip_names_host_namespaces_ports_volumes_and_port_forwards():
    pod = {"metadata": {"name": "p", "namespace": "n", "annotations": {
        "vkube.io/port-forward-80": "127.0.0.1:6443"}},
        "spec": {"hostNetwork": True, "hostPID": True, "hostIPC": False,
                 "initContainers": [{"name": "i", "image": "x", "ports": [
                     {"containerPort": 53, "hostPort": 53, "hostIP": "0.0.0.0"}]}],
                 "containers": [{"name": "c", "image": "x", "ports": [
                     {"containerPort": 80}, {"containerPort": 81, "hostPort": 8081}]}],
                 "volumes": [{"name": "etc", "hostPath": {"path": "/etc"}}]}}
    removed: list[str] = []
    host = rewrite_pod(pod, replace(CFG, host_access="strip"), removed)
    assert removed == ["spec.hostNetwork", "spec.hostPID", "spec.volumes[0].hostPath",
                       "spec.initContainers[0].ports[0].hostPort",
                       "spec.initContainers[0].ports[0].hostIP",
                       "spec.containers[0].ports[1].hostPort",
                       "metadata.annotations[vkube.io/port-forward-80]"]
    assert "vkube.io/port-forward-80" not in host["metadata"]["annotations"]
    assert host["spec"]["containers"][0]["ports"] == [{"containerPort": 80}, {"containerPort": 81}]
    with pytest.raises(PodRejected) as e:
        rewrite_pod(pod, CFG)
    assert str(e.value) == ("host access is not allowed: spec.hostNetwork, spec.hostPID, "
                            "volume 'etc' uses hostPath, container 'i' uses a hostPort, "
                            "container 'c' uses a hostPort")


def test_pod_certificate_projection_is_host_access():
    """A projected podCertificate has the host's kubelet mint a client certificate for the
    host's API (from the host's signers): refused under reject, removed under strip."""
    sources = [{"configMap": {"name": "cfg"}},
               {"podCertificate": {"signerName": "kubernetes.io/kube-apiserver-client-pod",
                                   "keyType": "ED25519", "credentialBundlePath": "creds.pem"}}]
    pod = {"metadata": {"name": "p", "namespace": "n"},
           "spec": {"containers": [{"name": "c", "image": "x"}], "volumes": [
               {"name": "mixed", "projected": {"sources": copy.deepcopy(sources)}},
               {"name": "only", "projected": {"sources": sources[1:]}}]}}
    with pytest.raises(PodRejected) as e:
        rewrite_pod(pod, CFG)
    assert str(e.value) == (
        "host access is not allowed: spec.volumes[0].projected.sources[1].podCertificate: a "
        "podCertificate projection has the host's kubelet mint a client certificate for the "
        "host's API server, spec.volumes[1].projected.sources[0].podCertificate: a "
        "podCertificate projection has the host's kubelet mint a client certificate for the "
        "host's API server")
    removed: list[str] = []
    vols = rewrite_pod(pod, replace(CFG, host_access="strip"), removed)["spec"]["volumes"]
    assert removed == ["spec.volumes[0].projected.sources[1].podCertificate",
                       "spec.volumes[1].projected.sources[0].podCertificate"]
    assert vols[0] == {"name": "mixed", "projected": {"sources": [
        {"configMap": {"name": tr.host_name("cfg", "n")}}]}}
    assert vols[1] == {"name": "only", "emptyDir": {}}
    kept = rewrite_pod(pod, replace(CFG, host_access="allow"))["spec"]["volumes"]
    assert kept[1]["projected"]["sources"][0]["podCertificate"]["signerName"].startswith("kubernetes.io/")


def test_cluster_trust_bundle_projection_is_host_access():
    """A projected clusterTrustBundle is filled by the host's kubelet from the HOST's
    ClusterTrustBundles (by name or signer): the wrong cluster's bundle. Treated like
    podCertificate: refused under reject naming the field, removed under strip, kept under allow."""
    by_name = {"clusterTrustBundle": {"name": "example.com:signer:abc", "path": "ca.pem"}}
    by_signer = {"clusterTrustBundle": {"signerName": "example.com/signer", "path": "b.pem",
                                        "labelSelector": {"matchLabels": {"a": "b"}}}}
    pod = {"metadata": {"name": "p", "namespace": "n"},
           "spec": {"containers": [{"name": "c", "image": "x"}], "volumes": [
               {"name": "mixed", "projected": {"sources": [{"configMap": {"name": "cfg"}},
                                                           by_name]}},
               {"name": "only", "projected": {"sources": [by_signer]}}]}}
    why = ("a clusterTrustBundle projection has the host's kubelet read the host's "
           "ClusterTrustBundles, not this cluster's")
    with pytest.raises(PodRejected) as e:
        rewrite_pod(pod, CFG)
    assert str(e.value) == (
        f"host access is not allowed: spec.volumes[0].projected.sources[1].clusterTrustBundle: "
        f"{why}, spec.volumes[1].projected.sources[0].clusterTrustBundle: {why}")
    removed: list[str] = []
    vols = rewrite_pod(pod, replace(CFG, host_access="strip"), removed)["spec"]["volumes"]
    assert removed == ["spec.volumes[0].projected.sources[1].clusterTrustBundle",
                       "spec.volumes[1].projected.sources[0].clusterTrustBundle"]
    assert vols[0] == {"name": "mixed", "projected": {"sources": [
        {"configMap": {"name": tr.host_name("cfg", "n")}}]}}
    assert vols[1] == {"name": "only", "emptyDir": {}}
    kept = rewrite_pod(pod, replace(CFG, host_access="allow"))["spec"]["volumes"]
    assert kept[0]["projected"]["sources"][1] == by_name
    assert kept[1]["projected"]["sources"][0] == by_signer


def test_claim_data_sources_in_other_namespaces_are_refused_selectors_confined():
    """A claim (the tenant's own, or one the host makes from an ephemeral volume's template)
    naming a data source in another namespace would reach a host namespace (or, translated,
    skip the source namespace's ReferenceGrant): refused naming the field. A claim's PV
    selector picks only this cluster's PVs on the host."""
    from vkube.syncer.admission import PodAdmission
    from vkube.syncer.claimspec import claim_spec_problems, translate_claim_spec
    from vkube.syncer.values import load_values

    tmpl_spec = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}},
                 "selector": {"matchLabels": {"tier": "gold", "vkube.io/managed-by": "other"},
                              "matchExpressions": [{"key": "zone", "operator": "In",
                                                    "values": ["a"]}]},
                 "dataSourceRef": {"kind": "PersistentVolumeClaim", "name": "src",
                                   "namespace": "n"}}
    pod = {"metadata": {"name": "p", "namespace": "n"},
           "spec": {"containers": [{"name": "c", "image": "x"}],
                    "volumes": [{"name": "s", "ephemeral": {"volumeClaimTemplate": {
                        "spec": tmpl_spec}}}]}}
    admission = PodAdmission(load_values(""))
    assert admission.check(pod) is None, "its own namespace, named: a local source"
    host = rewrite_pod(pod, CFG)["spec"]["volumes"][0]["ephemeral"]["volumeClaimTemplate"]["spec"]
    assert host["dataSourceRef"] == {"kind": "PersistentVolumeClaim", "name": tr.host_name("src", "n")}
    assert host["selector"] == {"matchLabels": {"tier": "gold", "vkube.io/managed-by": "vc"},
                                "matchExpressions": [{"key": "zone", "operator": "In",
                                                      "values": ["a"]}]}
    tmpl_spec["dataSourceRef"]["namespace"] = "kube-system"
    assert admission.check(pod) == (
        "spec.volumes[0].ephemeral.volumeClaimTemplate.spec.dataSourceRef.namespace: data "
        "source kube-system/src is in another namespace; cross-namespace volume data sources "
        "(and their ReferenceGrants) are not synced to the host — copy the source into this "
        "namespace")
    # the claim syncer's rule is the same one
    assert claim_spec_problems({"dataSourceRef": {"name": "x", "namespace": "m"}}, "n") == [
        "spec.dataSourceRef.namespace: data source m/x is in another namespace; "
        "cross-namespace volume data sources (and their ReferenceGrants) are not synced to "
        "the host — copy the source into this namespace"]
    spec = {"volumeName": "pv", "selector": {}, "storageClassName": "fast",
            "dataSource": {"kind": "VolumeSnapshot", "apiGroup": "snapshot.storage.k8s.io",
                           "name": "snap"}}
    translate_claim_spec(spec, "n", tr, sync_storage_classes=True, volume_name=lambda v: None)
    assert spec == {"selector": {"matchLabels": {"vkube.io/managed-by": "vc"}},
                    "storageClassName": tr.host_cluster_name("fast"),
                    "dataSource": {"kind": "VolumeSnapshot", "apiGroup": "snapshot.storage.k8s.io",
                                   "name": tr.host_name("snap", "n")}}
    # static provisioning (class ""): confined to this cluster's PVs even without a selector;
    # a claim that may be provisioned dynamically gets none (a selector turns that off)
    for classes in (True, False):
        static = {"storageClassName": "", "volumeName": "pv"}
        translate_claim_spec(static, "n", tr, sync_storage_classes=classes,
                             volume_name=lambda v: tr.host_cluster_name(v))
        assert static == {"storageClassName": "", "volumeName": tr.host_cluster_name("pv"),
                          "selector": {"matchLabels": {"vkube.io/managed-by": "vc"}}}
        for dynamic in ({"storageClassName": "fast"}, {}):
            translate_claim_spec(dynamic, "n", tr, sync_storage_classes=classes,
                                 volume_name=lambda v: None)
            assert "selector" not in dynamic


def test_port_forward_targets_are_what_the_owner_published():
    """``vkube.io/port-forward-PORT`` points the embedded kubelet at an address of this
    machine: under ``reject`` only a target ``sync.pods.portForwardTargets`` lists (parsed as
    the kubelet dials it, so no spelling gets past), under ``strip`` the others are removed,
    ``allow`` takes any; shared mode and isolation never honour it."""
    import pytest

    from vkube.syncer.admission import PodAdmission
    from vkube.syncer.values import ValuesError, load_values, port_forward_targets

    def pod(*targets: str) -> dict:
        return {"metadata": {"name": "p", "namespace": "n", "annotations": {
            f"vkube.io/port-forward-{80 + i}": t for i, t in enumerate(targets)}},
            "spec": {"containers": [{"name": "c", "image": "x"}]}}
    listed = load_values("sync:\n  pods:\n    portForwardTargets: ['127.0.0.1:8443', '[::1]:9']\n")
    check = PodAdmission(listed, cluster="dev").check
    for ok in ("127.0.0.1:8443", " 127.0.0.1:08443", "[::1]:9", ":8443"):
        assert check(pod(ok)) is None, ok
    for bad in ("127.0.0.2:8443", "127.0.0.1:5432", "localhost:8443", "127.0.0.1", "x"):
        assert "sync.pods.portForwardTargets does not list" in check(pod(bad)), bad
    assert check(pod("127.0.0.1:8443", "127.0.0.1:5432")) == (
        "annotations vkube.io/port-forward-81: 127.0.0.1:5432 point the embedded host's kubelet "
        "at an address of this machine that sync.pods.portForwardTargets does not list — add "
        "127.0.0.1:5432 to sync.pods.portForwardTargets in the values (vkube create dev "
        "--upgrade -f values.yaml), or remove them")
    assert "does not list" in PodAdmission(load_values("")).check(pod("127.0.0.1:8443"))
    assert PodAdmission(load_values("sync:\n  pods:\n    hostAccess: allow\n")).check(
        pod("127.0.0.1:5432")) is None
    for text in ("controlPlane:\n  mode: shared\n",
                 "controlPlane:\n  mode: shared\nsync:\n  pods:\n    hostAccess: allow\n"):
        assert "shared mode never may" in PodAdmission(load_values(text)).check(pod("127.0.0.1:1"))
    assert "not allowed with isolation" in PodAdmission(
        load_values("isolation:\n  enabled: true\n")).check(pod("127.0.0.1:1"))

    strip = replace(CFG, host_access="strip", port_forward_targets=port_forward_targets(listed))
    ann = rewrite_pod(pod("127.0.0.1:8443", "127.0.0.1:5432"), strip)["metadata"]["annotations"]
    assert ann.get("vkube.io/port-forward-80") == "127.0.0.1:8443"
    assert "vkube.io/port-forward-81" not in ann

    for text, words in (("sync:\n  pods:\n    portForwardTargets: ['db.local:5432']\n", "is not HOST:PORT"),
                        ("sync:\n  pods:\n    portForwardTargets: ['127.0.0.1:70000']\n", "is not HOST:PORT"),
                        ("isolation:\n  enabled: true\nsync:\n  pods:\n    portForwardTargets: ['127.0.0.1:1']\n",
                         "cannot hold with isolation.enabled"),
                        ("controlPlane:\n  mode: shared\nsync:\n  pods:\n    portForwardTargets: ['127.0.0.1:1']\n",
                         "cannot hold with controlPlane.mode: shared")):
        with pytest.raises(ValuesError, match="sync.pods.portForwardTargets") as e:
            load_values(text)
        assert words in str(e.value)


@pytest.mark.parametrize("pc", ["system-cluster-critical", "system-node-critical"])
def test_system_priority_class_named_by_its_host_copy(pc):
    """A host reserves system- class names: a pod naming a built-in class names the class's
    host copy (vkube-NAME-DIGEST, valued at the cap), never a system- name; without
    sync.priorityclasses it goes down without a class."""
    pod = copy.deepcopy(POD)
    pod["spec"]["priorityClassName"] = pc
    host = rewrite_pod(pod, replace(CFG, sync_priority_classes=True))["spec"]
    name = system_class_host_name(CFG.translator.vc, pc)
    assert host["priorityClassName"] == name and name.startswith(f"vkube-{pc}-")
    assert "-x-" not in name and name != system_class_host_name("other", pc)
    assert "priority" not in host and "preemptionPolicy" not in host
    off = rewrite_pod(pod, CFG)["spec"]
    assert "priorityClassName" not in off and "priority" not in off
    said = system_priority_message(pc, 1000)
    assert pc in said and "value 1000" in said and "maxValue" in said
