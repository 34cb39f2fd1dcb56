"""The simulated listener of a simulated pod: a pod has no process and no network namespace, so
a port one of its containers declares (``containerPort``, TCP) is "listened on" by the
simulation itself. ``kubectl exec … curl`` (``vkube.host.netcmds``) and ``kubectl port-forward``
(``vkube.host.portforward``) both get its answer, so the two agree on what listens:

- a connection whose first line is an HTTP/1.x request line gets one HTTP ``200`` response whose
  body is the line ``vkube: simulated listener of pod HOSTNAME (IP) port N`` (none for ``HEAD``),
  then the connection is closed (``Connection: close``);
- any other protocol is echoed back byte for byte until the client half-closes, then closed.

Declaring a port is optional in Kubernetes (``containerPort`` is informational), and a real
``nginx`` listens on 80 whether or not its pod says so: the ports well-known images expose
(their Dockerfile's ``EXPOSE``, ``IMAGE_PORTS``) are listened on too. Any other port is not
listened on: the caller refuses it ("connection refused")."""

from __future__ import annotations

import re

from vkube.api.meta import Obj
from vkube.host.commands import pod_hostname

#: an HTTP/1.x request line (RFC 9112 §3): METHOD SP TARGET SP HTTP-VERSION
_REQUEST_LINE = re.compile(rb"^([A-Z]{1,20}) \S+ HTTP/1\.[01]\r?$")
#: a request head longer than this is answered as though it had ended
_MAX_HEAD = 64 * 1024


#: TCP ports well-known images EXPOSE (official Docker Hub images and common test servers),
#: by repository name without registry, namespace or tag
IMAGE_PORTS: dict[str, tuple[int, ...]] = {
    "nginx": (80,), "httpd": (80,), "nginx-unprivileged": (8080,), "caddy": (80, 443),
    "traefik": (80,), "whoami": (80,), "http-echo": (5678,), "echoserver": (8080,),
    "agnhost": (8080,), "redis": (6379,), "postgres": (5432,), "mysql": (3306, 33060),
    "mariadb": (3306,), "mongo": (27017,), "memcached": (11211,), "rabbitmq": (5672,),
    "elasticsearch": (9200, 9300), "tomcat": (8080,), "jenkins": (8080, 50000),
    "grafana": (3000,), "prometheus": (9090,), "registry": (5000,),
}


def image_ports(image: str) -> tuple[int, ...]:
    """The TCP ports ``image`` is known to listen on (``IMAGE_PORTS``; none if unknown)."""
    name = image.split("@", 1)[0].rsplit("/", 1)[-1].split(":", 1)[0]
    return IMAGE_PORTS.get(name, ())


def declares_port(pod: Obj, port: int, protocol: str = "TCP") -> bool:
    """Whether a running pod listens on ``port``: a container declares it, or (TCP) its image
    is known to listen there."""
    if (pod.get("status") or {}).get("phase") != "Running":
        return False
    containers = (pod.get("spec") or {}).get("containers") or []
    return any(int(p.get("containerPort", 0)) == port and (p.get("protocol") or "TCP") == protocol
               for c in containers for p in c.get("ports") or []) or (
        protocol == "TCP" and any(port in image_ports(str(c.get("image") or "")) for c in containers))


def describe(pod: Obj) -> str:
    """``pod HOSTNAME (IP)``: the pod as it names itself (``hostname`` inside it), which in a
    virtual cluster is the tenant's pod name; never the host pod's name or namespace."""
    return f"pod {pod_hostname(pod)} ({(pod.get('status') or {}).get('podIP')})"


def body(who: str, port: int) -> bytes:
    """What the simulated listener says, over HTTP or to ``kubectl exec … curl``."""
    return f"vkube: simulated listener of {who} port {port}\n".encode()


class SimulatedConnection:
    """One TCP connection to the simulated listener, fed what the client sends."""

    def __init__(self, who: str, port: int) -> None:
        self.who, self.port = who, port
        self._buf = b""
        self._mode = ""  # "" undecided, "http", "echo"

    def receive(self, chunk: bytes) -> tuple[bytes, bool]:
        """(what to send back, whether to close now); ``chunk`` b"" is the client's EOF."""
        if self._mode == "echo":
            return chunk, not chunk
        self._buf += chunk
        if not self._mode:
            line, nl, _ = self._buf.partition(b"\n")
            if not nl and len(self._buf) < _MAX_HEAD and chunk:
                return b"", False  # the first line is not complete yet
            self._mode = "http" if _REQUEST_LINE.match(line) else "echo"
            if self._mode == "echo":
                out, self._buf = self._buf, b""
                return out, not chunk
        head_done = b"\r\n\r\n" in self._buf or b"\n\n" in self._buf
        if not head_done and chunk and len(self._buf) < _MAX_HEAD:
            return b"", False
        return self._response(), True

    def _response(self) -> bytes:
        m = _REQUEST_LINE.match(self._buf.partition(b"\n")[0])
        method = m.group(1) if m else b"GET"
        text = body(self.who, self.port)
        head = (f"HTTP/1.1 200 OK\r\nServer: vkube-simulated-listener\r\n"
                f"Content-Type: text/plain; charset=utf-8\r\nContent-Length: {len(text)}\r\n"
                f"Connection: close\r\n\r\n").encode()
        return head if method == b"HEAD" else head + text
