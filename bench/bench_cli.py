"""vkube CLI benchmark, as a user sees it: prints JSON lines.

0. ``cli.host_start``: wall time of ``vkube host start --nodes 3``, with the CPU of the command
   and of the host process until ready (CPU is less sensitive to a loaded machine).
1. ``cli.create``: wall time of ``vkube create NAME --connect`` until ``kubectl get ns``
   succeeds on the new context (the embedded host is already up), then ``pause``, ``resume``
   and ``delete``; each is the median of ``--rounds`` rounds.
2. ``cli.idle_rss``: RSS of one idle virtual cluster's processes (supervisor + serve), summed
   as ``describe`` reports it, with each process's RSS and the PSS sum (shared pages such as
   libpython counted once across processes, as ``smem`` does); ``cli.idle_rss_mappings``:
   each process's RSS by mapping (the Python heap, and each shared library).
3. ``cli.many``: the same with ``--many`` (default 20) virtual clusters on one host: create
   time of each, total RSS, ``vkube list`` time.

    .venv/bin/python bench/bench_cli.py [--rounds 3] [--many 20] [--no-compile]

Everything lives in a temporary VKUBE_HOME/KUBECONFIG and is deleted at the end. The vkube
package is byte-compiled first, as ``pip install`` does: with an editable install and
PYTHONDONTWRITEBYTECODE set, every process would otherwise compile vkube from source
(~0.1 s per process on this machine); ``--no-compile`` measures that case.
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

KUBECTL = str(Path(sys.executable).parent / "kubectl")


def emit(**kw: object) -> None:
    print(json.dumps(kw), flush=True)


class Env:
    def __init__(self, root: Path) -> None:
        self.home = root / "vkube"
        self.kubeconfig = root / "kube" / "config"
        self.env = {**os.environ, "VKUBE_HOME": str(self.home),
                    "KUBECONFIG": str(self.kubeconfig), "KUBECTL_KUBERC": "false"}

    def run(self, *args: str) -> float:
        """Seconds a command took; raises with its output when it fails."""
        t0 = time.perf_counter()
        proc = subprocess.run(list(args), env=self.env, capture_output=True, text=True)
        dt = time.perf_counter() - t0
        if proc.returncode:
            raise SystemExit(f"{' '.join(args)} failed:\n{proc.stderr}{proc.stdout}")
        return dt

    def vkube(self, *args: str) -> float:
        return self.run(sys.executable, "-m", "vkube", *args)

    def describe(self, name: str) -> dict:
        out = subprocess.run([sys.executable, "-m", "vkube", "describe", name, "-o", "json"],
                             env=self.env, capture_output=True, text=True, check=True).stdout
        return json.loads(out)


def _kib(pid: int, field: str, name: str = "status") -> int:
    try:
        for line in Path(f"/proc/{pid}/{name}").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def idle_memory(pids: list[int]) -> dict[str, object]:
    """RSS counts every page a process maps, also those it shares (libraries, and a serve
    forked from the spare shares the spare's modules); PSS splits shared pages between their
    sharers; USS is what the process alone holds (what stopping it frees)."""
    mib = lambda kib: round(kib / 1024, 1)  # noqa: E731
    return {"rss_per_process_mib": [mib(_kib(p, "VmRSS")) for p in pids],
            "pss_mib": mib(sum(_kib(p, "Pss", "smaps_rollup") for p in pids)),
            "uss_mib": mib(sum(_kib(p, "Private_Clean", "smaps_rollup")
                               + _kib(p, "Private_Dirty", "smaps_rollup") for p in pids)),
            "anon_mib": mib(sum(_kib(p, "RssAnon") for p in pids))}


def mappings(pid: int, top: int = 8) -> dict[str, float]:
    """RSS (MiB) of a process by mapping, from ``/proc/PID/smaps``: ``anon`` (the Python heap:
    pymalloc arenas, malloc's heap, stacks) and the largest files (libpython, libcrypto,
    cryptography's ``_rust``, uvloop...), the rest summed as ``other_files``."""
    rss: dict[str, int] = {}
    name = "anon"
    try:
        lines = Path(f"/proc/{pid}/smaps").read_text().splitlines()
    except OSError:
        return {}
    for line in lines:
        head = line.split(maxsplit=5)
        if "-" in head[0] and not head[0].endswith(":"):
            path = head[5] if len(head) > 5 else ""
            name = path.rsplit("/", 1)[-1] if path.startswith("/") else "anon"
        elif head[0] == "Rss:":
            rss[name] = rss.get(name, 0) + int(head[1])
    files = sorted(((v, k) for k, v in rss.items() if k != "anon"), reverse=True)
    out = {"anon": round(rss.get("anon", 0) / 1024, 1)}
    out.update((k, round(v / 1024, 1)) for v, k in files[:top])
    out["other_files"] = round(sum(v for v, _ in files[top:]) / 1024, 1)
    return out


def spare_pids(home: Path) -> list[int]:
    """The embedded host's spare (vkube.cli.spare), which serve processes are forked from."""
    sock = str(home / "host" / "spare.sock").encode()
    out = []
    for d in Path("/proc").iterdir():
        try:
            cmd = (d / "cmdline").read_bytes() if d.name.isdigit() else b""
        except OSError:
            continue
        if b"vkube.cli.spare" in cmd and sock in cmd:
            out.append(int(d.name))
    return out


def ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


def _cpu_children() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def _cpu_of(pid: int) -> float:
    """User + system CPU seconds of a live process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _reaped_cpu(pids: list[int]) -> float:
    """User + system CPU seconds of the reaped children of ``pids`` (the spare's: a CLI
    command it forked counts there once it ended)."""
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[13]) + int(fields[14])) / os.sysconf("SC_CLK_TCK")
    return total


def bench_lifecycle(e: Env, rounds: int) -> None:
    """Wall times, and CPU seconds (less sensitive to a loaded machine than wall time): of
    the ``vkube create`` command (with the spare: the process the user started plus the
    child of the spare that ran it), and of the cluster's processes once ``get ns`` answered."""
    times: dict[str, list[float]] = {"create_until_kubectl": [], "create": [], "pause": [],
                                     "resume": [], "delete": []}
    cpu: dict[str, list[float]] = {"create_cli": [], "control_plane_after_get_ns": []}
    for i in range(rounds):
        name = f"bench-{i}"
        t0 = time.perf_counter()
        spare = spare_pids(e.home)
        c0, s0 = _cpu_children(), _reaped_cpu(spare)
        times["create"].append(e.vkube("create", name, "--connect"))
        deadline = time.monotonic() + 2.0  # until the spare reaped the child that ran it
        while spare and _reaped_cpu(spare) == s0 and time.monotonic() < deadline:
            time.sleep(0.01)
        cpu["create_cli"].append(_cpu_children() - c0 + _reaped_cpu(spare) - s0)
        e.run(KUBECTL, "get", "ns")
        times["create_until_kubectl"].append(time.perf_counter() - t0)
        cpu["control_plane_after_get_ns"].append(sum(_cpu_of(p) for p in e.describe(name)["process"]["pids"]))
        if i == 0:
            time.sleep(2)  # let it settle: idle RSS, not start-up peak
            d = e.describe(name)
            emit(bench="cli.idle_rss", processes=len(d["process"]["pids"]),
                 rss_mib=round(d["process"]["rssBytes"] / 2**20, 1), **idle_memory(d["process"]["pids"]),
                 load=round(os.getloadavg()[0], 1))
            for kind, pid in zip(("supervisor", "serve"), d["process"]["pids"]):
                emit(bench="cli.idle_rss_mappings", process=kind, rss_mib=mappings(pid))
            spare = spare_pids(e.home)  # shared by every cluster of the host, not in the above
            emit(bench="cli.spare_rss", processes=len(spare), **idle_memory(spare))
        times["pause"].append(e.vkube("pause", name))
        times["resume"].append(e.vkube("resume", name))
        times["delete"].append(e.vkube("delete", name))
    emit(bench="cli.lifecycle", rounds=rounds, load=round(os.getloadavg()[0], 1),
         **{f"{k}_ms": ms(statistics.median(v)) for k, v in times.items()})
    emit(bench="cli.create_cpu", rounds=rounds, **{f"{k}_cpu_ms": ms(statistics.median(v)) for k, v in cpu.items()})


def bench_many(e: Env, n: int) -> None:
    names = [f"many-{i}" for i in range(n)]
    creates = [e.vkube("create", name, "--connect=false") for name in names]
    time.sleep(2)
    rss = sum(e.describe(name)["process"]["rssBytes"] for name in names)
    list_s = e.vkube("list")
    emit(bench="cli.many", clusters=n, create_first_ms=ms(creates[0]),
         create_last_ms=ms(creates[-1]), create_median_ms=ms(statistics.median(creates)),
         total_rss_mib=round(rss / 2**20, 1), rss_per_cluster_mib=round(rss / n / 2**20, 1),
         list_ms=ms(list_s))
    deletes = [e.vkube("delete", name) for name in names]
    emit(bench="cli.many.delete", clusters=n, delete_median_ms=ms(statistics.median(deletes)))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--many", type=int, default=20)
    p.add_argument("--no-compile", action="store_true",
                   help="do not byte-compile vkube first (measures source compilation too)")
    args = p.parse_args()
    if not args.no_compile:
        compileall.compile_dir(Path(__file__).resolve().parent.parent / "vkube", quiet=1)
    with tempfile.TemporaryDirectory(prefix="vkube-bench-cli-") as d:
        e = Env(Path(d))
        c0 = _cpu_children()
        t = e.vkube("host", "start", "--nodes", "3")
        cli_cpu = _cpu_children() - c0
        # CPU (less sensitive to a loaded machine than wall time): the command's, and the host
        # process's until ready, as its log says (the spare starts after, in its own process)
        log = (e.home / "host" / "host.log").read_text()
        host_cpu = log.split("start-up CPU ", 1)[1].split(" ms", 1)[0] if "start-up CPU " in log else None
        emit(bench="cli.host_start", ms=ms(t), cli_cpu_ms=ms(cli_cpu),
             host_cpu_ms=float(host_cpu) if host_cpu else None, load=round(os.getloadavg()[0], 1))
        try:
            bench_lifecycle(e, args.rounds)
            if args.many:
                bench_many(e, args.many)
        finally:
            for c in (e.home / "clusters").glob("*"):
                subprocess.run([sys.executable, "-m", "vkube", "delete", c.name], env=e.env,
                               capture_output=True)
            subprocess.run([sys.executable, "-m", "vkube", "host", "stop"], env=e.env,
                           capture_output=True)


if __name__ == "__main__":
    main()
