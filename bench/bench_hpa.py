"""HPA reaction time: from a change of the pods' (simulated) CPU usage to the change of the
target's replicas, through a real API server, metrics.k8s.io and the HPA controller.

    .venv/bin/python bench/bench_hpa.py [--rounds 4] [--sync-periods 15,1] [--pods 4]

Each round raises the usage of every pod to twice the target (scale up to 2n), then lowers it
to half (scale down to n/2, with a 0 s down-stabilization window so the policy alone decides).
No workload controllers run: the n measured pods stay, only the Deployment's replicas move. The controller re-evaluates
every sync period (kube-controller-manager's default is 15 s), so the reaction time is about
half a period plus the work. Prints one JSON line per sync period.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import tempfile
import time

from vkube.apiserver.server import ControlPlane
from vkube.client import Client
from vkube.client.client import Resource
from vkube.client.resources import DEPLOYMENTS, PODS
from vkube.controllers.hpa import HorizontalPodAutoscalerController
from vkube.controllers.runtime import ControllerManager

HPAS = Resource("autoscaling", "v2", "horizontalpodautoscalers", True, "HorizontalPodAutoscaler")


async def set_usage(client: Client, pods: list[str], usage: str) -> None:
    await asyncio.gather(*(client.patch(PODS, name, {"metadata": {"annotations": {"vkube.io/cpu-usage": usage}}},
                                        namespace="default") for name in pods))


async def wait_replicas(client: Client, want: int, timeout: float = 120) -> float:
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        dep = await client.get(DEPLOYMENTS, "web", namespace="default")
        if dep["spec"]["replicas"] == want:
            return time.perf_counter() - start
        await asyncio.sleep(0.02)
    raise TimeoutError(f"replicas never became {want}")


async def run(sync_period: float, rounds: int, n_pods: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        cp = ControlPlane(data_dir=tmp)
        await cp.start()
        client = Client(cp.url, ssl=cp.client_ssl())
        mgr = ControllerManager(client, identity="bench", leader_election=False,
                                options={"horizontal-pod-autoscaler": {"sync_period": sync_period}})
        mgr.add(HorizontalPodAutoscalerController)
        task = asyncio.create_task(mgr.run())
        try:
            await client.create(DEPLOYMENTS, {
                "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
                "spec": {"replicas": n_pods, "selector": {"matchLabels": {"app": "web"}},
                         "template": {"metadata": {"labels": {"app": "web"}},
                                      "spec": {"containers": [{"name": "app", "image": "nginx"}]}}}},
                namespace="default")
            names = [f"web-{i}" for i in range(n_pods)]
            for name in names:  # the pods a Deployment would run (no workload controllers here)
                await client.create(PODS, {"apiVersion": "v1", "kind": "Pod", "metadata": {
                    "name": name, "labels": {"app": "web"}, "annotations": {"vkube.io/cpu-usage": "50m"}},
                    "spec": {"containers": [{"name": "app", "image": "nginx",
                                             "resources": {"requests": {"cpu": "100m"}}}]}}, namespace="default")
                pod = await client.get(PODS, name, namespace="default")
                pod["status"] = {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}
                await client.update(PODS, pod, subresource="status")
            dep = await client.get(DEPLOYMENTS, "web", namespace="default")
            dep["status"] = {"replicas": n_pods, "readyReplicas": n_pods}
            await client.update(DEPLOYMENTS, dep, subresource="status")
            await client.create(HPAS, {
                "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "web"},
                "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                         "minReplicas": 1, "maxReplicas": 4 * n_pods,
                         "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {
                             "type": "Utilization", "averageUtilization": 50}}}],
                         "behavior": {"scaleDown": {"stabilizationWindowSeconds": 0},
                                      "scaleUp": {"policies": [{"type": "Percent", "value": 1000,
                                                                "periodSeconds": 15}]}}}}, namespace="default")
            await asyncio.wait_for(mgr.started.wait(), 30)
            await asyncio.sleep(sync_period + 1)  # the first evaluation: usage at target, no change
            ups, downs = [], []
            for _ in range(rounds):
                # the measured pods stay n: 100 % of request is 2x the target -> 2n replicas;
                # 25 % is half the target -> n/2 replicas
                await asyncio.sleep(random.uniform(0, sync_period))  # out of phase with the syncs
                await set_usage(client, names, "100m")
                ups.append(await wait_replicas(client, 2 * n_pods))
                await asyncio.sleep(random.uniform(0, sync_period))
                await set_usage(client, names, "25m")
                downs.append(await wait_replicas(client, max(1, n_pods // 2)))
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await client.close()
            await cp.stop()
    both = ups + downs
    return {"bench": "hpa_reaction", "sync_period_s": sync_period, "pods": n_pods, "rounds": rounds,
            "scale_up_s": [round(x, 3) for x in ups], "scale_down_s": [round(x, 3) for x in downs],
            "p50_s": round(statistics.median(both), 3), "max_s": round(max(both), 3),
            "mean_s": round(statistics.fmean(both), 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--pods", type=int, default=4)
    parser.add_argument("--sync-periods", default="15,1")
    args = parser.parse_args()
    for period in (float(p) for p in args.sync_periods.split(",")):
        print(json.dumps(asyncio.run(run(period, args.rounds, args.pods))), flush=True)


if __name__ == "__main__":
    main()
