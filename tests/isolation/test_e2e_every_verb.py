"""Every verb of virtual cluster A's API, used by A's tenant with kubectl against what belongs
to virtual cluster B on the same embedded host — B's names, B's host names (its host namespace
and translated pod names), B's API group — and against the host: get, list, watch, create,
update, patch, delete, deletecollection; the subresources log, exec, attach, portforward,
proxy, status, scale, eviction, binding, token; discovery, OpenAPI, service, pod and node
proxy; and a node's kubelet endpoint pointed at B's kubelet. Nothing reaches B: every attempt
fails or acts on A's own objects, and B's objects, virtual and on the host, stay as they were."""

from __future__ import annotations

import copy
import json
import subprocess

import pytest
import yaml

from tests.conftest import KUBECTL, kubectl

from .conftest import cleanup, eventually, make_user

B_APPS = """
apiVersion: v1
kind: Pod
metadata: {name: web, labels: {app: web}}
spec:
  containers: [{name: c, image: nginx, ports: [{containerPort: 80}]}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: cm}
data: {k: b-value}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec: {selector: {app: web}, ports: [{port: 80}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: app}
spec:
  replicas: 1
  selector: {matchLabels: {run: app}}
  template:
    metadata: {labels: {run: app}}
    spec: {containers: [{name: c, image: nginx}]}
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.b.example.com}
spec:
  group: b.example.com
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget}
  versions:
  - name: v1
    served: true
    storage: true
    schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}
"""

B_HOST_POD = "web-x-default-x-b"


def _fails(kc, *args: str, input: str | None = None) -> str:
    proc = kubectl(kc, *args, input=input, check=False, timeout=60)
    assert proc.returncode != 0, (args, proc.stdout)
    return proc.stderr


def _b_state(host_kc, kb) -> dict[str, str]:
    """B's objects as fingerprints: uid and resourceVersion (pods: uid and spec)."""
    out: dict[str, str] = {}
    for kc, ns in ((kb, "default"), (host_kc, "vkube-b")):
        items = json.loads(kubectl(kc, "get", "pods,configmaps,services,deployments",
                                   "-n", ns, "-o", "json").stdout)["items"]
        for o in items:
            m = o["metadata"]
            key = f"{ns}/{o['kind']}/{m['name']}"
            if o["kind"] == "Pod":
                out[key] = m["uid"] + json.dumps(o["spec"]["containers"], sort_keys=True)
            elif o["kind"] == "Deployment":
                out[key] = m["uid"] + str(o["spec"]["replicas"])
            elif o["kind"] == "Service" and ns == "vkube-b":
                out[key] = m["uid"]
            else:
                out[key] = m["uid"] + m["resourceVersion"]
    return out


@pytest.mark.timeout(900)
def test_every_verb_of_a_fails_against_b(shared_host, tmp_path):
    u = make_user(tmp_path / "u")
    try:
        for name in ("b", "a"):
            u.vkube("create", name, "--host-kubeconfig", str(shared_host), "--connect=false")
        ka, kb = tmp_path / "a.yaml", tmp_path / "b.yaml"
        ka.write_text(u.vkube("connect", "a", "--print").stdout)
        kb.write_text(u.vkube("connect", "b", "--print").stdout)
        kubectl(kb, "apply", "-f", "-", input=B_APPS)
        kubectl(kb, "wait", "pod/web", "--for=condition=Ready", "--timeout=120s", timeout=150)
        kubectl(kb, "wait", "crd/widgets.b.example.com", "--for=condition=Established",
                "--timeout=60s", timeout=90)
        kubectl(kb, "create", "-f", "-", input=(
            "{apiVersion: b.example.com/v1, kind: Widget, metadata: {name: w, namespace: default}}"))
        before = _b_state(shared_host, kb)
        b_host_ns = "vkube-b"

        # --- A's credentials against B's API server ----------------------------------------
        da, db = yaml.safe_load(ka.read_text()), yaml.safe_load(kb.read_text())
        b_server = db["clusters"][0]["cluster"]["server"]
        a_at_b = copy.deepcopy(da)  # A's user and A's CA, B's address: B's certificate fails
        a_at_b["clusters"][0]["cluster"]["server"] = b_server
        (tmp_path / "a-at-b.yaml").write_text(yaml.safe_dump(a_at_b))
        err = _fails(tmp_path / "a-at-b.yaml", "get", "pods", "-A")
        assert "certificate" in err, err
        # and trusting B's CA: A's client certificate (of A's CA) is refused at the handshake,
        # as kube-apiserver's TLS refuses a client certificate it cannot verify
        a_trusting_b = copy.deepcopy(a_at_b)
        a_trusting_b["clusters"][0]["cluster"] = db["clusters"][0]["cluster"]
        (tmp_path / "a-trusting-b.yaml").write_text(yaml.safe_dump(a_trusting_b))
        for verb in (("get", "pods", "-A"), ("get", "--raw", "/api"), ("api-resources",),
                     ("delete", "pod", "web"), ("create", "namespace", "x")):
            err = _fails(tmp_path / "a-trusting-b.yaml", *verb)
            # TLS 1.3 verifies the client certificate after the handshake: the server then
            # closes the connection, which kubectl reports as EOF (or a reset) on its request
            refused = ("Unauthorized", "Unable to connect", "certificate", "EOF", "connection reset")
            assert any(w in err for w in refused), (verb, err)
        # A's ServiceAccount token, alone, at B (trusting B's CA): 401
        a_token = kubectl(ka, "create", "token", "default").stdout.strip()
        token_at_b = copy.deepcopy(db)
        token_at_b["users"][0]["user"] = {"token": a_token}
        (tmp_path / "token-at-b.yaml").write_text(yaml.safe_dump(token_at_b))
        for verb in (("get", "pods"), ("get", "--raw", "/openapi/v2"), ("auth", "whoami")):
            err = _fails(tmp_path / "token-at-b.yaml", *verb)
            assert "Unauthorized" in err or "credentials" in err, (verb, err)

        # --- B's names and B's host names, every verb -----------------------------------
        for ns, pod in (("default", "web"), (b_host_ns, B_HOST_POD)):
            assert "NotFound" in _fails(ka, "get", "pod", pod, "-n", ns)
            assert "NotFound" in _fails(ka, "logs", pod, "-n", ns)
            assert "NotFound" in _fails(ka, "exec", pod, "-n", ns, "--", "hostname")
            assert "NotFound" in _fails(ka, "attach", pod, "-n", ns)
            assert "NotFound" in _fails(ka, "port-forward", "-n", ns, f"pod/{pod}", "18080:80")
            assert "NotFound" in _fails(ka, "patch", "pod", pod, "-n", ns, "--subresource=status",
                                        "--type=merge", "-p", '{"status":{"phase":"Failed"}}')
            assert "NotFound" in _fails(ka, "label", "pod", pod, "-n", ns, "x=y")
            assert "NotFound" in _fails(ka, "delete", "pod", pod, "-n", ns, "--wait=false")
            assert "NotFound" in _fails(ka, "replace", "-f", "-", input=json.dumps({
                "apiVersion": "v1", "kind": "Pod", "metadata": {"name": pod, "namespace": ns},
                "spec": {"containers": [{"name": "c", "image": "evil"}]}}))
            for path in (f"/api/v1/namespaces/{ns}/pods/{pod}/proxy/",
                         f"/api/v1/namespaces/{ns}/pods/{pod}:80/proxy/",
                         f"/api/v1/namespaces/{ns}/services/web:80/proxy/",
                         f"/api/v1/namespaces/{ns}/services/web-x-default-x-b:80/proxy/"):
                _fails(ka, "get", "--raw", path)
            for sub, body in (("eviction", {"apiVersion": "policy/v1", "kind": "Eviction",
                                            "metadata": {"name": pod, "namespace": ns}}),
                              ("binding", {"apiVersion": "v1", "kind": "Binding",
                                           "metadata": {"name": pod, "namespace": ns},
                                           "target": {"kind": "Node", "name": "x"}})):
                f = tmp_path / f"{sub}.json"
                f.write_text(json.dumps(body))
                assert "NotFound" in _fails(ka, "create", "--raw",
                                            f"/api/v1/namespaces/{ns}/pods/{pod}/{sub}", "-f", str(f))
        assert "NotFound" in _fails(ka, "get", "configmap", "cm")
        assert "NotFound" in _fails(ka, "patch", "configmap", "cm", "-p", '{"data":{"k":"a"}}')
        assert "NotFound" in _fails(ka, "scale", "deployment", "app", "--replicas=5")
        assert "NotFound" in _fails(ka, "patch", "deployment", "app", "--subresource=scale",
                                    "--type=merge", "-p", '{"spec":{"replicas":0}}')
        assert "not found" in _fails(ka, "create", "token", "default", "-n", b_host_ns)
        assert "NotFound" in _fails(ka, "get", "namespace", b_host_ns)
        # list and watch show A's own objects only
        listed = kubectl(ka, "get", "pods,configmaps,services", "-A", "-o", "name").stdout
        assert "pod/web" not in listed and "configmap/cm" not in listed and "service/web" not in listed
        watched = subprocess.run([KUBECTL, "--kubeconfig", str(ka), "get", "pods", "-A", "-w",
                                  "--request-timeout=3s", "-o", "name"],
                                 capture_output=True, text=True, timeout=60)
        assert "web" not in watched.stdout
        # B's API group: not in A's discovery or OpenAPI, not served
        assert "widgets" not in kubectl(ka, "api-resources", "-o", "name").stdout
        assert "b.example.com" not in kubectl(ka, "api-versions").stdout
        assert "b.example.com" not in kubectl(ka, "get", "--raw", "/openapi/v3").stdout
        assert "b.example.com" not in kubectl(ka, "get", "--raw", "/openapi/v2").stdout
        _fails(ka, "get", "--raw", "/apis/b.example.com/v1/namespaces/default/widgets")
        _fails(ka, "get", "widgets.b.example.com", "-A")

        # create, deletecollection: A's own only (A makes B's names in its own cluster)
        kubectl(ka, "create", "namespace", b_host_ns)
        # TENANT tells whose pod an exec reached (hostname says the virtual name in both)
        kubectl(ka, "run", "web", "--image=nginx", "--env=TENANT=a")
        kubectl(ka, "run", B_HOST_POD, "-n", b_host_ns, "--image=nginx", "--env=TENANT=a")
        kubectl(ka, "create", "configmap", "cm", "--from-literal=k=a-value")
        kubectl(ka, "wait", "pod/web", "--for=condition=Ready", "--timeout=120s", timeout=150)
        kubectl(ka, "wait", "-n", b_host_ns, f"pod/{B_HOST_POD}", "--for=condition=Ready",
                "--timeout=120s", timeout=150)
        host_a = kubectl(shared_host, "get", "pods", "-n", "vkube-a", "-o", "name").stdout
        assert "pod/web-x-default-x-a" in host_a
        assert kubectl(ka, "exec", "web", "--", "hostname").stdout.strip() == "web"  # virtual name
        assert kubectl(ka, "exec", "web", "--", "printenv", "TENANT").stdout == "a\n"
        assert kubectl(ka, "exec", "-n", b_host_ns, B_HOST_POD, "--",
                       "printenv", "TENANT").stdout == "a\n"
        assert kubectl(ka, "get", "configmap", "cm", "-o",
                       "jsonpath={.data.k}").stdout == "a-value"

        # node proxy: not served, for A's node names and for the host's
        nodes = kubectl(ka, "get", "nodes", "-o", "name").stdout.split()
        assert nodes
        for node in nodes:
            n = node.split("/", 1)[1]
            for path in (f"/api/v1/nodes/{n}/proxy/containerLogs/{b_host_ns}/{B_HOST_POD}/c",
                         f"/api/v1/nodes/{n}:10250/proxy/pods",
                         f"/api/v1/nodes/{n}/proxy/healthz"):
                _fails(ka, "get", "--raw", path)

        # a node's kubelet endpoint pointed at B's kubelet (B's syncer) or the host's kubelet:
        # A's API server still reaches pods through A's own kubelet only
        node = kubectl(ka, "get", "pod", "web", "-o", "jsonpath={.spec.nodeName}").stdout
        b_port = json.loads(kubectl(kb, "get", "nodes", "-o", "json").stdout)[
            "items"][0]["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"]
        host_port = json.loads(kubectl(shared_host, "get", "node", node, "-o", "json").stdout)[
            "status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"]
        for port in (b_port, host_port):
            kubectl(ka, "patch", "node", node, "--subresource=status", "--type=merge", "-p",
                    json.dumps({"status": {"daemonEndpoints": {"kubeletEndpoint": {"Port": port}}}}))
            out = kubectl(ka, "exec", "web", "--", "printenv", "TENANT", check=False)
            assert out.stdout == "a\n", (port, out.stdout, out.stderr)
            out = kubectl(ka, "exec", "-n", b_host_ns, B_HOST_POD, "--", "printenv", "TENANT",
                          check=False)
            assert out.stdout == "a\n", (port, out.stdout)
            logs = kubectl(ka, "logs", "-n", b_host_ns, B_HOST_POD, check=False)
            assert logs.returncode == 0 or "NotFound" not in logs.stderr

        kubectl(ka, "delete", "pods", "--all", "-n", "default", "--wait=false")
        kubectl(ka, "delete", "configmaps", "--all", "-n", "default")
        kubectl(ka, "delete", "pods", "--all", "-A", "--wait=false")

        def a_emptied() -> None:
            left = kubectl(shared_host, "get", "pods", "-n", "vkube-a", "-o", "name").stdout
            assert "web-x-default-x-a" not in left, left
        eventually(a_emptied, timeout=120)
        assert _b_state(shared_host, kb) == before
        assert kubectl(kb, "get", "widgets", "-o", "name").stdout.strip() == "widget.b.example.com/w"
    finally:
        cleanup(u)
