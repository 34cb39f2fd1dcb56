"""Ingresses through the CLI and kubectl: the host's IngressClasses are visible in the virtual
cluster with ``sync.ingressclasses.enabled`` (and follow the host), a tenant's Ingress goes down with translated backends and its
TLS Secret, and the host's load-balancer status comes back."""

from __future__ import annotations

import json

from tests.cli.conftest import User, eventually
from tests.conftest import kubectl

CLASS = """
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata:
  name: nginx
  annotations: {ingressclass.kubernetes.io/is-default-class: "true"}
spec: {controller: k8s.io/ingress-nginx}
"""

INGRESS = """
apiVersion: v1
kind: Secret
metadata: {name: web-tls, namespace: shop}
type: kubernetes.io/tls
data: {tls.crt: Y2VydA==, tls.key: a2V5}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec: {selector: {app: web}, ports: [{port: 80}]}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: web, namespace: shop}
spec:
  ingressClassName: nginx
  tls: [{hosts: [shop.example], secretName: web-tls}]
  rules:
  - host: shop.example
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}
"""


def test_ingress_classes_ingresses_and_status(user: User, tmp_path) -> None:
    values = tmp_path / "values.yaml"
    values.write_text("sync:\n  ingressclasses: {enabled: true}\n")
    user.vkube("create", "ing", "-f", str(values))
    host_kc = user.home / "host" / "kubeconfig"

    def host(*args: str, **kw):  # noqa: ANN202
        return kubectl(host_kc, *args, **kw)

    host("apply", "-f", "-", input=CLASS)
    eventually(lambda: json.loads(user.kubectl("get", "ingressclass", "nginx", "-o", "json",
                                                check=False).stdout or "{}").get("spec")
               == {"controller": "k8s.io/ingress-nginx"} or _no(), timeout=60, delay=0.3)
    vclass = json.loads(user.kubectl("get", "ingressclass", "nginx", "-o", "json").stdout)
    assert vclass["metadata"]["annotations"]["ingressclass.kubernetes.io/is-default-class"] == "true"

    user.kubectl("create", "namespace", "shop")
    user.kubectl("apply", "-f", "-", input=INGRESS)

    def host_ingress() -> dict:
        out = host("get", "ingress", "web-x-shop-x-ing", "-n", "vkube-ing", "-o", "json", check=False)
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)

    hing = eventually(host_ingress, timeout=60)
    assert hing["spec"]["ingressClassName"] == "nginx"
    backend = hing["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend["name"] == "web-x-shop-x-ing"
    host("get", "service", "web-x-shop-x-ing", "-n", "vkube-ing")  # the backend exists there
    assert hing["spec"]["tls"][0]["secretName"] == "web-tls-x-shop-x-ing"
    eventually(lambda: host("get", "secret", "web-tls-x-shop-x-ing", "-n", "vkube-ing"), timeout=60)

    # the host's load balancer status (as an ingress controller writes it) comes back
    status = {"status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.7"}]}}}
    host("patch", "ingress", "web-x-shop-x-ing", "-n", "vkube-ing", "--subresource=status",
         "--type=merge", "-p", json.dumps(status))
    eventually(lambda: json.loads(user.kubectl("get", "ingress", "web", "-n", "shop", "-o", "json").stdout)
               ["status"]["loadBalancer"].get("ingress") == [{"ip": "203.0.113.7"}] or _no(),
               timeout=60, delay=0.3)

    # a class removed on the host goes from the virtual cluster; a tenant's own class stays
    user.kubectl("create", "-f", "-", input="apiVersion: networking.k8s.io/v1\nkind: IngressClass\n"
                 "metadata: {name: mine}\nspec: {controller: example.com/mine}\n")
    host("delete", "ingressclass", "nginx")
    eventually(lambda: user.kubectl("get", "ingressclass", "nginx", check=False).returncode != 0 or _no(),
               timeout=60, delay=0.3)
    user.kubectl("get", "ingressclass", "mine")


def _no() -> None:
    raise AssertionError("not yet")
