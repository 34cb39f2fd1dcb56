"""Port-forward throughput (issue 15): MB/s of ``kubectl port-forward`` through a virtual
cluster (kubectl → virtual API → syncer → host API → simulated kubelet → a real TCP sink), next
to a direct TCP connection to the same sink, and their ratio.

Everything as a user runs it: ``vkube create`` in a temporary VKUBE_HOME/KUBECONFIG, the pinned
kubectl, a pod annotated ``vkube.io/port-forward-80``. Prints JSON lines.
Usage: python bench/bench_portforward.py [MEGABYTES]   (default 64)"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

MB = int(sys.argv[1]) if len(sys.argv) > 1 else 64
ROOT = Path(__file__).resolve().parent.parent
KUBECTL = str(ROOT / ".venv" / "bin" / "kubectl")


def sink() -> int:
    """A TCP server that reads everything and answers with the byte count."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()

    def serve(conn: socket.socket) -> None:
        with conn:
            n = 0
            while chunk := conn.recv(1 << 20):
                n += len(chunk)
            conn.sendall(str(n).encode())

    def accept() -> None:
        while True:
            conn, _ = srv.accept()
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    return srv.getsockname()[1]


def send(port: int, total: int) -> float:
    block = b"x" * (1 << 16)
    t = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port)) as c:
        sent = 0
        while sent < total:
            c.sendall(block)
            sent += len(block)
        c.shutdown(socket.SHUT_WR)
        got = b""
        while chunk := c.recv(100):
            got += chunk
    elapsed = time.perf_counter() - t
    assert int(got) == sent, (got, sent)
    return elapsed


def cpu_seconds(pids: dict[str, int]) -> dict[str, float]:
    """user+system CPU seconds of each process (from /proc), to show where the time goes."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for name, pid in pids.items():
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            out[name] = (int(fields[11]) + int(fields[12])) / tick
        except (OSError, IndexError, ValueError):
            pass
    return out


def processes(tmp: Path, pf_pid: int) -> dict[str, int]:
    """The benchmark's own processes: kubectl port-forward, the virtual cluster, the host."""
    out = {"kubectl": pf_pid}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if str(tmp) not in cmd or "python" not in cmd:
            continue
        if " serve " in cmd:
            out["virtual_cluster"] = int(d.name)
        elif "hosting" in cmd:
            out["host"] = int(d.name)
    return out


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="bench-pf-"))
    kc = tmp / "kubeconfig"
    env = {**os.environ, "VKUBE_HOME": str(tmp / "home"), "KUBECONFIG": str(kc),
           "KUBECTL_KUBERC": "false", "VKUBE_HOST_NODES": "1"}

    def run(*args: str) -> str:
        return subprocess.run(args, env=env, check=True, capture_output=True, text=True).stdout

    port = sink()
    total = MB << 20
    pf = None
    try:
        values = tmp / "values.yaml"  # the sink is a target the owner publishes
        values.write_text(f"sync:\n  pods:\n    portForwardTargets: ['127.0.0.1:{port}']\n")
        run(sys.executable, "-m", "vkube", "create", "bench", "-f", str(values))
        run(KUBECTL, "run", "p", "--image=nginx", f"--annotations=vkube.io/port-forward-80=127.0.0.1:{port}")
        run(KUBECTL, "wait", "pod/p", "--for=condition=Ready", "--timeout=120s")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            local = s.getsockname()[1]
        pf = subprocess.Popen([KUBECTL, "port-forward", "pod/p", f"{local}:80"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        assert pf.stdout is not None and "Forwarding from" in pf.stdout.readline()
        send(port, 1 << 20), send(local, 1 << 20)  # warm up both paths
        direct = send(port, total)
        pids = processes(tmp, pf.pid)
        cpu0 = cpu_seconds(pids)
        forwarded = send(local, total)
        cpu1 = cpu_seconds(pids)
        print(json.dumps({"bench": "port_forward_throughput", "megabytes": MB,
                          "direct_MBps": round(MB / direct, 1),
                          "port_forward_MBps": round(MB / forwarded, 1),
                          "port_forward_over_direct": round(direct / forwarded, 4),
                          "cpu_seconds": {k: round(cpu1[k] - cpu0[k], 2) for k in cpu1 if k in cpu0},
                          "wall_seconds": round(forwarded, 2)}), flush=True)
    finally:
        if pf is not None:
            pf.terminate()
            pf.wait(10)
        subprocess.run([sys.executable, "-m", "vkube", "delete", "bench"], env=env, capture_output=True)
        subprocess.run([sys.executable, "-m", "vkube", "host", "stop"], env=env, capture_output=True)


if __name__ == "__main__":
    main()
