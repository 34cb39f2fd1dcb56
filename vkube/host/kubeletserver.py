"""The simulated kubelets' HTTP endpoint (one server for all nodes of a host), answering the
paths the API server proxies to: ``/containerLogs/{ns}/{pod}/{container}`` and
``/exec/{ns}/{pod}/{container}`` (WebSocket, channel.k8s.io protocols)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time

import orjson
from aiohttp import WSMsgType, web

from vkube.api.meta import Obj, parse_time
from vkube.host import execsim
from vkube.host.commands import container_env, pod_hostname
from vkube.host import netcmds
from vkube.host.kubelet import Kubelet
from vkube.host.network import PodNetwork
from vkube.host.podruntime import ContainerRT
from vkube.host.portforward import (CHANNEL_PROTOCOLS, SPDY_TUNNEL_PROTOCOL, PortForwardSession,
                                    serve_channels)
from vkube.netio.spdy import ProtocolError
from vkube.pki.cluster import KubeletTLS

log = logging.getLogger(__name__)

EXEC_PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io", "channel.k8s.io")


def _stamp(t: float) -> str:
    d = dt.datetime.fromtimestamp(t, dt.timezone.utc)
    return d.strftime("%Y-%m-%dT%H:%M:%S.") + f"{d.microsecond:06d}000Z"


def _flag(req: web.Request, name: str) -> bool:
    return req.query.get(name, "").lower() in ("1", "true", "yes")


def _int(req: web.Request, name: str) -> int | None:
    v = req.query.get(name)
    if v is None or v == "":
        return None
    try:
        return int(v)
    except ValueError:
        raise web.HTTPBadRequest(text=f"invalid {name}: {v!r}") from None


class KubeletServer:
    """The simulated kubelets' HTTPS endpoint (logs, exec); only the API server may call it."""

    def __init__(self, kubelet: Kubelet, *, tls: KubeletTLS, host: str = "127.0.0.1", port: int = 0,
                 network: PodNetwork | None = None) -> None:
        self.kubelet = kubelet
        #: the pod network exec'd nc/wget/curl/nslookup use (NetworkPolicies enforced there)
        self.network = network
        self.host = host
        self.port = port
        self.tls = tls
        self._runner: web.AppRunner | None = None
        app = web.Application(middlewares=[tls.middleware()])
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/containerLogs/{ns}/{pod}/{container}", self._logs)
        app.router.add_route("*", "/exec/{ns}/{pod}/{container}", self._exec)
        app.router.add_route("*", "/portForward/{ns}/{pod}", self._port_forward)
        app.router.add_route("*", "/attach/{ns}/{pod}/{container}", self._attach)
        self.app = app

    async def start(self) -> None:
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, ssl_context=self.tls.context)
        await site.start()
        server = site._server
        assert server is not None and server.sockets
        self.port = server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _healthz(self, req: web.Request) -> web.Response:
        return web.Response(text="ok")

    def _container(self, req: web.Request) -> ContainerRT:
        ns, pod, name = req.match_info["ns"], req.match_info["pod"], req.match_info["container"]
        rt = self.kubelet.runtime(ns, pod)
        if rt is None:
            raise web.HTTPNotFound(text=f'pod "{pod}" not found in namespace "{ns}"')
        c = rt.container(name)
        if c is None:
            names = " ".join(x.name for x in rt.containers)
            raise web.HTTPBadRequest(text=f'container {name} is not valid for pod {pod}; choose one of: [{names}]')
        return c

    async def _logs(self, req: web.Request) -> web.StreamResponse:
        ns, pod = req.match_info["ns"], req.match_info["pod"]
        c = self._container(req)
        previous, follow, stamps = _flag(req, "previous"), _flag(req, "follow"), _flag(req, "timestamps")
        tail, limit = _int(req, "tailLines"), _int(req, "limitBytes")
        since = _int(req, "sinceSeconds")
        since_t = time.time() - since if since is not None else None
        if req.query.get("sinceTime"):
            parsed = parse_time(req.query["sinceTime"])
            if parsed is None:
                raise web.HTTPBadRequest(text="invalid sinceTime")
            since_t = parsed.timestamp()
        if previous:
            if not c.previous_logs and c.restart_count == 0:
                raise web.HTTPBadRequest(text=f'previous terminated container "{c.name}" in pod "{pod}" not found')
            lines = list(c.previous_logs)
            follow = False
        else:
            if not c.ever_started:
                raise web.HTTPBadRequest(text=f'container "{c.name}" in pod "{pod}" is waiting to start: {c.reason}')
            lines = list(c.logs)
        if since_t is not None:
            lines = [x for x in lines if x[0] >= since_t]
        if tail is not None and tail >= 0:
            lines = lines[len(lines) - tail:] if tail else []
        resp = web.StreamResponse(headers={"Content-Type": "text/plain"})
        await resp.prepare(req)
        sent = 0

        async def write(batch: list[tuple[float, str]]) -> bool:
            nonlocal sent
            data = "".join((f"{_stamp(t)} {line}\n" if stamps else f"{line}\n") for t, line in batch).encode()
            if limit is not None:
                data = data[: max(0, limit - sent)]
            if data:
                await resp.write(data)
                sent += len(data)
            return limit is None or sent < limit

        ok = await write(lines)
        seen, container_id = len(c.logs), c.container_id
        while follow and ok:
            rt = self.kubelet.runtime(ns, pod)
            if rt is None or rt.removed or rt.container(c.name) is not c or c.container_id != container_id:
                break
            if c.state != "running" and len(c.logs) == seen:
                break
            try:
                await asyncio.wait_for(self.kubelet.changed(ns, pod).wait(), timeout=5.0)
            except TimeoutError:
                pass
            if len(c.logs) > seen:
                ok = await write(c.logs[seen:])
                seen = len(c.logs)
        await resp.write_eof()
        return resp

    async def _exec(self, req: web.Request) -> web.StreamResponse:
        c = self._container(req)
        ns, pod = req.match_info["ns"], req.match_info["pod"]
        argv = req.query.getall("command", [])
        ws = web.WebSocketResponse(protocols=EXEC_PROTOCOLS)
        if not ws.can_prepare(req).ok:
            raise web.HTTPBadRequest(text="exec needs a WebSocket upgrade (channel.k8s.io)")
        await ws.prepare(req)
        if c.state != "running":
            await _close_with(ws, _not_running(c, "executing command in"))
            return ws
        stdin = ""
        if req.query.get("stdin") in ("true", "1") and execsim.reads_stdin(argv):
            stdin = await _read_stdin(ws)
            if ws.closed:
                return ws
        pod_obj = self.kubelet.pods.get(pod, ns)
        net_cmd = (netcmds.parse(argv, container_env(pod_obj, c.name))
                   if self.network is not None and pod_obj is not None else None)
        if net_cmd is not None and self.network is not None and pod_obj is not None:
            stdout, stderr, code = await netcmds.run(self.network, pod_obj, net_cmd)
        else:
            stdout, stderr, code = run_exec(argv, pod=pod, namespace=ns, container=c,
                                            pod_ip=(self.kubelet.runtime(ns, pod) or _NoRT).pod_ip,
                                            spec=(pod_obj or {}).get("spec"), stdin=stdin)
        if stdout:
            await ws.send_bytes(b"\x01" + stdout.encode())
        if stderr:
            await ws.send_bytes(b"\x02" + stderr.encode())
        if code == 0:
            status: Obj = {"metadata": {}, "status": "Success"}
        else:
            status = {"metadata": {}, "status": "Failure", "reason": "NonZeroExitCode",
                      "message": f"command terminated with non-zero exit code: error executing command {argv}, exit code {code}",
                      "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]}}
        await _close_with(ws, status)
        return ws


    async def _attach(self, req: web.Request) -> web.StreamResponse:
        """kubectl attach, as a kubelet serves it: what the container prints from now on (not
        what it printed before: `kubectl run -i` fetches that from the logs first, so a replay
        showed it twice) on stdout until it stops, then a Success status whatever its exit code.
        Stdin is read and discarded, except by an interactive shell (a shell
        container with ``stdin: true``, as ``kubectl run -i``/``kubectl debug -i`` make): it runs
        each line typed, and ends on ``exit`` or, with ``stdinOnce``, when stdin closes."""
        c = self._container(req)
        ns, pod = req.match_info["ns"], req.match_info["pod"]
        ws = web.WebSocketResponse(protocols=EXEC_PROTOCOLS)
        if not ws.can_prepare(req).ok:
            raise web.HTTPBadRequest(text="attach needs a WebSocket upgrade (channel.k8s.io)")
        await ws.prepare(req)
        if c.state != "running":
            await _close_with(ws, _not_running(c, "attaching to"))
            return ws

        shell = c.plan.interactive and req.query.get("stdin") in ("true", "1")
        tty = req.query.get("tty") in ("true", "1")
        spec = (self.kubelet.pods.get(pod, ns) or {}).get("spec") or {}
        # stdinOnce: the runtime closes the container's stdin when this client closes its own
        # (kubectl run -i sets it); otherwise the shell keeps reading (kubectl debug -i)
        once = any(x.get("name") == c.name and x.get("stdinOnce") for key in
                   ("containers", "initContainers", "ephemeralContainers") for x in spec.get(key) or ())

        async def drain() -> None:
            buf = ""
            async for msg in ws:
                if msg.type in (WSMsgType.CLOSE, WSMsgType.ERROR):
                    break
                if not shell or msg.type != WSMsgType.BINARY:
                    continue
                data: bytes = msg.data
                if data[:2] == b"\xff\x00" and once:  # stdin closed: the shell reads EOF, ends
                    self.kubelet.end_process(ns, pod, c)
                elif data[:1] == b"\x00":
                    text = data[1:].decode(errors="replace")
                    if tty:  # the terminal echoes what is typed
                        await ws.send_bytes(b"\x01" + text.replace("\r", "\r\n").encode())
                    buf += text.replace("\r", "\n")
                    while "\n" in buf:
                        line, buf = buf.split("\n", 1)
                        self._shell_line(ns, pod, c, line)

        reader = asyncio.create_task(drain())
        sent, container_id = len(c.logs), c.container_id
        try:
            while not reader.done():
                if len(c.logs) > sent:
                    end = "\r\n" if tty else "\n"  # a terminal in raw mode needs both
                    text = "".join(line + end for _, line in c.logs[sent:])
                    sent = len(c.logs)
                    await ws.send_bytes(b"\x01" + text.encode())
                rt = self.kubelet.runtime(ns, pod)
                if rt is None or rt.removed or c.container_id != container_id or c.state != "running":
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(self.kubelet.changed(ns, pod).wait()), 1.0)
            if not reader.done():
                if len(c.logs) > sent:  # what it printed while the last lines went out
                    end = "\r\n" if tty else "\n"
                    await ws.send_bytes(b"\x01" + "".join(x + end for _, x in c.logs[sent:]).encode())
                # The kubelet's ServeAttach ends with Success whatever the container's exit
                # code: attach is not exec, and clients (kubectl run/debug -i) read the code
                # from the pod's status. A Failure here made kubectl fall back to the logs and
                # print the output twice.
                status: Obj = {"metadata": {}, "status": "Success"}
                await ws.send_bytes(b"\x03" + orjson.dumps(status))
                await ws.close()
        except (ConnectionResetError, RuntimeError):
            pass
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader
        return ws

    def _shell_line(self, ns: str, pod: str, c: ContainerRT, line: str) -> None:
        """One line typed into an attached interactive shell: run as ``sh -c LINE`` would be,
        its output going where the container's goes (the attach stream and its log); an
        ``exit`` anywhere in it (``echo bye; exit 3``) ends the shell, as sh does."""
        if c.plan.exits:  # the shell already ran `exit`: what follows is never read
            return
        proc = execsim.Proc({}, {})
        out = ""
        if line.strip():
            pod_obj = self.kubelet.pods.get(pod, ns)
            stdout, stderr, _ = run_exec(["sh", "-c", line], pod=pod, namespace=ns, container=c,
                                         pod_ip=(self.kubelet.runtime(ns, pod) or _NoRT).pod_ip,
                                         spec=(pod_obj or {}).get("spec"), proc=proc)
            out = stdout + stderr
        now = time.time()
        c.logs.extend((now, x) for x in out.splitlines())
        if proc.exited:
            self.kubelet.end_process(ns, pod, c, proc.status)
        else:
            self.kubelet.notify(ns, pod)

    async def _port_forward(self, req: web.Request) -> web.StreamResponse:
        """kubectl port-forward: SPDY tunnelled over this WebSocket (vkube.host.portforward)."""
        ns, name = req.match_info["ns"], req.match_info["pod"]
        pod = self.kubelet.pods.get(name, ns)
        if pod is None or self.kubelet.runtime(ns, name) is None:
            raise web.HTTPNotFound(text=f'pod "{name}" not found in namespace "{ns}"')
        ws = web.WebSocketResponse(protocols=(SPDY_TUNNEL_PROTOCOL, *CHANNEL_PROTOCOLS))
        if not ws.can_prepare(req).ok:
            raise web.HTTPBadRequest(text="port-forward needs a WebSocket upgrade "
                                          f"({SPDY_TUNNEL_PROTOCOL} or v4.channel.k8s.io)")
        ports: list[int] = []
        for value in req.query.getall("ports", []):
            for p in value.split(","):
                if not p.strip().isdigit() or not 0 < int(p) < 65536:
                    raise web.HTTPBadRequest(text=f"invalid port {p!r}")
                ports.append(int(p))
        await ws.prepare(req)
        if ws.ws_protocol in CHANNEL_PROTOCOLS:
            if not ports:
                await ws.close(code=1008, message=b"the ports query parameter names no port")
                return ws
            await serve_channels(ws, pod, ports)
            await ws.close()
            return ws
        if ws.ws_protocol != SPDY_TUNNEL_PROTOCOL:
            await ws.close(code=1002, message=f"port-forward speaks {SPDY_TUNNEL_PROTOCOL}".encode())
            return ws
        session = PortForwardSession(pod, ws.send_bytes)
        try:
            async for msg in ws:
                if msg.type != WSMsgType.BINARY:
                    break
                await session.feed(msg.data)
                if session.session.closed.is_set():
                    break
        except ProtocolError as e:
            log.info("port-forward %s/%s: %s", ns, name, e)
        finally:
            await session.aclose()
            await ws.close()
        return ws


def _not_running(c: ContainerRT, doing: str) -> Obj:
    """What the kubelet's streaming server answers an exec or attach into a container that
    is not running: the upgrade succeeds, the runtime's refusal comes back as an
    InternalError status on the error channel (kubectl prints its message)."""
    cause = f"error {doing} container: container not running " \
            f"({c.container_id.partition('://')[2] or c.name})"
    return {"metadata": {}, "status": "Failure", "code": 500, "reason": "InternalError",
            "message": f"Internal error occurred: {cause}", "details": {"causes": [{"message": cause}]}}


async def _close_with(ws: web.WebSocketResponse, status: Obj) -> None:
    """The exec's end: its status on the error channel (3), then close and drain."""
    await ws.send_bytes(b"\x03" + orjson.dumps(status))
    await ws.close()
    async for msg in ws:  # drain until the client goes away
        if msg.type in (WSMsgType.CLOSE, WSMsgType.ERROR):
            break


async def _read_stdin(ws: web.WebSocketResponse, limit: int = 16 << 20) -> str:
    """The exec's stdin (channel 0) until the client closes it: v5.channel.k8s.io's close
    signal (channel 255, stream 0) or the WebSocket's end; past ``limit`` bytes are dropped."""
    buf = bytearray()
    async for msg in ws:
        if msg.type != WSMsgType.BINARY:
            break
        data: bytes = msg.data
        if data[:1] == b"\x00" and len(buf) < limit:
            buf += data[1:limit - len(buf) + 1]
        elif data[:2] == b"\xff\x00":
            break
    return buf.decode(errors="replace")


class _NoRT:
    pod_ip = ""


def resolv_conf(spec: Obj, namespace: str) -> str:
    """The pod's /etc/resolv.conf as a kubelet writes it (clusterDNS 10.96.0.10 here); a pod
    with ``dnsPolicy: None`` (what a virtual cluster's syncer gives) gets its dnsConfig."""
    policy = spec.get("dnsPolicy") or "ClusterFirst"
    cfg = spec.get("dnsConfig") or {}
    if policy == "None":
        servers, searches = cfg.get("nameservers") or [], cfg.get("searches") or []
        options = [o["name"] + (f":{o['value']}" if o.get("value") else "")
                   for o in cfg.get("options") or [] if o.get("name")]
    elif policy == "Default" or (policy == "ClusterFirst" and spec.get("hostNetwork")):
        servers, searches, options = ["127.0.0.53"], [], []
    else:
        servers = ["10.96.0.10"]
        searches = [f"{namespace}.svc.cluster.local", "svc.cluster.local", "cluster.local"]
        options = ["ndots:5"]
    lines = ([f"search {' '.join(searches)}"] if searches else []) + \
        [f"nameserver {s}" for s in servers] + ([f"options {' '.join(options)}"] if options else [])
    return "".join(line + "\n" for line in lines)


def run_exec(argv: list[str], *, pod: str, namespace: str, container: ContainerRT,
             pod_ip: str, spec: Obj | None = None, stdin: str = "",
             proc: execsim.Proc | None = None) -> tuple[str, str, int]:
    """Answer the commands a simulated container implements (``vkube.host.execsim``), with
    the files and environment a kubelet gives the pod; ``proc``, if given, is filled in (the
    caller learns whether the script ran ``exit``)."""
    if not argv:
        return "", "no command given\n", 126
    spec = spec or {}
    obj = {"metadata": {"name": pod}, "spec": spec}
    hostname = pod_hostname(obj)  # the virtual pod's name in a virtual cluster
    env = container_env(obj, container.name)
    files = {
        "/etc/hostname": f"{hostname}\n",
        "/etc/hosts": f"127.0.0.1\tlocalhost\n{pod_ip}\t{hostname}\n",
        "/etc/resolv.conf": resolv_conf(spec, namespace),
        "/etc/os-release": 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\n',
    }
    cwd = next((c.get("workingDir") for c in spec.get("containers") or []
                if c.get("name") == container.name and c.get("workingDir")), "/")
    if proc is None:
        proc = execsim.Proc(env, files)
    proc.env, proc.files, proc.stdin, proc.cwd = env, files, stdin, cwd
    return execsim.run(argv, proc)
