"""NetworkPolicies enforced on the embedded host, asked the way a user asks on a real cluster:
``kubectl exec A -- nc/wget/nslookup B`` in a ``vkube create`` cluster. Names resolve through
the pod's dnsConfig (the virtual cluster's DNS, for real), Services go to their endpoints, and
the host's translated NetworkPolicies decide; a pod port annotated ``vkube.io/port-forward-N``
is a real HTTP server of this test."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator

import pytest

from tests.cli.conftest import User, eventually

BODY = b"hello from the real server behind api\n"


@pytest.fixture
def http_server() -> Iterator[int]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
            self.send_response(200)
            self.send_header("Content-Length", str(len(BODY)))
            self.end_headers()
            self.wfile.write(BODY)

        def log_message(self, *args: object) -> None:
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield srv.server_address[1]
    srv.shutdown()
    srv.server_close()


def workloads(port: int) -> str:
    return f"""
apiVersion: v1
kind: Namespace
metadata: {{name: shop, labels: {{team: shop}}}}
---
apiVersion: v1
kind: Namespace
metadata: {{name: ops, labels: {{team: ops}}}}
---
apiVersion: v1
kind: Pod
metadata: {{name: web, namespace: shop, labels: {{app: web}}}}
spec:
  containers: [{{name: nginx, image: nginx, ports: [{{containerPort: 80, name: http}}]}}]
---
apiVersion: v1
kind: Pod
metadata:
  name: api
  namespace: shop
  labels: {{app: api}}
  annotations: {{vkube.io/port-forward-8080: "127.0.0.1:{port}"}}
spec:
  containers: [{{name: api, image: example/api, ports: [{{containerPort: 8080, name: api-http}}]}}]
---
apiVersion: v1
kind: Pod
metadata: {{name: client, namespace: shop, labels: {{role: client}}}}
spec:
  containers: [{{name: c, image: busybox, command: [sleep, "3600"]}}]
---
apiVersion: v1
kind: Pod
metadata: {{name: intruder, namespace: shop, labels: {{role: other}}}}
spec:
  containers: [{{name: c, image: busybox, command: [sleep, "3600"]}}]
---
apiVersion: v1
kind: Pod
metadata: {{name: tool, namespace: ops, labels: {{role: tool}}}}
spec:
  containers: [{{name: c, image: busybox, command: [sleep, "3600"]}}]
---
apiVersion: v1
kind: Service
metadata: {{name: web, namespace: shop}}
spec: {{selector: {{app: web}}, ports: [{{port: 80, targetPort: http}}]}}
---
apiVersion: v1
kind: Service
metadata: {{name: api, namespace: shop}}
spec: {{selector: {{app: api}}, ports: [{{port: 80, targetPort: 8080}}]}}
"""


POLICIES = """
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: default-deny, namespace: shop}
spec: {podSelector: {}, policyTypes: [Ingress]}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web-from-clients, namespace: shop}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress:
  - from:
    - podSelector: {matchLabels: {role: client}}
    - namespaceSelector: {matchLabels: {team: ops}}
    ports: [{port: http}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: api-from-clients, namespace: shop}
spec:
  podSelector: {matchLabels: {app: api}}
  ingress:
  - from: [{podSelector: {matchLabels: {role: client}}}]
    ports: [{port: 8000, endPort: 8100}]
"""

CLIENT_EGRESS = """
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: client-egress, namespace: shop}
spec:
  podSelector: {matchLabels: {role: client}}
  policyTypes: [Egress]
  egress:
  - to: [{podSelector: {matchLabels: {app: web}}}]
"""


def ex(u: User, ns: str, pod: str, *cmd: str):  # noqa: ANN201
    return u.kubectl("exec", "-n", ns, pod, "--", *cmd, check=False, timeout=90)


def test_policies_decide_what_pods_reach(user: User, http_server: int) -> None:
    # the api pod's port is backed by a real server on this machine (vkube.io/port-forward-N):
    # host access, which the cluster must allow
    values = user.home.parent / "np-values.yaml"
    values.write_text("sync:\n  pods:\n    hostAccess: allow\n")
    user.vkube("create", "np", "-f", str(values))
    user.kubectl("apply", "-f", "-", input=workloads(http_server))
    for ns, pod in (("shop", "web"), ("shop", "api"), ("shop", "client"), ("shop", "intruder"),
                    ("ops", "tool")):
        user.kubectl("wait", "-n", ns, f"pod/{pod}", "--for=condition=Ready", "--timeout=120s",
                     timeout=150)
    web_ip = user.kubectl("get", "svc", "-n", "shop", "web", "-o",
                          "jsonpath={.spec.clusterIP}").stdout.strip()

    def endpoints_ready() -> None:
        out = user.kubectl("get", "endpoints", "-n", "shop", "api", "web", "-o",
                           "jsonpath={.items[*].subsets[*].addresses[*].ip}").stdout.split()
        assert len(out) == 2, out
    eventually(endpoints_ready, timeout=60)

    # no policy: names resolve through the virtual cluster's DNS, services reach their pods
    r = ex(user, "shop", "client", "nslookup", "web.shop.svc.cluster.local")
    assert r.returncode == 0 and f"Address: {web_ip}" in r.stdout, r
    # a short name: the search list's FQDN is what answered, as busybox nslookup prints it
    r = ex(user, "shop", "client", "nslookup", "web")
    assert r.returncode == 0 and f"Name:\tweb.shop.svc.cluster.local\nAddress: {web_ip}\n" \
        in r.stdout, r
    r = ex(user, "shop", "client", "nslookup", "nothing-here")
    assert r.returncode == 1 and "NXDOMAIN" in r.stderr, r
    for pod in ("client", "intruder"):
        r = ex(user, "shop", pod, "nc", "-z", "-v", "-w", "2", "web", "80")
        assert r.returncode == 0 and f"({web_ip}:80) open" in r.stderr, r
    r = ex(user, "shop", "intruder", "wget", "-qO-", "http://api")
    assert r.returncode == 0 and r.stdout.encode() == BODY, r  # the real server, via the Service
    r = ex(user, "shop", "client", "nc", "-z", "-w", "2", "web", "81")  # no such service port
    assert r.returncode == 1 and "Connection refused" in r.stderr, r
    # a pod's loopback is its own: a listener on this machine's loopback that no Service
    # publishes is out of reach (the control plane's is reached at its published address)
    import socket

    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        for addr in ("127.0.0.1", "localhost"):
            r = ex(user, "shop", "client", "nc", "-z", "-w", "2", addr, str(other.getsockname()[1]))
            assert r.returncode == 1 and "Connection refused" in r.stderr, r

    user.kubectl("apply", "-f", "-", input=POLICIES)

    def enforced() -> None:
        r = ex(user, "shop", "intruder", "nc", "-z", "-w", "2", "web", "80")
        assert r.returncode == 1 and "timed out" in r.stderr, r
        assert "vkube: ingress to pod" in r.stderr and "NetworkPolicies" in r.stderr, r
    eventually(enforced, timeout=60, delay=1)
    assert ex(user, "shop", "client", "nc", "-z", "-w", "2", "web", "80").returncode == 0
    assert ex(user, "ops", "tool", "nc", "-z", "-w", "2", "web.shop", "80").returncode == 0
    r = ex(user, "shop", "client", "wget", "-qO-", "http://api")  # port range 8000-8100 of the pod
    assert r.returncode == 0 and r.stdout.encode() == BODY, r
    r = ex(user, "shop", "intruder", "curl", "-s", "-m", "2", "http://api")
    assert r.returncode == 28, r
    r = ex(user, "shop", "intruder", "wget", "-qO-", "-T", "2", "http://api.shop.svc.cluster.local")
    assert r.returncode == 1 and "download timed out" in r.stderr, r

    # egress of the client: only to the web pods — its DNS lookups stop too
    user.kubectl("apply", "-f", "-", input=CLIENT_EGRESS)

    def egress_enforced() -> None:
        r = ex(user, "shop", "client", "nslookup", "web")
        assert r.returncode == 1 and "no servers could be reached" in r.stdout, r
    eventually(egress_enforced, timeout=60, delay=1)
    pod_ip = user.kubectl("get", "pod", "-n", "shop", "web", "-o",
                          "jsonpath={.status.podIP}").stdout.strip()
    api_ip = user.kubectl("get", "pod", "-n", "shop", "api", "-o",
                          "jsonpath={.status.podIP}").stdout.strip()
    assert ex(user, "shop", "client", "nc", "-z", "-w", "2", pod_ip, "80").returncode == 0
    assert ex(user, "shop", "client", "nc", "-z", "-w", "2", web_ip, "80").returncode == 0
    r = ex(user, "shop", "client", "nc", "-z", "-w", "2", api_ip, "8080")
    assert r.returncode == 1 and "vkube: egress from pod" in r.stderr, r

    # removing the policies opens the way again
    user.kubectl("delete", "networkpolicy", "-n", "shop", "--all")
    eventually(lambda: _ok(ex(user, "shop", "intruder", "nc", "-z", "-w", "2", "web", "80")),
               timeout=60, delay=1)


def _ok(r) -> None:  # noqa: ANN001
    assert r.returncode == 0, r
