"""``kubectl port-forward`` through the virtual API server, the syncer and the host API to the
simulated kubelet, which forwards the pod's port to a real local TCP server named by the pod's
``vkube.io/port-forward-PORT`` annotation (as KWOK's PortForward configuration does)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import threading
import time
from collections.abc import Iterator

import pytest

from tests.cli.conftest import User, eventually
from tests.conftest import KUBECTL


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def echo_server() -> Iterator[int]:
    """A real TCP server: answers every line with ``echo: LINE`` and closes on EOF."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    stop = threading.Event()

    def serve(conn: socket.socket) -> None:
        with conn:
            buf = b""
            while chunk := conn.recv(65536):
                buf += chunk
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    conn.sendall(b"echo: " + line + b"\n")

    def accept() -> None:
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    yield srv.getsockname()[1]
    stop.set()
    t.join()
    srv.close()


def start_port_forward(u: User, *args: str) -> tuple[subprocess.Popen[str], int]:
    """``kubectl port-forward [flags] TARGET LOCAL:REMOTE``: the last two args are the target and
    the remote port."""
    local = free_port()
    proc = subprocess.Popen([KUBECTL, "--kubeconfig", str(u.kubeconfig), "port-forward",
                             *args[:-1], f"{local}:{args[-1]}"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "KUBECTL_KUBERC": "false"})
    assert proc.stdout is not None
    line = proc.stdout.readline()  # "Forwarding from 127.0.0.1:N -> 80"
    assert "Forwarding from" in line, (line, proc.stderr.read() if proc.poll() is not None else "")
    return proc, local


def roundtrip(port: int, payload: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as c:
        c.sendall(payload)
        c.shutdown(socket.SHUT_WR)
        out = b""
        while chunk := c.recv(65536):
            out += chunk
    return out


def test_kubectl_port_forward_reaches_a_local_server(user: User, echo_server: int,
                                                     tmp_path) -> None:  # noqa: ANN001
    # the owner publishes the local server as a target pods may forward to; a pod naming any
    # other address of this machine is not synced, and says which key would allow it
    values = tmp_path / "pf-values.yaml"
    values.write_text(f"sync:\n  pods:\n    portForwardTargets: ['127.0.0.1:{echo_server}']\n")
    user.vkube("create", "pf", "-f", str(values))
    user.kubectl("run", "p", "--image=nginx", "--port=80",
                 f"--annotations=vkube.io/port-forward-80=127.0.0.1:{echo_server}")
    user.kubectl("run", "q", "--image=nginx", "--port=80")
    other = free_port()
    user.kubectl("run", "r", "--image=nginx", "--port=80",
                 f"--annotations=vkube.io/port-forward-80=127.0.0.1:{other}")
    eventually(lambda: user.kubectl("wait", "pod/p", "pod/q", "--for=condition=Ready",
                                    "--timeout=5s", check=False).returncode == 0 or _no(),
               timeout=90, delay=1)

    def refused() -> None:
        status = json.loads(user.kubectl("get", "pod", "r", "-o", "json").stdout)["status"]
        assert status.get("reason") == "SyncRejected", status
        assert f"vkube.io/port-forward-80: 127.0.0.1:{other} point the embedded host's kubelet " \
               "at an address of this machine that sync.pods.portForwardTargets does not list" \
               in status["message"], status
    eventually(refused, timeout=60, delay=1)
    proc, local = start_port_forward(user, "pod/p", "80")
    try:
        got = roundtrip(local, b"hello\n")
        if got != b"echo: hello\n":
            proc.terminate()
            raise AssertionError(f"{got!r}: {proc.communicate(timeout=10)}")
        # several connections over the one session, one after another and at once
        big = b"".join(b"line %d " % i + b"x" * 1000 + b"\n" for i in range(300))  # ~300 KB
        want = b"".join(b"echo: " + ln + b"\n" for ln in big.split(b"\n")[:-1])
        results: list[bytes] = []
        threads = [threading.Thread(target=lambda: results.append(roundtrip(local, big)))
                   for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert results == [want] * 3
    finally:
        proc.terminate()
        proc.wait(10)

    # the official Python client speaks the WebSocket channel protocol (v4.channel.k8s.io)
    assert python_client_roundtrip(user, "p", b"over channels\n") == b"echo: over channels\n"

    # without an annotation, a declared containerPort is the simulated listener: HTTP gets 200
    proc, local = start_port_forward(user, "pod/q", "80")
    try:
        status, text = http_get(local)
        assert status == 200 and text.startswith("vkube: simulated listener of pod "), text
        assert text.endswith(" port 80\n"), text
        # not HTTP: echoed back until the client half-closes
        assert roundtrip(local, b"\x00\x01binary\n") == b"\x00\x01binary\n"
    finally:
        proc.terminate()
        proc.wait(10)
    assert python_client_roundtrip(user, "q", b"raw over channels\n") == b"raw over channels\n"

    # a port nothing listens on is refused on the error stream: kubectl says why
    proc, local = start_port_forward(user, "pod/q", "81")
    try:
        assert roundtrip(local, b"hi\n") == b""
        deadline = time.time() + 30
        while proc.poll() is None and time.time() < deadline:
            time.sleep(0.2)
        err = proc.stderr.read() if proc.poll() is not None else ""
        assert "connection refused" in err and "containerPort 81" in err, err
    finally:
        if proc.poll() is None:
            proc.terminate()
        proc.wait(10)


def http_get(port: int, path: str = "/") -> tuple[int, str]:
    """A real HTTP GET (urllib) through the forwarded local port."""
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=30) as r:
        return r.status, r.read().decode()


def test_port_forward_to_a_service_and_exec_in_an_isolated_cluster(user: User) -> None:
    """JOURNEY.md's step: a plain nginx Deployment behind a Service, ``kubectl port-forward
    svc/web``, then an HTTP GET: the simulated listener answers, as ``kubectl exec … curl`` does
    (with isolation too, where the annotation is refused); and exec'd commands agree that the
    pod's hostname is its virtual name."""
    user.vkube("create", "iso", "--isolate")
    user.kubectl("create", "namespace", "demo")
    user.kubectl("-n", "demo", "create", "deployment", "web", "--image=nginx", "--port=80")
    user.kubectl("-n", "demo", "expose", "deployment", "web", "--port=80")
    user.kubectl("-n", "demo", "rollout", "status", "deployment/web", "--timeout=120s", timeout=150)
    proc, local = start_port_forward(user, "-n", "demo", "svc/web", "80")
    try:
        status, text = http_get(local)
        # Endpoints follow a pod's readiness a moment after `rollout status` returns (the
        # endpoints controller batches, the syncer copies them down), as upstream's do
        got = eventually(lambda: user.kubectl("-n", "demo", "exec", "deploy/web", "--", "curl",
                                              "-s", "http://web.demo").stdout, timeout=60, delay=1.0)
        assert status == 200 and text.startswith("vkube: simulated listener of pod "), text
        assert got.startswith("vkube: simulated listener of pod ") and got.endswith(" port 80\n"), got
        assert http_get(local, "/again")[0] == 200  # a second connection over the session
    finally:
        proc.terminate()
        proc.wait(10)

    # the pod sees its virtual name everywhere, never the host pod's name
    vname = user.kubectl("-n", "demo", "get", "pods", "-l", "app=web",
                         "-o", "jsonpath={.items[0].metadata.name}").stdout.strip()
    for argv in (["hostname"], ["cat", "/etc/hostname"], ["sh", "-c", "echo $HOSTNAME"],
                 ["sh", "-c", "hostname"]):
        out = user.kubectl("-n", "demo", "exec", vname, "--", *argv).stdout
        assert out == f"{vname}\n", (argv, out)
    hosts = user.kubectl("-n", "demo", "exec", vname, "--", "cat", "/etc/hosts").stdout
    assert f"\t{vname}\n" in hosts and "-x-demo-x-" not in hosts, hosts
    # the listener's answer (port-forward and exec curl) names the pod as the tenant does
    ip = user.kubectl("-n", "demo", "get", "pod", vname, "-o", "jsonpath={.status.podIP}").stdout.strip()
    assert text == got == f"vkube: simulated listener of pod {vname} ({ip}) port 80\n", (text, got)
    env = user.kubectl("-n", "demo", "exec", vname, "--", "env").stdout
    assert f"HOSTNAME={vname}\n" in env and "-x-" not in env, env
    refused = user.kubectl("-n", "demo", "exec", vname, "--", "curl", "-s", f"http://{ip}:81", check=False)
    assert refused.returncode != 0 and f"pod {vname} ({ip}) port 81" in refused.stderr, refused.stderr
    assert "-x-" not in refused.stderr + refused.stdout, refused.stderr
    # and so do a container's own logs
    user.kubectl("-n", "demo", "run", "says", "--image=busybox", "--restart=Never", "--command", "--",
                 "sh", "-c", "hostname; echo $HOSTNAME; env")

    def said() -> str:
        out = user.kubectl("-n", "demo", "logs", "says", check=False).stdout
        assert out, "no logs yet"
        return out

    logs = eventually(said, timeout=90, delay=1)
    assert logs.startswith("says\nsays\n") and "HOSTNAME=says\n" in logs and "-x-" not in logs, logs

    # the pod's own API over real TLS, as in-cluster tools reach it: -k as curl and wget take
    # it, a refusal without it (the container's trust store lacks the cluster CA), headers
    # sent, $VAR expanded from the container's environment
    def ex(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return user.kubectl("-n", "demo", "exec", vname, "--", *argv, check=check)

    version = json.loads(ex("curl", "-sk", "https://kubernetes.default.svc/version").stdout)
    assert version["gitVersion"].startswith("v1."), version
    assert json.loads(ex("wget", "-qO-", "--no-check-certificate",
                         "https://kubernetes.default.svc/version").stdout) == version
    unverified = ex("curl", "-s", "https://kubernetes.default.svc/version", check=False)
    assert unverified.returncode == 60 and "curl: (60) SSL certificate problem" in unverified.stderr
    denied = json.loads(ex("sh", "-c", "curl -sk -H 'Authorization: Bearer not-a-token' "
                           "https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT/version").stdout)
    assert denied["code"] == 401 and denied["reason"] == "Unauthorized", denied
    plain = ex("curl", "-s", "http://kubernetes.default.svc:443/version", check=False)
    assert plain.returncode == 52 and "Empty reply from server" in plain.stderr, plain.stderr


def python_client_roundtrip(u: User, pod: str, payload: bytes) -> bytes:
    import kubernetes
    from kubernetes.stream import portforward

    api = kubernetes.config.new_client_from_config(str(u.kubeconfig))
    try:
        core = kubernetes.client.CoreV1Api(api)
        pf = portforward(core.connect_get_namespaced_pod_portforward, pod, "default", ports="80")
        sock = pf.socket(80)
        sock.setblocking(True)
        sock.settimeout(30)
        sock.sendall(payload)
        got = b""
        while not got.endswith(b"\n"):
            chunk = sock.recv(1024)
            if not chunk:
                break
            got += chunk
        sock.close()
        assert pf.error(80) is None, pf.error(80)
        pf.close()
        return got
    finally:
        api.close()


def _no() -> None:
    raise AssertionError("not yet")


def test_only_port_forward_annotations_of_the_tenant_go_down() -> None:
    from vkube.host.portforward import forward_target
    from vkube.syncer.podrewrite import port_forward_annotations

    vpod = {"metadata": {"annotations": {
        "vkube.io/port-forward-80": "127.0.0.1:8080", "vkube.io/port-forward-x": "1.2.3.4:1",
        "vkube.io/object-name": "forged", "other": "kept elsewhere"}}}
    assert port_forward_annotations(vpod) == {"vkube.io/port-forward-80": "127.0.0.1:8080"}
    assert forward_target(vpod, 80) == ("127.0.0.1", 8080)
    assert forward_target(vpod, 81) is None
    assert forward_target({"metadata": {"annotations": {"vkube.io/port-forward-1": "[::1]:99"}}},
                          1) == ("::1", 99)


def test_port_forward_on_the_host_itself(user: User, echo_server: int) -> None:
    """kubectl against the embedded host's own API: its API server hands the SPDY tunnel to the
    kubelet in process; 3 MB each way through one connection, and a pod that is gone."""
    user.vkube("host", "start", "--nodes", "1")
    host = User(user.home, user.home / "host" / "kubeconfig")
    host.kubectl("run", "p", "--image=nginx", "--port=80",
                 f"--annotations=vkube.io/port-forward-80=127.0.0.1:{echo_server}")
    host.kubectl("wait", "pod/p", "--for=condition=Ready", "--timeout=90s", timeout=120)
    proc, local = start_port_forward(host, "pod/p", "80")
    try:
        big = b"".join(b"%06d " % i + b"y" * 3000 + b"\n" for i in range(1000))
        want = b"".join(b"echo: " + ln + b"\n" for ln in big.split(b"\n")[:-1])
        assert roundtrip(local, big) == want
    finally:
        proc.terminate()
        proc.wait(10)
    missing = host.kubectl("port-forward", "pod/nothing", "18081:80", check=False, timeout=60)
    assert missing.returncode != 0 and "NotFound" in missing.stderr + missing.stdout


def test_simulated_listener_speaks_http_or_echoes() -> None:
    from vkube.host.simlistener import SimulatedConnection, declares_port

    c = SimulatedConnection("pod a/b (10.0.0.1)", 80)
    assert c.receive(b"GET / HT") == (b"", False)  # the request line is not complete yet
    assert c.receive(b"TP/1.1\r\nHost: x\r\n") == (b"", False)  # nor the head
    reply, close = c.receive(b"\r\n")
    assert close and reply.startswith(b"HTTP/1.1 200 OK\r\n")
    assert reply.endswith(b"\r\n\r\nvkube: simulated listener of pod a/b (10.0.0.1) port 80\n")
    head, _ = SimulatedConnection("x", 80).receive(b"HEAD / HTTP/1.0\r\n\r\n")
    assert head.endswith(b"\r\n\r\n") and b"Content-Length: " in head
    e = SimulatedConnection("x", 5432)
    assert e.receive(b"\x00\x00\x00\x08") == (b"", False)  # no line yet: undecided
    assert e.receive(b"ping\n") == (b"\x00\x00\x00\x08ping\n", False)
    assert e.receive(b"more") == (b"more", False)
    assert e.receive(b"") == (b"", True)
    assert SimulatedConnection("x", 1).receive(b"") == (b"", True)
    running = {"status": {"phase": "Running"},
               "spec": {"containers": [{"ports": [{"containerPort": 80}]}]}}
    assert declares_port(running, 80) and not declares_port(running, 81)
    assert not declares_port(running, 80, "UDP")
    assert not declares_port({**running, "status": {"phase": "Pending"}}, 80)
    # containerPort is informational: a well-known image listens where it EXPOSEs
    nginx = {"status": {"phase": "Running"}, "spec": {"containers": [{"image": "nginx:1.27"}]}}
    assert declares_port(nginx, 80) and not declares_port(nginx, 8080)
    assert not declares_port(nginx, 80, "UDP")
    assert declares_port({**nginx, "spec": {"containers": [
        {"image": "docker.io/library/redis@sha256:ab"}]}}, 6379)
    assert not declares_port({**nginx, "spec": {"containers": [{"image": "busybox"}]}}, 80)
