"""A Deployment of N replicas in a virtual cluster on the embedded host, with the processes
split as users run them (issue 19): ``vkube host start`` (host API, scheduler, simulated
kubelets) and ``vkube create`` (virtual API, controllers, syncer) in their own processes,
driven through the official ``kubernetes`` client and the kubeconfigs vkube wrote.

Prints one JSON line with the seconds from the Deployment's create until each stage was
complete, so the slowest part shows (pods are followed by a watch on each cluster and
checked every ``--poll`` seconds; figures are good to that):
  virtual_pods      every replica exists in the virtual cluster (ReplicaSet controller)
  host_pods         every one was copied to the host namespace (syncer)
  host_bound        every host pod is bound to a node (host scheduler)
  host_running      every host pod is Running (simulated kubelets)
  virtual_running   every virtual pod is Running (syncer, status back): the figure
and the virtual cluster's Event count then and ``--trail`` seconds later (events still being
written after the rollout is Running trail it).

    .venv/bin/python bench/bench_rollout.py [--replicas 1000] [--nodes 10] [--poll 0.2]
"""

from __future__ import annotations

import argparse
import json
import os
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

    def event_count(self) -> int:
        resp = self.core.list_event_for_all_namespaces(_preload_content=False)
        return len(orjson.loads(resp.data)["items"])

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


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--replicas", type=int, default=1000)
    p.add_argument("--nodes", type=int, default=10)
    p.add_argument("--poll", type=float, default=0.2)
    p.add_argument("--trail", type=float, default=10.0)
    p.add_argument("--timeout", type=float, default=900.0)
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="vkube-bench-rollout-") as d:
        home, kubeconfig = Path(d) / "home", Path(d) / "kube" / "config"
        env = {**os.environ, "VKUBE_HOME": str(home), "KUBECONFIG": str(kubeconfig), "KUBECTL_KUBERC": "false"}
        run(env, "host", "start", "--nodes", str(args.nodes))
        try:
            run(env, "create", "roll", "--connect")
            virtual = Api(str(kubeconfig), None)
            host = Api(str(home / "host" / "kubeconfig"), None)
            host_ns = "vkube-roll"
            vpods: dict[str, tuple[str, str]] = {}
            hpods: dict[str, tuple[str, str]] = {}
            stop = threading.Event()
            followers = [threading.Thread(target=api.follow_pods, args=(ns, pods, stop), daemon=True)
                         for api, ns, pods in ((virtual, "default", vpods), (host, host_ns, hpods))]
            for t in followers:
                t.start()
            time.sleep(1)
            virtual.apps.create_namespaced_deployment("default", deployment(args.replicas))
            t0 = time.monotonic()
            marks: dict[str, float] = {}
            n = args.replicas

            def mark(name: str, done: bool) -> None:
                if done and name not in marks:
                    marks[name] = round(time.monotonic() - t0, 2)

            while "virtual_running" not in marks and time.monotonic() - t0 < args.timeout:
                v, h = list(vpods.values()), list(hpods.values())
                mark("virtual_pods", len(v) >= n)
                mark("host_pods", len(h) >= n)
                mark("host_bound", sum(1 for node, _ in h if node) >= n)
                mark("host_running", sum(1 for _, phase in h if phase == "Running") >= n)
                mark("virtual_running", sum(1 for _, phase in v if phase == "Running") >= n)
                time.sleep(args.poll)
            stop.set()
            events_then = virtual.event_count()
            time.sleep(args.trail)
            events_later = virtual.event_count()
            emit(bench="rollout", replicas=n, nodes=args.nodes, seconds=marks.get("virtual_running"),
                 stages=marks, events_at_running=events_then, events_trail=events_later - events_then,
                 load_average=round(os.getloadavg()[0], 1))
        finally:
            run(env, "delete", "roll")
            run(env, "host", "stop")


if __name__ == "__main__":
    main()
