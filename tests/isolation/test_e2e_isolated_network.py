"""The isolation NetworkPolicies enforced on the embedded host, tried from inside the pods with
``kubectl exec … nc/nslookup``: an isolated tenant's pods resolve names through its DNS and
reach each other and its API server, but no private address — not another tenant's pods, even
by IP — while a tenant without isolation is not restricted."""

from __future__ import annotations

from tests.cli.conftest import User, eventually, user  # noqa: F401  (the fixture)
from tests.conftest import kubectl

PODS = """
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: default, labels: {app: web}}
spec:
  containers: [{name: nginx, image: nginx, ports: [{containerPort: 80}]}]
---
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: default}
spec:
  containers: [{name: c, image: busybox, command: [sleep, "3600"]}]
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec: {selector: {app: web}, ports: [{port: 80}]}
"""


def ready(u: User, kubeconfig: str) -> None:
    u.kubectl("--kubeconfig", kubeconfig, "apply", "-f", "-", input=PODS)
    u.kubectl("--kubeconfig", kubeconfig, "wait", "pod/web", "pod/client", "--for=condition=Ready",
              "--timeout=120s", timeout=150)


def ex(u: User, kubeconfig: str, *cmd: str):  # noqa: ANN201
    return u.kubectl("--kubeconfig", kubeconfig, "exec", "client", "--", *cmd, check=False,
                     timeout=90)


def test_isolated_pods_reach_their_own_but_no_private_address(user: User, tmp_path) -> None:
    user.vkube("create", "open")
    open_kc = tmp_path / "open.kubeconfig"
    open_kc.write_text(user.kubeconfig.read_text())
    user.vkube("create", "iso", "--isolate")
    iso_kc = tmp_path / "iso.kubeconfig"
    iso_kc.write_text(user.kubeconfig.read_text())
    ready(user, str(open_kc))
    ready(user, str(iso_kc))
    open_web = user.kubectl("--kubeconfig", str(open_kc), "get", "pod", "web", "-o",
                            "jsonpath={.status.podIP}").stdout.strip()
    iso_web = user.kubectl("--kubeconfig", str(iso_kc), "get", "pod", "web", "-o",
                           "jsonpath={.status.podIP}").stdout.strip()
    assert open_web and iso_web

    def own_service() -> None:  # DNS (the control plane's, allowed by the policy) + its pods
        r = ex(user, str(iso_kc), "nc", "-z", "-w", "2", "web", "80")
        assert r.returncode == 0, r
    eventually(own_service, timeout=60, delay=1)
    assert ex(user, str(iso_kc), "nslookup", "kubernetes.default").returncode == 0
    env = user.kubectl("--kubeconfig", str(iso_kc), "exec", "client", "--", "env").stdout
    host = next(line.split("=", 1)[1] for line in env.splitlines()
                if line.startswith("KUBERNETES_SERVICE_HOST="))
    port = next(line.split("=", 1)[1] for line in env.splitlines()
                if line.startswith("KUBERNETES_SERVICE_PORT="))
    r = ex(user, str(iso_kc), "nc", "-z", "-w", "2", host, port)
    assert r.returncode == 0, r  # the tenant's own API server

    # another tenant's pod, by IP: a private address, refused by the isolation policy
    r = ex(user, str(iso_kc), "nc", "-z", "-w", "2", open_web, "80")
    assert r.returncode == 1 and "timed out" in r.stderr and "vkube-isolation-iso" in r.stderr, r
    r = ex(user, str(iso_kc), "nc", "-z", "-w", "2", "10.20.30.40", "443")
    assert r.returncode == 1 and "egress from pod" in r.stderr, r
    # a public address is allowed by the policy (the embedded host routes nothing off the machine)
    r = ex(user, str(iso_kc), "nc", "-z", "-w", "2", "8.8.8.8", "53")
    assert r.returncode == 1 and "Network is unreachable" in r.stderr, r

    # the embedded kubelet's port-forward annotation names a host address: refused with
    # isolation, on create and on update, so an isolated tenant cannot point it at another
    # tenant's API server or kubelet
    user.kubectl("--kubeconfig", str(iso_kc), "run", "fwd", "--image=nginx",
                 f"--annotations=vkube.io/port-forward-80=127.0.0.1:{port}")
    user.kubectl("--kubeconfig", str(iso_kc), "annotate", "pod", "web",
                 f"vkube.io/port-forward-80=127.0.0.1:{port}")

    def refused() -> None:
        text = user.kubectl("--kubeconfig", str(iso_kc), "get", "events", "-o",
                            "jsonpath={range .items[*]}{.involvedObject.name}: {.message}{'\\n'}{end}").stdout
        assert "fwd: " in text and "web: update not synced" in text, text
        assert "vkube.io/port-forward-80 not allowed with isolation" in text, text
    eventually(refused, timeout=60, delay=1)
    host_pods = kubectl(user.home / "host" / "kubeconfig", "get", "pods", "-n", "vkube-iso",
                        "-o", "json").stdout
    assert "fwd-x-default-x-iso" not in host_pods and "vkube.io/port-forward" not in host_pods
    # without isolation, only a target the cluster's owner published (portForwardTargets)
    user.kubectl("--kubeconfig", str(open_kc), "run", "fwd", "--image=nginx",
                 f"--annotations=vkube.io/port-forward-80=127.0.0.1:{port}")

    def open_refused() -> None:
        msg = user.kubectl("--kubeconfig", str(open_kc), "get", "pod", "fwd", "-o",
                           "jsonpath={.status.message}").stdout
        assert f"vkube.io/port-forward-80: 127.0.0.1:{port} point" in msg, msg
        assert "sync.pods.portForwardTargets does not list" in msg, msg
    eventually(open_refused, timeout=60, delay=1)

    # the tenant without isolation reaches the isolated tenant's pod (no ingress policy there)
    r = ex(user, str(open_kc), "nc", "-z", "-w", "2", iso_web, "80")
    assert r.returncode == 0, r
