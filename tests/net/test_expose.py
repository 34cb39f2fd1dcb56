"""``vkube create x --expose``: a host Service of type LoadBalancer fronts the control plane;
without a load balancer (the embedded host) its NodePort, served on loopback, is the address
the kubeconfig uses, and kubectl works through it."""

from __future__ import annotations

import json

import yaml

from tests.cli.conftest import User
from tests.conftest import kubectl


def test_create_expose_then_kubectl_through_the_exposed_address(user: User) -> None:
    out = user.vkube("create", "x", "--expose")
    assert "API server exposed at" in out.stdout
    described = user.describe("x")
    exposed, direct = described["exposed"], described["apiServer"]
    assert exposed and exposed != direct
    svc = json.loads(kubectl(user.home / "host" / "kubeconfig", "get", "svc", "vkube-api",
                             "-n", "vkube-x", "-o", "json").stdout)
    assert svc["spec"]["type"] == "LoadBalancer"
    node_port = svc["spec"]["ports"][0]["nodePort"]
    assert exposed.endswith(f"127.0.0.1:{node_port}")
    ep = json.loads(kubectl(user.home / "host" / "kubeconfig", "get", "endpoints", "vkube-api",
                            "-n", "vkube-x", "-o", "json").stdout)
    assert ep["subsets"][0]["ports"][0]["port"] == int(direct.rsplit(":", 1)[1])

    kc = yaml.safe_load(user.kubeconfig.read_text())
    ctx = next(c for c in kc["contexts"] if c["name"] == kc["current-context"])["context"]
    server = next(c for c in kc["clusters"] if c["name"] == ctx["cluster"])["cluster"]["server"]
    assert server == exposed
    names = user.kubectl("get", "ns", "-o", "jsonpath={.items[*].metadata.name}").stdout.split()
    assert {"default", "kube-system"} <= set(names)
    user.kubectl("create", "namespace", "through-expose")  # writes work too
    assert "expose" in user.describe("x")["values"]
