"""The kubelet endpoint: containerLogs options, follow, exec over channel.k8s.io."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest

from vkube.client.resources import PODS
from vkube.host.kubeletserver import run_exec
from vkube.host.podruntime import ContainerRT
from vkube.host.commands import ExitPlan
from vkube.host.runner import EmbeddedHost
from vkube.host.stages import KubeletConfig
from vkube.pki.cluster import APISERVER_KUBELET_CLIENT

from tests.host.test_host_kubectl import eventually, kubectl


@pytest.fixture
async def host(control_plane):
    h = EmbeddedHost(control_plane.url, pki=control_plane.cp.pki, nodes=1, seed=2, kubelet=KubeletConfig(stop_seconds=0.1))
    await h.start()
    try:
        yield h
    finally:
        await h.stop()


async def run_pod(client, name, container):
    await client.create(PODS, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default"},
                               "spec": {"containers": [container]}})

    async def running():
        p = await client.get(PODS, name, namespace="default")
        return p["status"].get("phase") == "Running"

    await eventually(running)


async def test_logs_options_and_follow(control_plane, host):
    base = f"https://127.0.0.1:{host.kubelet_port}/containerLogs/default"
    async with control_plane.client() as c, as_apiserver(control_plane) as http:
        await run_pod(c, "web", {"name": "web", "image": "nginx"})
        async with http.get(f"{base}/web/web") as r:
            full = (await r.text()).splitlines()
        assert len(full) >= 3 and "nginx" in "\n".join(full)
        async with http.get(f"{base}/web/web", params={"tailLines": "2", "timestamps": "true"}) as r:
            lines = (await r.text()).splitlines()
        assert len(lines) == 2 and lines[1].endswith(full[-1]) and lines[0][:4].isdigit() and "Z " in lines[0]
        async with http.get(f"{base}/web/web", params={"limitBytes": "5"}) as r:
            assert await r.read() == full[0][:5].encode()
        async with http.get(f"{base}/web/nope") as r:
            assert r.status == 400 and "not valid" in await r.text()
        async with http.get(f"{base}/web/web", params={"previous": "true"}) as r:
            assert r.status == 400 and "previous terminated container" in await r.text()
        # follow streams until the pod goes away
        async with http.get(f"{base}/web/web", params={"follow": "true"}) as r:
            first = await r.content.readline()
            assert first.decode().rstrip("\n") == full[0]
            await c.delete(PODS, "web", namespace="default")
            rest = await asyncio.wait_for(r.read(), timeout=20)
        assert rest.decode().splitlines() == full[1:]
    out = await kubectl(control_plane, "get", "pod", "web", check=False)
    assert out.returncode != 0


async def test_kubectl_logs_follow_ends_with_container(control_plane, host):
    async with control_plane.client() as c:
        await c.create(PODS, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "job", "namespace": "default"},
                              "spec": {"restartPolicy": "Never", "containers": [
                                  {"name": "c", "image": "busybox", "command": ["sh", "-c", "echo hello from job; sleep 1"]}]}})

        async def started():
            p = await c.get(PODS, "job", namespace="default")
            return p["status"].get("phase") in ("Running", "Succeeded")

        await eventually(started)
    out = await kubectl(control_plane, "logs", "-f", "job")
    assert out.stdout == "hello from job\n"


async def test_exec_over_websocket(control_plane, host):
    async with control_plane.client() as c, as_apiserver(control_plane) as http:
        await run_pod(c, "sh", {"name": "c", "image": "nginx"})
        url = f"https://127.0.0.1:{host.kubelet_port}/exec/default/sh/c"
        params = [("command", "echo"), ("command", "hi there"), ("stdout", "1"), ("stderr", "1")]
        async with http.ws_connect(url, params=params, protocols=("v5.channel.k8s.io",)) as ws:
            assert ws.protocol == "v5.channel.k8s.io"
            frames = [m.data async for m in ws if m.type == aiohttp.WSMsgType.BINARY]
        assert frames[0] == b"\x01hi there\n"
        assert json.loads(frames[-1][1:]) == {"metadata": {}, "status": "Success"}
        async with http.ws_connect(url, params=[("command", "false")], protocols=("v4.channel.k8s.io",)) as ws:
            frames = [m.data async for m in ws if m.type == aiohttp.WSMsgType.BINARY]
        status = json.loads(frames[-1][1:])
        assert status["reason"] == "NonZeroExitCode" and status["details"]["causes"][0]["message"] == "1"


async def test_kubectl_exec_into_a_stopped_container(control_plane, host):
    """A regular container that has ended, in a pod still running: kubectl exec prints the
    kubelet's error (the upgrade succeeds, the status says why), exit code 1."""
    async with control_plane.client() as c:
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "two", "namespace": "default"},
               "spec": {"restartPolicy": "Never", "containers": [
                   {"name": "web", "image": "nginx"},
                   {"name": "job", "image": "busybox", "command": ["sh", "-c", "exit 0"]}]}}
        await c.create(PODS, pod)

        async def job_done():
            p = await c.get(PODS, "two", namespace="default")
            return any(s["name"] == "job" and "terminated" in s.get("state", {})
                       for s in p["status"].get("containerStatuses") or ())

        await eventually(job_done, timeout=60)
    out = await kubectl(control_plane, "exec", "two", "-c", "job", "--", "echo", "x", check=False)
    assert out.returncode == 1 and out.stdout == "", (out.stdout, out.stderr)
    assert out.stderr.startswith("error: Internal error occurred: error executing command in "
                                 "container: container not running ("), out.stderr
    assert (await kubectl(control_plane, "exec", "two", "-c", "web", "--", "echo", "x")).stdout == "x\n"


def as_apiserver(control_plane) -> aiohttp.ClientSession:
    """What the kubelet admits: the API server's kubelet-client certificate of this cluster."""
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=control_plane.ssl(*APISERVER_KUBELET_CLIENT)))


async def test_kubelet_admits_only_the_api_server(control_plane, host, tmp_path):
    url = f"https://127.0.0.1:{host.kubelet_port}/containerLogs/default/x/y"
    # a valid client certificate of this cluster that is not the API server's: 401
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=control_plane.ssl())) as admin:
        async with admin.get(url) as r:
            assert r.status == 401 and await r.text() == "Unauthorized"
    # no client certificate: the handshake itself fails
    from vkube.pki import client_context
    from vkube.pki.cluster import ClusterPKI

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=client_context(control_plane.cp.pki.ca_pem))) as anon:
        with pytest.raises(aiohttp.ClientError):
            async with anon.get(url) as r:
                await r.read()
    # the API server certificate of *another* cluster: refused in the handshake as well
    other = ClusterPKI(tmp_path / "other", name="other")
    ctx = client_context(control_plane.cp.pki.ca_pem, other.client_pair(*APISERVER_KUBELET_CLIENT))
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx)) as foreign:
        with pytest.raises(aiohttp.ClientError):
            async with foreign.get(url) as r:
                await r.read()


def test_run_exec_commands():
    c = ContainerRT(name="c", image="nginx", init=False, sidecar=False, plan=ExitPlan(), ready_delay=0)
    assert run_exec(["hostname"], pod="p", namespace="ns", container=c, pod_ip="10.244.1.2") == ("p\n", "", 0)
    out, _, code = run_exec(["cat", "/etc/resolv.conf"], pod="p", namespace="ns", container=c, pod_ip="")
    assert code == 0 and "search ns.svc.cluster.local" in out
    out, err, code = run_exec(["cat", "/nope"], pod="p", namespace="ns", container=c, pod_ip="")
    assert code == 1 and "No such file" in err
    out, _, code = run_exec(["env"], pod="p", namespace="ns", container=c, pod_ip="")
    assert "HOSTNAME=p" in out and code == 0
    # a virtual cluster's host pod: its spec.hostname (the virtual name) is what every command says
    spec = {"hostname": "web-7d9f-abcde", "containers": [{"name": "c"}]}
    host = "web-7d9f-abcde-x-demo-x-a"
    kw = {"pod": host, "namespace": "demo-x-a", "container": c, "pod_ip": "10.244.1.2", "spec": spec}
    for argv in (["hostname"], ["cat", "/etc/hostname"], ["sh", "-c", "echo $HOSTNAME"],
                 ["sh", "-c", "hostname"], ["printenv", "HOSTNAME"]):
        assert run_exec(argv, **kw) == ("web-7d9f-abcde\n", "", 0), argv
    out, _, _ = run_exec(["cat", "/etc/hosts"], **kw)
    assert "10.244.1.2\tweb-7d9f-abcde\n" in out and host not in out
    _, err, code = run_exec(["nosuchtool"], pod="p", namespace="ns", container=c, pod_ip="")
    assert code == 127 and "simulated container does not implement" in err


def test_exec_is_honest_about_what_it_implements():
    c = ContainerRT(name="c", image="nginx", init=False, sidecar=False, plan=ExitPlan(), ready_delay=0)

    def ex(*argv: str, stdin: str = "") -> tuple[str, str, int]:
        return run_exec(list(argv), pod="p", namespace="ns", container=c, pod_ip="", stdin=stdin)

    assert ex("cat", stdin="hello\n") == ("hello\n", "", 0)
    assert ex("cat", "-", "/etc/hostname", stdin="a\n") == ("a\np\n", "", 0)
    assert ex("sh", "-c", "read x; echo got $x", stdin="hello\n") == ("got hello\n", "", 0)
    assert ex("sh", "-c", "read a b; echo $b; read c || echo eof $?", stdin="1 2 3\n") == ("2 3\neof 1\n", "", 0)
    assert ex("sh", stdin="echo from stdin\nexit 4\n") == ("from stdin\n", "", 4)
    assert ex("sh", "-c", "echo $HOSTNAME") == ("p\n", "", 0)
    assert ex("sh", "-c", "false || echo no; true && echo yes; exit 3") == ("no\nyes\n", "", 3)
    for argv in (["ls", "/"], ["sh", "-c", "ls /"], ["sh", "-c", "echo a; ps aux"], ["uname"]):
        out, err, code = ex(*argv)
        assert code == 127 and "simulated container does not implement" in err, argv
    out, err, code = ex("sh", "-c", "echo a | cat")
    assert code == 126 and "'|'" in err and out == ""
    assert ex("sh", "-c", "echo a > /tmp/x")[2] == 126
    assert ex("printenv", "HOME") == ("/root\n", "", 0)
    assert ex("pwd") == ("/\n", "", 0)
    from vkube.host.execsim import reads_stdin
    assert reads_stdin(["cat"]) and reads_stdin(["cat", "-"]) and reads_stdin(["sh"])
    assert reads_stdin(["sh", "-c", "read x; echo $x"]) and reads_stdin(["sh", "-c", "echo a; cat"])
    assert not reads_stdin(["cat", "/etc/hosts"]) and not reads_stdin(["sh", "-c", "cat /etc/hosts"])
    assert not reads_stdin(["hostname"]) and not reads_stdin(["sh", "-c", "echo already"])


def test_exit_ends_the_script_wherever_it_stands():
    """``exit [N]`` after ``;``, ``&&``, ``||``, a newline or inside ``if`` ends the shell with
    N (a bare ``exit``: the last status), as sh does; nothing after it runs."""
    from vkube.host.execsim import Proc, run

    c = ContainerRT(name="c", image="nginx", init=False, sidecar=False, plan=ExitPlan(), ready_delay=0)

    def ex(script: str) -> tuple[str, str, int, bool]:
        proc = Proc({}, {})
        out, err, code = run_exec(["sh", "-c", script], pod="p", namespace="ns", container=c,
                                  pod_ip="", proc=proc)
        return out, err, code, proc.exited

    assert ex("echo two; exit") == ("two\n", "", 0, True)
    assert ex("echo two; exit 3; echo never") == ("two\n", "", 3, True)
    assert ex("true && exit 4; echo never") == ("", "", 4, True)
    assert ex("false && exit 4; echo ran") == ("ran\n", "", 0, False)
    assert ex("false || exit 5\necho never") == ("", "", 5, True)
    assert ex("false; exit") == ("", "", 1, True)
    assert ex("echo a\nexit 256") == ("a\n", "", 0, True)
    assert ex("if true; then echo in; exit 6; fi; echo never") == ("in\n", "", 6, True)
    assert ex("if false; then exit 1; elif true; then exit 7; else exit 8; fi") == ("", "", 7, True)
    assert ex("if false; then exit 1; else echo no; fi\necho after") == ("no\nafter\n", "", 0, False)
    _, err, code, exited = ex("if [ 1 ]; then exit 1; fi")  # `[` is not simulated: it fails
    assert (code, exited) == (0, False) and "does not implement" in err
    out, err, code, _ = ex("if true; then echo a")
    assert (out, code) == ("", 2) and 'expecting "fi"' in err
    assert ex("fi")[2] == 2
    # exec's argv `sh` reading a script from stdin, and a plain `exit N` argv
    assert run_exec(["sh"], pod="p", namespace="ns", container=c, pod_ip="",
                    stdin="echo x; exit 2\necho never\n") == ("x\n", "", 2)
    assert run_exec(["exit", "3"], pod="p", namespace="ns", container=c, pod_ip="") == ("", "", 3)
