"""DRA through a virtual cluster against the same on the host: prints JSON lines.

An embedded host with 2 nodes of ``--replicas`` + 1 simulated GPUs each; after one warm-up pod
on each side, one Deployment of
``--replicas`` pods, each claiming one GPU through a ResourceClaimTemplate, applied first on
the host itself, then in a virtual cluster (``sync.resourceclaims``) on that host. Reported:
seconds from ``kubectl apply`` until every pod is Running with its claim allocated, on each
side, and their ratio (what the claim sync, status sync and translation add).

    .venv/bin/python bench/bench_dra.py [--replicas 10]

Everything lives in a temporary VKUBE_HOME/KUBECONFIG and is stopped and deleted at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

KUBECTL = str(Path(sys.executable).parent / "kubectl")
DRIVER = "gpu.example.com"
CLASS = f"""apiVersion: resource.k8s.io/v1
kind: DeviceClass
metadata: {{name: gpu}}
spec:
  selectors: [{{cel: {{expression: 'device.driver == "{DRIVER}"'}}}}]
"""


def workload(ns: str, replicas: int) -> str:
    return f"""apiVersion: v1
kind: Namespace
metadata: {{name: {ns}}}
---
apiVersion: resource.k8s.io/v1
kind: ResourceClaimTemplate
metadata: {{name: one-gpu, namespace: {ns}}}
spec:
  spec:
    devices:
      requests: [{{name: gpu, exactly: {{deviceClassName: gpu}}}}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: train, namespace: {ns}}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: train}}}}
  template:
    metadata: {{labels: {{app: train}}}}
    spec:
      containers: [{{name: c, image: cuda, resources: {{claims: [{{name: gpu}}]}}}}]
      resourceClaims: [{{name: gpu, resourceClaimTemplateName: one-gpu}}]
"""


class Env:
    def __init__(self, root: Path) -> None:
        (root / "kube").mkdir()
        self.home, self.kubeconfig = root / "vkube", root / "kube" / "config"
        self.env = {**os.environ, "VKUBE_HOME": str(self.home), "KUBECONFIG": str(self.kubeconfig),
                    "KUBECTL_KUBERC": "false"}

    def run(self, *args: str, stdin: str | None = None) -> str:
        proc = subprocess.run(list(args), env=self.env, capture_output=True, text=True, input=stdin)
        if proc.returncode:
            raise SystemExit(f"{' '.join(args)} failed:\n{proc.stderr}{proc.stdout}")
        return proc.stdout

    def vkube(self, *args: str) -> str:
        return self.run(sys.executable, "-m", "vkube", *args)

    def kubectl(self, kc: Path, *args: str, stdin: str | None = None) -> str:
        return self.run(KUBECTL, "--kubeconfig", str(kc), *args, stdin=stdin)


def time_to_running(env: Env, kc: Path, ns: str, replicas: int, timeout: float = 600) -> float:
    t0 = time.perf_counter()
    env.kubectl(kc, "apply", "-f", "-", stdin=workload(ns, replicas))
    while time.perf_counter() - t0 < timeout:
        pods = json.loads(env.kubectl(kc, "get", "pods", "-n", ns, "-o", "json"))["items"]
        claims = json.loads(env.kubectl(kc, "get", "resourceclaims", "-n", ns, "-o", "json"))["items"]
        if len(pods) == replicas and all(p["status"].get("phase") == "Running" for p in pods) and \
                sum(1 for c in claims if (c.get("status") or {}).get("reservedFor")) == replicas:
            return time.perf_counter() - t0
        time.sleep(0.2)
    raise SystemExit(f"{ns}: not all Running after {timeout}s")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--replicas", type=int, default=10)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        env = Env(Path(tmp))
        try:
            env.vkube("host", "start", "--nodes", "2", "--node-devices", f"{DRIVER}={args.replicas + 1}")
            host = env.home / "host" / "kubeconfig"
            env.kubectl(host, "apply", "-f", "-", stdin=CLASS)
            values = Path(tmp) / "values.yaml"
            values.write_text("sync: {resourceclaims: {enabled: true}}\n")
            env.vkube("create", "bench", "-f", str(values))
            time_to_running(env, host, "warmup", 1)  # first CEL compile, scheduler caches
            time_to_running(env, env.kubeconfig, "warmup", 1)
            on_host = time_to_running(env, host, "direct", args.replicas)
            virtual = time_to_running(env, env.kubeconfig, "train", args.replicas)
            print(json.dumps({"bench": "dra.time_to_running", "replicas": args.replicas,
                              "host_s": round(on_host, 2), "virtual_s": round(virtual, 2),
                              "ratio": round(virtual / on_host, 2)}), flush=True)
        finally:
            subprocess.run([sys.executable, "-m", "vkube", "delete", "bench"], env=env.env, capture_output=True)
            subprocess.run([sys.executable, "-m", "vkube", "host", "stop"], env=env.env, capture_output=True)


if __name__ == "__main__":
    main()
