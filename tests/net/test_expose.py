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
    lines = [line.split() for line in user.vkube("describe", "x").stdout.splitlines()]
    assert ["Exposed", "at:", exposed] in lines, lines  # not only the direct address
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
    # --print gives what connect writes: the exposed address, and kubectl works through it
    printed = yaml.safe_load(user.vkube("connect", "x", "--print").stdout)
    assert [c["cluster"]["server"] for c in printed["clusters"]] == [exposed]
    own = user.home.parent / "printed.kubeconfig"
    own.write_text(yaml.safe_dump(printed))
    kubectl(own, "get", "ns", "default")
    names = user.kubectl("get", "ns", "-o", "jsonpath={.items[*].metadata.name}").stdout.split()
    assert {"default", "kube-system"} <= set(names)
    user.kubectl("create", "namespace", "through-expose")  # writes work too
    assert "expose" in user.describe("x")["values"]

    # values without expose (--upgrade -f replaces them): the host Service goes too
    plain = user.home.parent / "plain.yaml"
    plain.write_text("sync: {}\n")
    out = user.vkube("create", "x", "--upgrade", "-f", str(plain))
    assert "expose" in out.stdout  # named as going back to the default

    def unexposed() -> None:
        for kind in ("svc", "endpoints"):
            r = kubectl(user.home / "host" / "kubeconfig", "get", kind, "vkube-api", "-n",
                        "vkube-x", check=False)
            assert r.returncode != 0 and "NotFound" in r.stderr, (kind, r.stdout)
    from tests.cli.conftest import eventually

    eventually(unexposed, timeout=60, delay=0.5)
    user.kubectl("get", "ns", "through-expose")  # the kubeconfig is back on the direct address


def test_a_load_balancer_address_that_appears_later_is_in_the_certificate(user: User) -> None:
    """The serving certificate covers the exposed address; a load balancer's IP and hostname
    that the host reports later are added in place (re-issued while serving), checked by
    kubectl verifying the certificate for that name."""
    from tests.cli.conftest import eventually

    user.vkube("create", "lb", "--expose")
    name = "api.lb.example.test"
    before = user.kubectl("--tls-server-name", name, "get", "ns", check=False)
    assert before.returncode != 0 and "certificate" in before.stderr, before
    kubectl(user.home / "host" / "kubeconfig", "patch", "svc", "vkube-api", "-n", "vkube-lb",
            "--subresource=status", "--type=merge", "-p", json.dumps({"status": {"loadBalancer": {
                "ingress": [{"ip": "127.0.0.2", "hostname": name}]}}}))

    def covered() -> None:
        for server_name in (name, "127.0.0.2"):
            r = user.kubectl("--tls-server-name", server_name, "get", "ns", "default", check=False)
            assert r.returncode == 0, (server_name, r.stderr)
    eventually(covered, timeout=90, delay=1)
    user.kubectl("get", "ns", "default")  # the kubeconfig's own address still verifies
