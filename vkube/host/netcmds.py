"""The network commands a simulated container runs under ``kubectl exec``: ``nc -z``, ``wget``,
``curl`` and ``nslookup``, answered from ``vkube.host.network`` (DNS through the pod's
resolv.conf, Services, NetworkPolicies) with the output and exit codes of busybox and curl.
This is how a user asks "would pod A reach B?" on the embedded host:
``kubectl exec a -- nc -z -w 2 b-svc 80``.

A refusal by a NetworkPolicy looks like it does on a real cluster (a time-out) and adds one
``vkube:`` line on stderr naming the policies, since a simulation can say why.

HTTPS is real TLS to the real listener (the virtual cluster's API as ``kubernetes.default``):
with ``-k``/``--no-check-certificate`` as curl and wget do it, else refused as a container's
trust store refuses a cluster's private CA (curl exit 60); ``--cacert`` names a file the
simulated container does not have, so it says so. ``-H`` headers are sent; ``sh -c`` scripts
get ``$VAR`` expansion from the container's environment."""

from __future__ import annotations

import asyncio
import contextlib
import shlex
import ssl
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from vkube.api.meta import Obj
from vkube.host import execsim, simlistener
from vkube.host.network import CLUSTER_DNS, Outcome, PodNetwork

SHELLS = {"sh", "bash", "ash", "dash"}
COMMANDS = {"nc", "wget", "curl", "nslookup"}
MAX_BODY = 1 << 20


@dataclass
class NetCommand:
    cmd: str
    host: str
    port: int = 0
    path: str = "/"
    scheme: str = "http"
    protocol: str = "TCP"
    verbose: bool = False
    quiet: bool = False
    to_stdout: bool = False  # wget -O -
    head: bool = False  # curl -I, wget --spider
    fail: bool = False  # curl -f
    timeout: float = 0.0
    insecure: bool = False  # curl -k, wget --no-check-certificate
    headers: list[str] = field(default_factory=list)  # curl -H, wget --header
    cacert: str = ""  # curl --cacert, wget --ca-certificate


def parse(argv: list[str], env: dict[str, str] | None = None) -> NetCommand | None:
    """The command when it is one of ours (also inside ``sh -c "…"``, its ``$VAR`` expanded
    from ``env``), else None."""
    if len(argv) >= 3 and argv[0].rsplit("/", 1)[-1] in SHELLS and argv[1] == "-c":
        try:
            words = shlex.split(argv[2])
        except ValueError:
            return None
        if any(t in (";", "&&", "||", "|") for t in words):
            return None
        # single-quoted words stay as written, as sh leaves them
        quoted = _single_quoted(argv[2])
        argv = [w if w in quoted else execsim.expand(w, env or {}) for w in words]
    if not argv:
        return None
    cmd = argv[0].rsplit("/", 1)[-1]
    if cmd not in COMMANDS:
        return None
    try:
        return {"nc": _nc, "wget": _web, "curl": _web, "nslookup": _nslookup}[cmd](cmd, argv[1:])
    except (ValueError, IndexError):
        return NetCommand(cmd, host="")  # usage error, reported by run()


def _single_quoted(script: str) -> set[str]:
    lex = shlex.shlex(script, posix=False)
    lex.whitespace_split = True
    try:
        return {t[1:-1] for t in lex if len(t) >= 2 and t[0] == t[-1] == "'"}
    except ValueError:
        return set()


def _nc(cmd: str, args: list[str]) -> NetCommand:
    out = NetCommand(cmd, host="")
    rest: list[str] = []
    it = iter(args)
    for a in it:
        if a.startswith("-") and len(a) > 1:
            flags = a[1:]
            for i, f in enumerate(flags):
                if f == "v":
                    out.verbose = True
                elif f == "u":
                    out.protocol = "UDP"
                elif f in "wW":
                    value = flags[i + 1:] or next(it)
                    out.timeout = float(value)
                    break
        else:
            rest.append(a)
    out.host, out.port = rest[0], int(rest[1])
    return out


def _web(cmd: str, args: list[str]) -> NetCommand:
    out = NetCommand(cmd, host="")
    url = ""
    it = iter(args)
    for a in it:
        if a in ("-q", "-s", "--quiet", "--silent", "-sS", "-S"):
            out.quiet = True
        elif a in ("-O", "-o"):
            out.to_stdout = next(it) == "-"
        elif a in ("-O-", "-qO-", "-qO", "-sO-"):
            out.quiet = out.quiet or a.startswith("-q")
            out.to_stdout = True
        elif a in ("-T", "-m", "--connect-timeout", "--max-time"):
            out.timeout = float(next(it))
        elif a.startswith("--timeout="):
            out.timeout = float(a.split("=", 1)[1])
        elif a in ("--spider", "-I", "--head"):
            out.head = True
        elif a in ("-f", "--fail", "-sf", "-fs", "-fsS", "-sSf", "-sfk", "-fsSk", "-sSfk"):
            out.fail = True
            out.quiet = out.quiet or "s" in a
            out.insecure = out.insecure or "k" in a
        elif a in ("-k", "--insecure", "--no-check-certificate", "-sk", "-ks", "-skS", "-sSk"):
            out.insecure = True
            out.quiet = out.quiet or "s" in a
        elif a in ("-H", "--header"):
            out.headers.append(next(it))
        elif a.startswith("--header="):
            out.headers.append(a.split("=", 1)[1])
        elif a in ("--cacert", "--ca-certificate"):
            out.cacert = next(it)
        elif a.startswith("--ca-certificate="):
            out.cacert = a.split("=", 1)[1]
        elif not a.startswith("-"):
            url = a
    if cmd == "curl":
        out.to_stdout = True
    parts = urlsplit(url if "://" in url else f"http://{url}")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(url)
    out.scheme, out.host = parts.scheme, parts.hostname
    out.port = parts.port or (443 if parts.scheme == "https" else 80)
    out.path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return out


def _nslookup(cmd: str, args: list[str]) -> NetCommand:
    names = [a for a in args if not a.startswith("-")]
    return NetCommand(cmd, host=names[0])


async def run(net: PodNetwork, pod: Obj, c: NetCommand) -> tuple[str, str, int]:
    """(stdout, stderr, exit code)."""
    if not c.host:
        return "", _usage(c.cmd), 1
    if c.cmd == "nslookup":
        return await _run_nslookup(net, pod, c)
    addrs = await net.resolve(pod, c.host)
    if isinstance(addrs, Outcome):
        return "", _dns_error(c, addrs), (6 if c.cmd == "curl" else 1)
    ip = addrs[0]
    outcome, reader, writer = await net.connect(pod, ip, c.port, c.protocol)
    try:
        if not outcome.ok:
            return "", _conn_error(c, ip, outcome), _exit_code(c, outcome)
        if c.cmd == "nc":
            return "", (f"{c.host} ({ip}:{c.port}) open\n" if c.verbose else ""), 0
        if c.scheme == "https":
            refused = _tls_refusal(c, simulated=reader is None or writer is None)
            if refused is not None:
                return refused
            assert writer is not None
            try:
                await writer.start_tls(_unverified(), server_hostname=c.host)
            except (ssl.SSLError, ConnectionError, OSError) as exc:
                return "", _tls_error(c, str(exc)), (35 if c.cmd == "curl" else 1)
        if reader is None or writer is None:
            body = simlistener.body(str(outcome.route.dst) if outcome.route else ip, c.port)
            status = 200
        else:
            status, body = await _http_get(reader, writer, c)
        return _web_result(c, ip, status, body)
    finally:
        if writer is not None:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


def _unverified() -> ssl.SSLContext:
    """-k / --no-check-certificate. Not ``ssl.create_default_context()``: that loads the
    system's trust store (~0.1 s of CPU, ~MiBs), which a context that verifies nothing never
    reads — and this module is imported at every start of the embedded host."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def _tls_refusal(c: NetCommand, simulated: bool) -> tuple[str, str, int] | None:
    """Why an HTTPS request stops before it is sent, as curl and busybox wget say it."""
    if c.cacert:
        return "", (f"{c.cmd}: cannot read {c.cacert}\nvkube: the simulated container has no "
                    f"files to read a CA from; use -k to skip verification\n"), \
            (77 if c.cmd == "curl" else 1)
    if not c.insecure:
        if c.cmd == "curl":
            return "", ("curl: (60) SSL certificate problem: unable to get local issuer "
                        "certificate\nvkube: the container's trust store does not hold the "
                        "server's CA; use -k to skip verification\n"), 60
        return "", (f"wget: TLS error from peer (alert code 48): unknown ca\nvkube: the "
                    "container's trust store does not hold the server's CA; use "
                    "--no-check-certificate\n"), 1
    if simulated:
        return "", _tls_error(c, f"the simulated listener on port {c.port} speaks plain HTTP, "
                                 "not TLS"), (35 if c.cmd == "curl" else 1)
    return None


def _tls_error(c: NetCommand, why: str) -> str:
    head = ("curl: (35) TLS connect error" if c.cmd == "curl"
            else "wget: error getting response: Connection reset by peer")
    return f"{head}\nvkube: {why}\n"


async def _run_nslookup(net: PodNetwork, pod: Obj, c: NetCommand) -> tuple[str, str, int]:
    servers, _, _ = net.resolv_config(pod)
    server = servers[0] if servers else CLUSTER_DNS
    head = f"Server:\t\t{server}\nAddress:\t{server}:53\n\n"
    found = await net.resolve_named(pod, c.host)
    if isinstance(found, Outcome):
        if found.error == "nxdomain":
            return head, f"** server can't find {c.host}: NXDOMAIN\n", 1
        extra = f"vkube: {found.message}\n" if found.error == "blocked" else ""
        return ";; connection timed out; no servers could be reached\n\n", extra, 1
    name, addrs = found  # the name that answered, as busybox prints it (the search's FQDN)
    body = "".join(f"Name:\t{name}\nAddress: {a}\n" for a in addrs)
    return head + body + "\n", "", 0


async def _http_get(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    c: NetCommand) -> tuple[int, bytes]:
    method = "HEAD" if c.head else "GET"
    host = c.host if c.port in (80, 443) else f"{c.host}:{c.port}"
    extra = "".join(f"{h.strip()}\r\n" for h in c.headers if ":" in h and "\n" not in h)
    writer.write(f"{method} {c.path} HTTP/1.0\r\nHost: {host}\r\nUser-Agent: {c.cmd}\r\n"
                 f"Accept: */*\r\n{extra}Connection: close\r\n\r\n".encode())
    await writer.drain()
    data = b""
    with contextlib.suppress(TimeoutError, ConnectionError):
        async with asyncio.timeout(c.timeout or 10.0):
            while len(data) < MAX_BODY and (chunk := await reader.read(65536)):
                data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    try:
        status = int(head.split(b" ", 2)[1])
    except (IndexError, ValueError):
        return 0, data  # not HTTP: what came back
    return status, body


def _web_result(c: NetCommand, ip: str, status: int, body: bytes) -> tuple[str, str, int]:
    text = body.decode(errors="replace")
    if status == 0:  # no HTTP answer: nothing at all, or bytes that are not HTTP
        if c.cmd == "curl":
            return ("", "curl: (52) Empty reply from server\n", 52) if not body else \
                ("", "curl: (1) Received HTTP/0.9 when not allowed\n", 1)
        return "", "wget: error getting response\n", 1
    if c.cmd == "curl":
        if c.fail and status >= 400:
            return "", f"curl: (22) The requested URL returned error: {status}\n", 22
        return ("" if c.head else text), "", 0
    # wget
    if status >= 400 or status == 0:
        return "", f"wget: server returned error: HTTP/1.1 {status}\n", 8 if status else 1
    err = "" if c.quiet else f"Connecting to {c.host}:{c.port} ({ip}:{c.port})\n"
    if c.head:
        return "", err + ("" if c.quiet else "remote file exists\n"), 0
    if c.to_stdout:
        return text, err + ("" if c.quiet else "writing to stdout\n"), 0
    return "", err + ("" if c.quiet else "saving to 'index.html'\n"), 0


def _dns_error(c: NetCommand, o: Outcome) -> str:
    extra = f"vkube: {o.message}\n" if o.error != "nxdomain" else ""
    if c.cmd == "curl":
        return f"curl: (6) Could not resolve host: {c.host}\n" + extra
    if c.cmd == "wget":
        return f"wget: bad address '{c.host}'\n" + extra
    return f"nc: bad address '{c.host}'\n" + extra


def _exit_code(c: NetCommand, o: Outcome) -> int:
    if c.cmd == "curl":
        return 28 if o.error == "blocked" else 7
    return 1


def _conn_error(c: NetCommand, ip: str, o: Outcome) -> str:
    why = {"blocked": "Connection timed out", "refused": "Connection refused",
           "unreachable": "Network is unreachable"}.get(o.error, o.error)
    extra = f"vkube: {o.message}\n"
    if c.cmd == "curl":
        if o.error == "blocked":
            ms = int((c.timeout or 5) * 1000)
            return f"curl: (28) Connection timed out after {ms} milliseconds\n" + extra
        return f"curl: (7) Failed to connect to {c.host} port {c.port}: {why}\n" + extra
    if c.cmd == "wget":
        if o.error == "blocked":
            return "wget: download timed out\n" + extra
        return f"wget: can't connect to remote host ({ip}): {why}\n" + extra
    return f"nc: {c.host} ({ip}:{c.port}): {why}\n" + extra


def _usage(cmd: str) -> str:
    return {"nc": "usage: nc [-zvu] [-w SEC] HOST PORT\n",
            "wget": "wget: missing URL\n", "curl": "curl: (3) URL rejected: No host part in the URL\n",
            "nslookup": "usage: nslookup HOST [DNS_SERVER]\n"}[cmd]
