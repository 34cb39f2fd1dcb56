"""A Deployment of N replicas in a virtual cluster on the embedded host, with the processes
split as users run them (issue 19): ``vkube host start`` (host API, scheduler, simulated
kubelets) and ``vkube create`` (virtual API, controllers, syncer) in their own processes,
driven through the official ``kubernetes`` client and the kubeconfigs vkube wrote.

Prints one JSON line per rollout with the seconds from the Deployment's create until each
stage was complete (``stages``), and when it first and last held (``first_last``: the first
pod and the last), so the slowest part shows (pods are followed by a watch on each cluster and
checked every ``--poll`` seconds; figures are good to that):
  virtual_pods      every replica exists in the virtual cluster (ReplicaSet controller)
  virtual_bound     every virtual pod names its node (syncer, binding back up)
  host_pods         every one was copied to the host namespace (syncer)
  host_bound        every host pod is bound to a node (host scheduler)
  host_running      every host pod is Running (simulated kubelets)
  virtual_running   every virtual pod is Running (syncer, status back): the figure
with the CPU seconds each process used meanwhile (``cpu_host_s``, ``cpu_vcluster_s``; idle
before it, per second, ``cpu_idle_*_per_s``; and
until ``--trail`` seconds later, ``cpu_*_with_trail_s``), and the virtual cluster's Event count
then and ``--trail`` seconds later (events still being written after the rollout is Running
trail it). ``--direct`` first runs the same Deployment straight
on a fresh host (``case: direct``, the reference); ``--profile DIR`` samples both processes
with py-spy.

    .venv/bin/python bench/bench_rollout.py [--replicas 1000|300,1000] [--nodes 10] [--direct]
        [--service]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import orjson


def emit(**kw: object) -> None:
    print(json.dumps(kw), flush=True)


def service() -> dict[str, Any]:
    """A Service selecting the Deployment's pods: its Endpoints and EndpointSlices follow
    every pod of the rollout (``--service``)."""
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "roll"},
            "spec": {"selector": {"app": "roll"}, "ports": [{"port": 80, "targetPort": 8080}]}}


def pdb() -> dict[str, Any]:
    """A PodDisruptionBudget over the same pods (``--service``): the disruption controller
    follows every pod too."""
    return {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "roll"},
            "spec": {"maxUnavailable": "10%", "selector": {"matchLabels": {"app": "roll"}}}}


def deployment(replicas: int) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "roll"},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "roll"}},
                     "template": {"metadata": {"labels": {"app": "roll"}},
                                  "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}}


class Api:
    """Raw calls through the official client (its model decoding of 1,000 pods would cost
    more than the servers under test)."""

    def __init__(self, kubeconfig: str, context: str | None) -> None:
        from kubernetes import client, config

        self.client = config.new_client_from_config(config_file=kubeconfig, context=context)
        self.core = client.CoreV1Api(self.client)
        self.apps = client.AppsV1Api(self.client)
        self.policy = client.PolicyV1Api(self.client)

    def endpoint_counts(self, namespace: str) -> dict[str, int]:
        """Addresses in the Service's Endpoints and in its EndpointSlices (both should reach
        the replica count) and how many slices hold them."""
        ep = orjson.loads(self.core.read_namespaced_endpoints(
            "roll", namespace, _preload_content=False).data)
        addrs = sum(len(s.get("addresses") or []) for s in ep.get("subsets") or [])
        not_ready = sum(len(s.get("notReadyAddresses") or []) for s in ep.get("subsets") or [])
        from kubernetes import client

        slices = orjson.loads(client.DiscoveryV1Api(self.client).list_namespaced_endpoint_slice(
            namespace, label_selector="kubernetes.io/service-name=roll",
            _preload_content=False).data)["items"]
        return {"endpoints_addresses": addrs, "endpoints_not_ready": not_ready,
                "endpointslices": len(slices),
                "endpointslice_endpoints": sum(len(s.get("endpoints") or []) for s in slices)}

    def event_reasons(self) -> dict[str, int]:
        """How many Events of each reason the cluster holds."""
        resp = self.core.list_event_for_all_namespaces(_preload_content=False)
        out: dict[str, int] = {}
        for ev in orjson.loads(resp.data)["items"]:
            out[ev.get("reason") or ""] = out.get(ev.get("reason") or "", 0) + 1
        return out

    def conflicts(self) -> dict[str, int]:
        """409s the server answered, by verb and resource: writes from a cache that was
        behind (each one a retry, and a back-off for its controller)."""
        return self.answered("409")

    def answered(self, code: str, writes: bool = False) -> dict[str, int]:
        """Requests the server answered with a code starting ``code`` (``""``: any), by verb
        and resource; ``writes``: only creates, updates, patches and deletes."""
        resp = self.client.call_api("GET", self.client.configuration.host + "/metrics")
        resp.read()
        out: dict[str, int] = {}
        for line in resp.data.decode().splitlines():
            if writes and not re.search(r'verb="(CREATE|PATCH|UPDATE|DELETE|POST|PUT)"', line, re.I):
                continue
            if line.startswith("apiserver_request_total{") and f'code="{code}' in line:
                labels = dict(re.findall(r'(\w+)="([^"]*)"', line))
                k = f"{labels.get('verb')} {labels.get('resource')}/{labels.get('subresource', '')}".rstrip("/")
                out[k] = out.get(k, 0) + int(float(line.rsplit(" ", 1)[1]))
        return out

    def event_count(self) -> int:
        return sum(self.event_reasons().values())

    def follow_pods(self, namespace: str, pods: dict[str, tuple[str, str]], stop: threading.Event) -> None:
        """Keep ``pods`` (name -> (node, phase)) current from a watch: a poller listing 1,000
        pods every second would itself cost the servers a tenth of their CPU. A broken watch
        starts again from the start (the map is keyed by name, so replays are harmless)."""
        while not stop.is_set():
            try:
                resp = self.core.list_namespaced_pod(namespace, watch=True, resource_version="0",
                                                     timeout_seconds=60, _preload_content=False)
                buf = b""
                for chunk in resp.stream(65536):
                    buf += chunk
                    while b"\n" in buf:
                        line, buf = buf.split(b"\n", 1)
                        ev = orjson.loads(line)
                        obj, name = ev["object"], ev["object"].get("metadata", {}).get("name")
                        if ev["type"] == "DELETED":
                            pods.pop(name, None)
                        elif ev["type"] in ("ADDED", "MODIFIED"):
                            pods[name] = (obj["spec"].get("nodeName") or "",
                                          (obj.get("status") or {}).get("phase") or "")
                    if stop.is_set():
                        resp.close()
                        return
            except Exception:  # the servers stop at the end, or the watch broke: watch again
                if stop.is_set():
                    return
                time.sleep(0.2)


def run(e: dict[str, str], *args: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "vkube", *args], env=e, capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"vkube {' '.join(args)} failed:\n{proc.stderr}{proc.stdout}")


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU seconds a process has used so far (0 when it is gone): a figure
    that moves less with the machine's load than wall time does."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def serve_pid(supervisor: int | None, pid_file: Path | None = None) -> int | None:
    """The `vkube serve` child of a cluster's supervisor (the process doing the work): the
    one its supervisor records in ``PIDFILE.children`` (forked by the host's spare, so not
    the supervisor's own child), else its first child."""
    if pid_file is not None:
        try:
            return int(json.loads(Path(str(pid_file) + ".children").read_text())[0][0])
        except (OSError, ValueError, IndexError, TypeError):
            pass
    if supervisor is None:
        return None
    try:
        children = Path(f"/proc/{supervisor}/task/{supervisor}/children").read_text().split()
    except OSError:
        return None
    return int(children[0]) if children else None


class Stages:
    """First and last moment (seconds since the Deployment's create) each stage held for
    one pod and for all ``n``: where the time goes, side by side."""

    NAMES = ("virtual_pods", "virtual_bound", "host_pods", "host_bound", "host_running",
             "virtual_running")

    def __init__(self, n: int, t0: float) -> None:
        self.n, self.t0 = n, t0
        self.first: dict[str, float] = {}
        self.last: dict[str, float] = {}

    def mark(self, name: str, count: int) -> None:
        at = round(time.monotonic() - self.t0, 2)
        if count and name not in self.first:
            self.first[name] = at
        if count >= self.n and name not in self.last:
            self.last[name] = at

    def observe(self, vpods: dict[str, tuple[str, str]] | None, hpods: dict[str, tuple[str, str]]) -> None:
        h = list(hpods.values())
        if vpods is not None:
            v = list(vpods.values())
            self.mark("virtual_pods", len(v))
            self.mark("virtual_bound", sum(1 for node, _ in v if node))
            self.mark("virtual_running", sum(1 for _, phase in v if phase == "Running"))
        self.mark("host_pods", len(h))
        self.mark("host_bound", sum(1 for node, _ in h if node))
        self.mark("host_running", sum(1 for _, phase in h if phase == "Running"))

    def table(self) -> dict[str, list[float | None]]:
        return {k: [self.first.get(k), self.last.get(k)] for k in self.NAMES if k in self.first}


class Profiler:
    """py-spy (a dev tool, `pip install py-spy`; not a dependency) sampling the host and the
    virtual cluster's processes during the rollout, written as collapsed stacks to DIR."""

    def __init__(self, out: str | None) -> None:
        self.out = Path(out) if out else None
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, label: str, pids: dict[str, int | None]) -> None:
        if self.out is None:
            return
        self.out.mkdir(parents=True, exist_ok=True)
        spy = Path(sys.executable).parent / "py-spy"
        for name, pid in pids.items():
            if pid is None:
                continue
            self.procs.append(subprocess.Popen(
                [str(spy), "record", "-p", str(pid), "-r", "50", "-f", "raw", "--nonblocking", "--gil",
                 "-o", str(self.out / f"{label}-{name}.txt")],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))

    def stop(self) -> None:
        for p in self.procs:
            p.send_signal(2)  # SIGINT: py-spy writes its file and exits
        for p in self.procs:
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                p.kill()
        self.procs.clear()


def rollout(args: argparse.Namespace, n: int, direct: bool, profiler: Profiler) -> None:
    """One fresh embedded host; the Deployment either in a virtual cluster on it or
    (``direct``) in a namespace of the host itself, the reference."""
    with tempfile.TemporaryDirectory(prefix="vkube-bench-rollout-") as d:
        home, kubeconfig = Path(d) / "home", Path(d) / "kube" / "config"
        env = {**os.environ, "VKUBE_HOME": str(home), "KUBECONFIG": str(kubeconfig), "KUBECTL_KUBERC": "false"}
        run(env, "host", "start", "--nodes", str(args.nodes))
        try:
            host = Api(str(home / "host" / "kubeconfig"), None)
            pids = {"host": read_pid(home / "host" / "host.pid")}
            if direct:
                host_ns, target = "direct", host
                host.core.create_namespace({"metadata": {"name": host_ns}})
                vpods: dict[str, tuple[str, str]] | None = None
            else:
                run(env, "create", "roll", "--connect")
                host_ns, target = "vkube-roll", Api(str(kubeconfig), None)
                pid_file = home / "clusters" / "roll" / "supervisor.pid"
                pids["vcluster"] = serve_pid(read_pid(pid_file), pid_file)
                vpods = {}
            hpods: dict[str, tuple[str, str]] = {}
            stop = threading.Event()
            follow = [(host, host_ns, hpods)] + ([(target, "default", vpods)] if vpods is not None else [])
            for api, ns, pods in follow:
                threading.Thread(target=api.follow_pods, args=(ns, pods, stop), daemon=True).start()
            ns = host_ns if direct else "default"
            if args.service:
                target.core.create_namespaced_service(ns, service())
                target.policy.create_namespaced_pod_disruption_budget(ns, pdb())
            time.sleep(1)
            # what each process uses idle (heartbeats, leases, resyncs) — a rollout that takes
            # longer on a loaded machine is charged more of it
            idle0 = {k: cpu_seconds(p) for k, p in pids.items()}
            time.sleep(args.idle)
            idle = {f"cpu_idle_{k}_per_s": round((cpu_seconds(p) - idle0[k]) / args.idle, 3)
                    for k, p in pids.items()} if args.idle > 0 else {}
            cpu0 = {k: cpu_seconds(p) for k, p in pids.items()}
            profiler.start(f"{'direct' if direct else 'virtual'}-{n}", pids)
            target.apps.create_namespaced_deployment(host_ns if direct else "default", deployment(n))
            t0 = time.monotonic()
            stages = Stages(n, t0)
            done = "host_running" if direct else "virtual_running"
            while done not in stages.last and time.monotonic() - t0 < args.timeout:
                stages.observe(vpods, hpods)
                time.sleep(args.poll)
            cpu = {f"cpu_{k}_s": round(cpu_seconds(p) - cpu0[k], 1) for k, p in pids.items()}
            profiler.stop()
            stop.set()
            line: dict[str, Any] = {"bench": "rollout", "replicas": n, "nodes": args.nodes}
            if direct:
                line["case"] = "direct"
            line.update(seconds=stages.last.get(done),
                        stages={k: v[1] for k, v in stages.table().items()},
                        first_last=stages.table(), **cpu, **idle)
            if not direct:
                events_then = target.event_count()
                time.sleep(args.trail)
                reasons = target.event_reasons()
                # and with the events that trailed (the same --trail seconds after Running)
                line.update({f"cpu_{k}_with_trail_s": round(cpu_seconds(p) - cpu0[k], 1)
                             for k, p in pids.items()})
                line.update(events_at_running=events_then,
                            events_trail=sum(reasons.values()) - events_then, event_reasons=reasons)
            if args.service:  # after the trail: where the endpoints settled
                line.update(target.endpoint_counts(ns))
            if not direct:
                line["conflicts"] = target.conflicts()
                if args.requests:  # writes per pod, by verb and resource, on each side
                    for side, api in (("virtual", target), ("host", host)):
                        line[f"writes_{side}"] = {k: round(v / n, 2) for k, v in sorted(
                            api.answered("", writes=True).items())}
            line["load_average"] = round(os.getloadavg()[0], 1)
            emit(**line)
        finally:
            if args.keep_logs:  # the processes' logs, for a rollout that did not converge
                out = Path(args.keep_logs)
                out.mkdir(parents=True, exist_ok=True)
                for src in (home / "host" / "host.log", home / "clusters" / "roll" / "vkube.log"):
                    if src.exists():
                        (out / f"{'direct' if direct else 'virtual'}-{n}-{src.name}").write_bytes(src.read_bytes())
            if not direct:
                run(env, "delete", "roll")
            run(env, "host", "stop")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--replicas", default="1000", help="one count or several: 300,1000")
    p.add_argument("--nodes", type=int, default=10)
    p.add_argument("--poll", type=float, default=0.2)
    p.add_argument("--trail", type=float, default=10.0)
    p.add_argument("--idle", type=float, default=5.0,
                   help="seconds of idle CPU measured before the rollout (cpu_idle_*_per_s)")
    p.add_argument("--timeout", type=float, default=900.0)
    p.add_argument("--direct", action="store_true",
                   help="also the same Deployment directly on the host, the reference (first)")
    p.add_argument("--service", action="store_true",
                   help="a Service and a PodDisruptionBudget select the Deployment's pods "
                        "(endpoints, endpointslice and disruption controllers follow the rollout)")
    p.add_argument("--requests", action="store_true",
                   help="writes per replica each API server answered, by verb and resource")
    p.add_argument("--keep-logs", metavar="DIR", help="copy the host's and the cluster's logs to DIR")
    p.add_argument("--profile", metavar="DIR",
                   help="sample both processes with py-spy; collapsed stacks go to DIR")
    args = p.parse_args()
    profiler = Profiler(args.profile)
    for n in (int(x) for x in args.replicas.split(",")):
        if args.direct:
            rollout(args, n, True, profiler)
        rollout(args, n, False, profiler)


if __name__ == "__main__":
    main()
