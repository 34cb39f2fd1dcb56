"""``default/kubernetes`` and ``kube-system/kube-dns`` are the control plane's own Services: a
tenant who edits their Endpoints (``kubectl edit``) to another port of this machine's loopback
reaches nothing through them. Their host copies name only what the control plane writes, so
pods keep reaching the API and the cluster DNS, and the other listener is never dialled."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.conftest import User, eventually, user  # noqa: F401  (the fixture)
from tests.conftest import kubectl


class Listener:
    """A real TCP server on this machine's loopback that no Service publishes; it counts
    the connections it accepts and answers each with a secret."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted += 1
            with conn:
                conn.sendall(b"HTTP/1.0 200 OK\r\n\r\nthe-secret\n")


@pytest.fixture
def listener() -> Iterator[Listener]:
    srv = Listener()
    yield srv
    srv.stop.set()
    srv.thread.join()
    srv.sock.close()


def _editor(tmp_path: Path, old: int, new: int) -> str:
    """A KUBE_EDITOR that changes every ``port: OLD`` of the edited object to ``NEW``."""
    script = tmp_path / f"edit-{old}.sh"
    script.write_text(f'#!/bin/sh\nsed -i -e "s/port: {old}$/port: {new}/" "$1"\n')
    script.chmod(0o755)
    return str(script)


def _port(u: User, ns: str, name: str) -> int:
    return int(u.kubectl("get", "endpoints", "-n", ns, name, "-o",
                         "jsonpath={.subsets[0].ports[0].port}").stdout)


def test_edited_control_plane_endpoints_reach_no_other_listener(
        user: User, listener: Listener, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    user.vkube("create", "cpe")
    host = user.home / "host" / "kubeconfig"
    # a restart: the DNS listens on a new port, its Endpoints still name the old one until
    # the control plane rewrites them — the syncer takes the new one, and warns of no edit
    user.vkube("pause", "cpe")
    user.vkube("resume", "cpe")

    def copied() -> None:
        want = {("kubernetes", _port(user, "default", "kubernetes")),
                ("kube-dns", _port(user, "kube-system", "kube-dns"))}
        assert _host_ports(host) == want
    eventually(copied, timeout=60, delay=0.5)
    user.kubectl("run", "client", "--image=busybox", "--", "sleep", "3600")
    user.kubectl("wait", "pod/client", "--for=condition=Ready", "--timeout=120s", timeout=150)

    def ex(*argv: str):  # noqa: ANN202
        return user.kubectl("exec", "client", "--", *argv, check=False, timeout=90)

    api_ip = user.kubectl("get", "svc", "kubernetes", "-o", "jsonpath={.spec.clusterIP}").stdout
    r = ex("nslookup", "kubernetes.default.svc.cluster.local")
    assert r.returncode == 0 and f"Address: {api_ip}" in r.stdout, r  # DNS works before
    api_port, dns_port = _port(user, "default", "kubernetes"), _port(user, "kube-system", "kube-dns")
    warned = user.kubectl("get", "events", "-A", "--field-selector", "reason=ControlPlaneEndpoints").stdout
    assert "ControlPlaneEndpoints" not in warned, warned

    # the attack: both Endpoints edited with the real kubectl to the other listener's port
    for ns, name, old in (("default", "kubernetes", api_port), ("kube-system", "kube-dns", dns_port)):
        monkeypatch.setenv("KUBE_EDITOR", _editor(tmp_path, old, listener.port))
        out = user.kubectl("edit", "endpoints", "-n", ns, name).stdout
        assert f"endpoints/{name} edited" in out, out

    def held() -> None:
        events = json.loads(user.kubectl("get", "events", "-A", "--field-selector",
                                         "reason=ControlPlaneEndpoints", "-o", "json").stdout)
        assert {e["involvedObject"]["name"] for e in events["items"]} == {"kubernetes", "kube-dns"}
        ports = _host_ports(host)
        assert ports == {("kubernetes", api_port), ("kube-dns", dns_port)}, ports
    eventually(held, timeout=60, delay=0.5)

    # pods still reach the API and the DNS, and nothing reaches the other listener: not
    # through the Services, nor at its loopback address (a pod's loopback is its own)
    version = json.loads(ex("curl", "-sk", "https://kubernetes.default.svc/version").stdout)
    assert version["gitVersion"].startswith("v1."), version
    r = ex("curl", "-s", f"http://kubernetes.default.svc:{listener.port}/")
    assert r.returncode != 0 and "the-secret" not in r.stdout, r
    r = ex("curl", "-s", f"http://127.0.0.1:{listener.port}/")
    assert r.returncode == 7 and "the-secret" not in r.stdout, r
    r = ex("nslookup", "kubernetes.default.svc.cluster.local")
    assert r.returncode == 0 and f"Address: {api_ip}" in r.stdout, r
    assert listener.accepted == 0

    # the control plane puts its Endpoints right (as kube-apiserver's reconciler does)
    eventually(lambda: _port(user, "default", "kubernetes") == api_port or _no(), timeout=60, delay=1)
    assert listener.accepted == 0


def _host_ports(host: Path) -> set[tuple[str, int]]:
    """The ports the host copies of the two Services' Endpoints name."""
    copies = json.loads(kubectl(host, "get", "endpoints", "-n", "vkube-cpe", "-o",
                                "json").stdout)["items"]
    return {(c["metadata"]["annotations"]["vkube.io/object-name"], p["port"])
            for c in copies for s in c.get("subsets") or [] for p in s.get("ports") or []
            if (c["metadata"].get("annotations") or {}).get("vkube.io/object-name")
            in ("kubernetes", "kube-dns")}


def _no() -> None:
    raise AssertionError("not yet")


class _Objects:
    """An informer's read side over fixed objects (PodNetwork only reads)."""

    def __init__(self, *objs: dict) -> None:
        self.objs, self.indexes = list(objs), {}

    def add_handler(self, handler) -> None:  # noqa: ANN001
        pass

    def add_index(self, name: str, fn) -> None:  # noqa: ANN001
        self.indexes[name] = fn

    def get(self, name: str, namespace: str | None = None) -> dict | None:
        return next((o for o in self.objs if o["metadata"]["name"] == name
                     and o["metadata"].get("namespace") == namespace), None)

    def list(self, namespace: str | None = None, selector: object = None) -> list[dict]:
        return list(self.objs)

    def by_index(self, name: str, value: str) -> list[dict]:
        return [o for o in self.objs if value in self.indexes[name](o)]


async def test_a_pods_loopback_nameserver_is_its_own() -> None:
    """A pod whose dnsConfig names a loopback nameserver (``127.0.0.53``, this machine's stub
    resolver) asks its own loopback, as a pod's network namespace would: nothing is dialled;
    a loopback address the control plane's Endpoints publish is (the embedded host's DNS)."""
    from vkube.host.network import PodNetwork

    published = {"metadata": {"name": "kube-dns-x", "namespace": "vkube-a"},
                 "subsets": [{"addresses": [{"ip": "127.0.0.1"}], "ports": [{"port": 53, "protocol": "UDP"}]}]}
    net = PodNetwork(_Objects(), _Objects(), _Objects(), _Objects(), _Objects(published))  # type: ignore[arg-type]
    asked: list[tuple[str, int]] = []

    async def query(real, name, searches, ndots):  # noqa: ANN001, ANN202
        asked.append(real)
        return name, ["10.0.0.1"]
    net._query = query  # type: ignore[method-assign]
    pod = {"metadata": {"name": "p", "namespace": "n"},
           "spec": {"dnsPolicy": "None", "dnsConfig": {"nameservers": ["127.0.0.53", "::1"]}}}
    out = await net.resolve(pod, "example.com")
    assert not isinstance(out, list) and out.error == "unreachable" and asked == [], out
    pod["spec"]["dnsConfig"]["nameservers"] = ["127.0.0.53", "127.0.0.1"]
    assert await net.resolve(pod, "example.com") == ["10.0.0.1"] and asked == [("127.0.0.1", 53)]
