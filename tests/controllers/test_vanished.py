"""Objects deleted while their controller reconciles them are a normal event: no controller
logs an ERROR (with a traceback) for it, and nothing is left behind. Every workload kind is
created and deleted at once, many times, through kubectl and the API, on the embedded host."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest

from tests.controllers.workload_env import WorkloadEnv, eventually, workloads  # noqa: F401
from vkube.client.resources import (CRONJOBS, DAEMONSETS, DEPLOYMENTS, JOBS, NODES, PODS, REPLICASETS,
                                    STATEFULSETS)

POD = {"metadata": {"labels": {"app": "v"}},
       "spec": {"terminationGracePeriodSeconds": 1,
                "containers": [{"name": "c", "image": "busybox", "command": ["sleep", "3600"]}]}}


def manifest(kind: str, name: str) -> tuple[Any, dict]:
    sel = {"matchLabels": {"app": "v", "name": name}}
    tpl = json.loads(json.dumps(POD))
    tpl["metadata"]["labels"]["name"] = name
    if kind == "Deployment":
        return DEPLOYMENTS, {"apiVersion": "apps/v1", "kind": kind, "metadata": {"name": name},
                             "spec": {"replicas": 3, "selector": sel, "template": tpl}}
    if kind == "ReplicaSet":
        return REPLICASETS, {"apiVersion": "apps/v1", "kind": kind, "metadata": {"name": name},
                             "spec": {"replicas": 3, "selector": sel, "template": tpl}}
    if kind == "StatefulSet":
        return STATEFULSETS, {"apiVersion": "apps/v1", "kind": kind, "metadata": {"name": name},
                              "spec": {"replicas": 2, "serviceName": name, "selector": sel,
                                       "podManagementPolicy": "Parallel", "template": tpl}}
    if kind == "DaemonSet":
        return DAEMONSETS, {"apiVersion": "apps/v1", "kind": kind, "metadata": {"name": name},
                            "spec": {"selector": sel, "template": tpl}}
    tpl["spec"]["restartPolicy"] = "Never"
    if kind == "Job":
        return JOBS, {"apiVersion": "batch/v1", "kind": kind, "metadata": {"name": name},
                      "spec": {"parallelism": 2, "completions": 4, "template": tpl}}
    return CRONJOBS, {"apiVersion": "batch/v1", "kind": kind, "metadata": {"name": name},
                      "spec": {"schedule": "* * * * *", "jobTemplate": {"spec": {"template": tpl}}}}


KINDS = ["Deployment", "ReplicaSet", "StatefulSet", "DaemonSet", "Job", "CronJob"]


async def test_deleting_mid_reconcile_logs_no_error(workloads: WorkloadEnv,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    env, client = workloads, workloads.client
    caplog.set_level(logging.INFO, logger="vkube.controllers")
    for round_ in range(12):
        for kind in KINDS:
            res, body = manifest(kind, f"{kind.lower()}-{round_}")
            await client.create(res, body, namespace="default")
        await asyncio.sleep(0.03 * (round_ % 6))  # catch reconciles at different points
        for kind in KINDS:
            res, body = manifest(kind, f"{kind.lower()}-{round_}")
            await client.delete(res, body["metadata"]["name"], namespace="default",
                                propagation_policy="Background")
    # and once through kubectl, with the default (background) cascade
    await env.kubectl("create", "deployment", "kd", "--image=busybox", "--replicas=3")
    await env.kubectl("delete", "deployment", "kd", "--wait=false")

    async def all_gone() -> bool:
        for res in (DEPLOYMENTS, REPLICASETS, STATEFULSETS, DAEMONSETS, JOBS, CRONJOBS, PODS):
            left = (await client.list(res, namespace="default"))["items"]
            assert not left, (res.plural, [o["metadata"]["name"] for o in left])
        return True
    await eventually(all_gone, timeout=90)
    await asyncio.sleep(1)  # let queued reconciles of the deleted objects run
    errors = [r for r in caplog.records
              if r.name.startswith("vkube.controllers") and r.levelno >= logging.ERROR]
    assert not errors, [(r.name, r.getMessage(), r.exc_text) for r in errors]


# ---------------------------------------------------------------- deterministically, on fakes

def _fake_scenarios() -> dict[str, tuple[list[type], Any, dict]]:
    from tests.controllers.test_cronjob import cronjob
    from tests.controllers.test_daemonset import ds
    from tests.controllers.test_deployment import deploy
    from tests.controllers.test_job import job
    from tests.controllers.test_replicaset import rs_obj
    from tests.controllers.test_statefulset import sts
    from vkube.controllers.workloads import (CronJobController, DaemonSetController,
                                             DeploymentController, JobController,
                                             ReplicaSetController, StatefulSetController)

    return {
        "Deployment": ([DeploymentController, ReplicaSetController], DEPLOYMENTS, deploy()),
        "ReplicaSet": ([ReplicaSetController], REPLICASETS, rs_obj()),
        "StatefulSet": ([StatefulSetController], STATEFULSETS, sts()),
        "DaemonSet": ([DaemonSetController], DAEMONSETS, ds()),
        "Job": ([JobController], JOBS, job(parallelism=2, completions=3)),
        "CronJob": ([CronJobController, JobController], CRONJOBS,
                    cronjob(schedule="* * * * *")),
    }


@pytest.mark.parametrize("kind", KINDS)
async def test_owner_deleted_before_each_write_is_not_an_error(kind: str) -> None:
    """The owner is deleted just before the controller's 1st, 2nd, … API write: every write
    then meets a vanished object, and no reconcile may fail for it."""
    from tests.controllers.test_daemonset import node
    from tests.fakes import FakeCluster

    controllers, res, body = _fake_scenarios()[kind]
    writes_seen = 0
    for k in range(1, 13):
        c = FakeCluster()
        for name in ("n1", "n2"):
            await c.client.create(NODES, node(name))
        for cls in controllers:
            c.add(cls, **({"backoff_base": 0.0} if cls.__name__ == "JobController" else {}))
        owner = await c.client.create(res, body)
        key = (res.plural, "default", owner["metadata"]["name"])
        count, armed = 0, False
        for verb in ("create", "update", "patch", "delete"):
            real = getattr(c.client, verb)

            async def hooked(*a: Any, _real: Any = real, **kw: Any) -> Any:
                nonlocal count
                if armed:  # only the controllers' writes, not the test playing kubelet
                    count += 1
                    if count == k and key in c.objs:
                        c.remove(key)  # the user's delete lands between read and write
                return await _real(*a, **kw)
            setattr(c.client, verb, hooked)
        for _ in range(3):
            c.advance(61)  # CronJobs: the next minute's run
            c.kick()
            armed = True
            await c.settle()
            armed = False
            assert not c.errors, (kind, k, c.errors)
            await c.run_pods()
        writes_seen = max(writes_seen, count)
    assert writes_seen >= 3  # the scenario really wrote, so every early write was covered



