"""Issue 11 as a user meets it, through `vkube create` and the real kubectl: storage on the
embedded host, nodeSelector confinement, the downward API, NodePorts, mapped Services that
follow `--upgrade`, one-line errors for bad host kubeconfigs, `vkube values`, honest values."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import yaml

from tests.cli.conftest import User, cleanup, eventually, make_user
from tests.conftest import kubectl

STORAGE_WALK = """
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: local}
provisioner: rancher.io/local-path
volumeBindingMode: WaitForFirstConsumer
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data, namespace: default}
spec:
  storageClassName: local
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 1Gi}}
---
apiVersion: v1
kind: Pod
metadata: {name: db, namespace: default}
spec:
  containers: [{name: db, image: nginx, volumeMounts: [{name: data, mountPath: /data}]}]
  volumes: [{name: data, persistentVolumeClaim: {claimName: data}}]
"""


def get(u: User, *args: str) -> dict:
    return json.loads(u.kubectl("get", *args, "-o", "json").stdout)


def host_get(host_kc, *args: str) -> dict:
    return json.loads(kubectl(host_kc, "get", *args, "-o", "json").stdout)


def test_storage_walk_ends_bound_and_running(shared_host, tmp_path):
    """The guide's storage walk: StorageClass + WaitForFirstConsumer PVC + pod."""
    u = make_user(tmp_path / "u")
    values = tmp_path / "storage.yaml"
    values.write_text("sync: {storageclasses: {enabled: true}}\n")
    try:
        u.vkube("create", "st", "--host-kubeconfig", str(shared_host), "-f", str(values))
        u.kubectl("apply", "-f", "-", input=STORAGE_WALK)

        def bound_and_running() -> tuple[dict, dict]:
            pvc, pod = get(u, "pvc", "data"), get(u, "pod", "db")
            assert pvc["status"].get("phase") == "Bound", pvc["status"]
            assert pod["status"].get("phase") == "Running", pod["status"]
            return pvc, pod
        pvc, pod = eventually(bound_and_running, timeout=120, delay=0.5)
        assert pvc["spec"]["volumeName"].startswith("pvc-")
        hpvc = host_get(shared_host, "pvc", "-n", "vkube-st", "data-x-default-x-st")
        hpod = host_get(shared_host, "pod", "-n", "vkube-st", "db-x-default-x-st")
        assert hpvc["metadata"]["annotations"]["volume.kubernetes.io/selected-node"] == \
            hpod["spec"]["nodeName"] == pod["spec"]["nodeName"]
        pv = host_get(shared_host, "pv", hpvc["spec"]["volumeName"])
        assert pv["status"]["phase"] == "Bound" and pv["spec"]["storageClassName"] == "local-x-st"
    finally:
        cleanup(u)


def test_node_selector_confines_pods_to_the_selected_nodes(shared_host, tmp_path):
    u = make_user(tmp_path / "u")
    values = tmp_path / "nodes.yaml"
    values.write_text('sync: {nodes: {enabled: true, nodeSelector: "issue11/pool=tenants"}}\n')
    kubectl(shared_host, "label", "node", "vkube-host-node-2", "issue11/pool=tenants")
    try:
        u.vkube("create", "sel", "--host-kubeconfig", str(shared_host), "-f", str(values))
        u.kubectl("create", "deployment", "web", "--image=nginx", "--replicas=4")

        def placed() -> list[dict]:
            pods = get(u, "pods", "-l", "app=web")["items"]
            assert len(pods) == 4 and all(p["status"].get("phase") == "Running" for p in pods)
            return pods
        pods = eventually(placed, timeout=120, delay=0.5)
        assert {p["spec"]["nodeName"] for p in pods} == {"vkube-host-node-2"}
        # the node each pod runs on is one the virtual cluster shows, and only those
        nodes = u.kubectl("get", "nodes", "-o", "jsonpath={.items[*].metadata.name}").stdout
        assert nodes.split() == ["vkube-host-node-2"]
        wide = u.kubectl("get", "pods", "-o", "wide").stdout
        assert wide.count("vkube-host-node-2") == 4
        hpods = host_get(shared_host, "pods", "-n", "vkube-sel")["items"]
        assert all(p["spec"]["nodeSelector"]["issue11/pool"] == "tenants" for p in hpods)
    finally:
        cleanup(u)
        kubectl(shared_host, "label", "node", "vkube-host-node-2", "issue11/pool-", check=False)


DOWNWARD = """
apiVersion: v1
kind: Pod
metadata:
  name: dw
  namespace: default
  labels: {app: dw, tier: front}
  annotations: {owner: "team a"}
spec:
  containers:
  - name: c
    image: nginx
    env:
    - {name: POD_NAME, valueFrom: {fieldRef: {fieldPath: metadata.name}}}
    - {name: POD_NS, valueFrom: {fieldRef: {fieldPath: metadata.namespace}}}
    volumeMounts: [{name: info, mountPath: /etc/info}]
  volumes:
  - name: info
    downwardAPI:
      items:
      - {path: labels, fieldRef: {fieldPath: metadata.labels}}
      - {path: annotations, fieldRef: {fieldPath: metadata.annotations}}
"""


def _read(hpod: dict, path: str) -> str:
    """What the kubelet puts in a downward API file/env var of the host pod."""
    key = path.split("['", 1)[1].rstrip("']")
    where = "labels" if path.startswith("metadata.labels") else "annotations"
    return hpod["metadata"][where][key]


def test_downward_api_and_node_port_show_what_the_tenant_sees(shared_host, tmp_path):
    u = make_user(tmp_path / "u")
    try:
        u.vkube("create", "dw", "--host-kubeconfig", str(shared_host))
        u.kubectl("apply", "-f", "-", input=DOWNWARD)
        eventually(lambda: host_get(shared_host, "pod", "-n", "vkube-dw", "dw-x-default-x-dw"),
                   timeout=60, delay=0.5)
        vpod = get(u, "pod", "dw")
        hpod = host_get(shared_host, "pod", "-n", "vkube-dw", "dw-x-default-x-dw")
        items = {i["path"]: i["fieldRef"]["fieldPath"]
                 for i in hpod["spec"]["volumes"][0]["downwardAPI"]["items"]}
        # the kubelet's format: sorted key="value" lines, Go-quoted (as JSON for ASCII text)
        want_labels = "\n".join(f"{k}={json.dumps(v)}"
                                for k, v in sorted(vpod["metadata"]["labels"].items()))
        want_ann = "\n".join(f"{k}={json.dumps(v)}"
                             for k, v in sorted(vpod["metadata"]["annotations"].items()))
        assert "kubectl.kubernetes.io/last-applied-configuration=" in want_ann
        assert _read(hpod, items["labels"]) == want_labels
        assert _read(hpod, items["annotations"]) == want_ann
        env = {e["name"]: e for e in hpod["spec"]["containers"][0]["env"]}
        assert _read(hpod, env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"]) == "dw"
        assert _read(hpod, env["POD_NS"]["valueFrom"]["fieldRef"]["fieldPath"]) == "default"

        # labels change in the virtual cluster: the file follows
        u.kubectl("label", "pod", "dw", "tier=back", "--overwrite")

        def relabelled() -> None:
            h = host_get(shared_host, "pod", "-n", "vkube-dw", "dw-x-default-x-dw")
            assert _read(h, items["labels"]) == 'app="dw"\ntier="back"'
        eventually(relabelled, timeout=60, delay=0.5)

        # a nodePort the user chose is the host's nodePort
        u.kubectl("create", "service", "nodeport", "web", "--tcp=80:80", "--node-port=31015")

        def on_host() -> dict:
            return host_get(shared_host, "svc", "-n", "vkube-dw", "web-x-default-x-dw")
        hsvc = eventually(on_host, timeout=60, delay=0.5)
        assert hsvc["spec"]["ports"][0]["nodePort"] == 31015
        assert get(u, "svc", "web")["spec"]["ports"][0]["nodePort"] == 31015
    finally:
        cleanup(u)


def test_mapped_services_follow_upgrade_and_dropped_keys_are_named(shared_host, tmp_path):
    u = make_user(tmp_path / "u")
    kubectl(shared_host, "create", "service", "clusterip", "issue11-db", "--tcp=5432:5432",
            "-n", "default")
    mapped = tmp_path / "mapped.yaml"
    mapped.write_text("mapServices:\n  fromHost: [{from: default/issue11-db, to: default/db}]\n"
                      "sync: {configmaps: {all: true}}\n")
    plain = tmp_path / "plain.yaml"
    plain.write_text("sync: {configmaps: {all: true}}\n")
    try:
        u.vkube("create", "ms", "--host-kubeconfig", str(shared_host), "-f", str(mapped))
        hip = host_get(shared_host, "svc", "-n", "default", "issue11-db")["spec"]["clusterIP"]
        eventually(lambda: get(u, "svc", "db")["spec"]["clusterIP"] == hip or None,
                   timeout=60, delay=0.5)
        # flags that would be silently ignored on an existing cluster are refused by name
        for flags, want in ((["create", "ms", "--upgrade", "--host-kubeconfig", str(u.kubeconfig)],
                             "--host-kubeconfig: virtual cluster 'ms' runs on host"),
                            (["create", "ms", "--upgrade", "--in-cluster"], "--in-cluster:"),
                            (["create", "ms", "--upgrade", "--tenancy", "namespace"],
                             "--tenancy namespace: --upgrade keeps how 'ms' was made"),
                            (["delete", "ms", "--host-context", "previous"],
                             "--host-context: virtual cluster 'ms' runs on host")):
            out = u.vkube(*flags, check=False)
            assert out.returncode == 1 and want in out.stderr, (flags, out.stderr)
            assert len(out.stderr.strip().splitlines()) == 1
        assert u.list()["ms"]["status"] == "Running"
        out = u.vkube("create", "ms", "--upgrade", "-f", str(plain))
        assert "values replaced: mapServices.fromHost is not in the new -f files" in out.stdout

        def unmapped() -> None:
            assert u.kubectl("get", "svc", "db", check=False).returncode != 0
        eventually(unmapped, timeout=60, delay=0.5)
    finally:
        cleanup(u)
        kubectl(shared_host, "delete", "service", "issue11-db", "-n", "default", check=False)


def test_bad_host_kubeconfigs_are_one_line_errors(tmp_path):
    u = make_user(tmp_path)
    not_yaml = tmp_path / "not-yaml"
    not_yaml.write_text("clusters: [\n  - {name: a\n: : :\n")
    binary = tmp_path / "binary"
    binary.write_bytes(b"\x00\x01\x02 not a kubeconfig \x7f")
    cases = [
        (["--host-kubeconfig", str(not_yaml)], f"host kubeconfig {not_yaml} is not valid YAML"),
        (["--host-kubeconfig", str(binary)], f"host kubeconfig {binary} is not"),
        (["--host-kubeconfig", str(tmp_path / "nope")],
         f"host kubeconfig {tmp_path / 'nope'} not found"),
        (["--host-kubeconfig", str(u.kubeconfig), "--host-context", "prod"],
         "context 'prod' not found in host kubeconfig"),
        (["--host-context", "prod"], "its contexts: previous"),
    ]
    for flags, want in cases:
        for cmd in (["create", "x"], ["list"], ["delete", "x"]):
            out = u.vkube(*cmd, *flags, check=False)
            assert out.returncode == 1, (cmd, flags, out.stderr)
            assert want in out.stderr, (cmd, flags, out.stderr)
            assert len(out.stderr.strip().splitlines()) == 1, out.stderr
            assert "Traceback" not in out.stderr and "--host-" in out.stderr
    assert not (u.home / "clusters" / "x").exists() and not (u.home / "host").exists()


def test_values_command_and_honest_values(tmp_path):
    u = make_user(tmp_path)
    printed = u.vkube("values").stdout
    doc = yaml.safe_load(printed)
    assert doc["sync"]["nodes"]["nodeSelector"] == "" and doc["enableHA"] is False
    assert "# show the real host nodes" in printed
    assert "`vkube values`" in u.vkube("create", "--help").stdout
    # what is printed is accepted as is
    f = tmp_path / "all.yaml"
    f.write_text(printed)
    assert u.vkube("render", "x", "-f", str(f)).returncode == 0
    for text, want in [
        ("enableHA: true\n", "enableHA: needs a shared store"),
        ("replicas: 3\n", "replicas: more than one API server replica needs enableHA"),
        ("sync: {pods: {hostAccess: sometimes}}\n",
         "sync.pods.hostAccess: must be one of reject, strip, allow"),
        ("mapServices: {fromHost: [{from: db, to: default/db}]}\n",
         "mapServices.fromHost[0].from: must be HOSTNAMESPACE/NAME"),
    ]:
        f.write_text(text)
        for cmd in (["create", "x"], ["render", "x"]):
            out = u.vkube(*cmd, "-f", str(f), check=False)
            assert out.returncode == 1 and want in out.stderr, (text, out.stderr)
            assert "`vkube values`" in out.stderr and len(out.stderr.strip().splitlines()) == 1
    assert not (u.home / "clusters" / "x").exists()


def test_vkube_values_needs_no_server_and_is_fast_to_reach():
    out = subprocess.run([sys.executable, "-m", "vkube", "values"], capture_output=True,
                         text=True, env={**os.environ, "VKUBE_HOME": "/nonexistent"}, timeout=60)
    assert out.returncode == 0 and out.stdout.startswith("# vkube values")


def test_embedded_host_context_disconnect_and_delete_everywhere(user: User, tmp_path):
    """A laptop with no kubeconfig: the embedded host gets a context (as kind does),
    `disconnect` lands there, a paused cluster is not CONNECTED, and `delete` removes the
    contexts vkube wrote into other kubeconfig files."""
    user.kubeconfig.unlink()
    user.vkube("create", "lap")
    contexts = user.kubectl("config", "get-contexts", "-o", "name").stdout.split()
    assert sorted(contexts) == ["vkube-host", "vkube_lap"]
    assert user.current_context() == "vkube_lap" and user.list()["lap"]["connected"] is True

    user.vkube("pause", "lap")
    assert user.list()["lap"]["connected"] is False
    assert "True" not in user.vkube("list").stdout
    user.vkube("resume", "lap")
    assert user.list()["lap"]["connected"] is True

    out = user.vkube("disconnect")
    assert "vkube-host" in out.stdout and user.current_context() == "vkube-host"
    nodes = user.kubectl("get", "nodes", "-o", "jsonpath={.items[*].metadata.name}").stdout
    assert sorted(nodes.split()) == ["vkube-host-node-1", "vkube-host-node-2"]

    other = User(user.home, tmp_path / "other-kubeconfig")
    other.vkube("connect", "lap")
    assert other.current_context() == "vkube_lap"
    user.vkube("delete", "lap")
    for u in (user, other):
        names = [c["name"] for c in yaml.safe_load(u.kubeconfig.read_text())["contexts"]]
        assert "vkube_lap" not in names, (u.kubeconfig, names)
    assert user.current_context() == "vkube-host"
