"""Issue 5's acceptance list, end to end: the real kubectl against a control plane whose
controllers run workloads on the embedded host. Orderings and limits (availability during a
rolling update, StatefulSet start order, Job parallelism) are checked from WATCH streams, so
every intermediate state the store went through is seen, not a sample of them."""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import yaml

from tests.controllers.workload_env import WorkloadEnv, eventually, workloads  # noqa: F401
from vkube.api import errors
from vkube.client.client import Resource
from vkube.client.resources import (CRONJOBS, DEPLOYMENTS, JOBS, NAMESPACES, PODS, PVCS,
                                    REPLICASETS)
from vkube.controllers.workloads import JobController

Obj = dict[str, Any]


class Recorder:
    """Mirrors one resource from a watch (resuming on a closed stream) and calls ``on_event``
    after every event with the whole mirrored state, so invariants hold at every revision."""

    def __init__(self, client: Any, res: Resource, *, namespace: str = "default",
                 label_selector: str | None = None,
                 on_event: Callable[[str, Obj, dict[str, Obj]], None] | None = None) -> None:
        self.client, self.res, self.ns, self.selector = client, res, namespace, label_selector
        self.on_event = on_event or (lambda t, o, s: None)
        self.objects: dict[str, Obj] = {}
        self.log: list[tuple[str, Obj]] = []
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        lst = await self.client.list(self.res, namespace=self.ns, label_selector=self.selector)
        for o in lst["items"]:
            self.objects[o["metadata"]["name"]] = o
        self._task = asyncio.create_task(self._run(lst["metadata"]["resourceVersion"]))

    async def _run(self, rv: str) -> None:
        while True:
            async for ev in self.client.watch(self.res, namespace=self.ns, resource_version=rv,
                                              label_selector=self.selector):
                rv = ev.object["metadata"].get("resourceVersion") or rv
                if ev.type == "BOOKMARK":
                    continue
                name = ev.object["metadata"]["name"]
                if ev.type == "DELETED":
                    self.objects.pop(name, None)
                else:
                    self.objects[name] = ev.object
                self.log.append((ev.type, ev.object))
                self.on_event(ev.type, ev.object, self.objects)

    async def stop(self) -> None:
        assert self._task is not None
        await asyncio.sleep(0.3)  # let the stream deliver what the store already holds
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


def ready(pod: Obj) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or ())


def live(pod: Obj) -> bool:
    return not pod["metadata"].get("deletionTimestamp")


def image(obj: Obj) -> str:
    spec = obj["spec"]["template"]["spec"] if "template" in obj["spec"] else obj["spec"]
    return spec["containers"][0]["image"]


async def live_images(client: Any, selector: str, ns: str = "default") -> list[str]:
    items = (await client.list(PODS, namespace=ns, label_selector=selector))["items"]
    return sorted(image(p) for p in items if live(p))


# ---------------------------------------------------------------- Deployment


async def test_deployment_rollout_history_undo_scale(workloads: WorkloadEnv) -> None:
    env, client = workloads, workloads.client
    await env.kubectl("create", "deployment", "web", "--image=nginx", "--replicas=3")
    out = await env.kubectl("rollout", "status", "deployment/web", "--timeout=60s")
    assert 'deployment "web" successfully rolled out' in out
    assert await live_images(client, "app=web") == ["nginx"] * 3

    # Kubernetes' rounding: maxSurge rounds up, maxUnavailable down (25% of 3 → 1 and 0).
    d = await client.get(DEPLOYMENTS, "web", namespace="default")
    ru = d["spec"]["strategy"]["rollingUpdate"]
    assert (ru["maxSurge"], ru["maxUnavailable"]) == ("25%", "25%")
    replicas = 3
    surge, unavailable = math.ceil(replicas * 0.25), math.floor(replicas * 0.25)
    min_available, max_total = replicas - unavailable, replicas + surge

    available: list[int] = []
    rs_totals: list[int] = []

    def on_pod(_t: str, _o: Obj, pods: dict[str, Obj]) -> None:
        available.append(sum(1 for p in pods.values() if live(p) and ready(p)))

    def on_rs(_t: str, _o: Obj, rss: dict[str, Obj]) -> None:
        rs_totals.append(sum(r["spec"].get("replicas", 0) for r in rss.values()))

    pods_w = Recorder(client, PODS, label_selector="app=web", on_event=on_pod)
    rs_w = Recorder(client, REPLICASETS, label_selector="app=web", on_event=on_rs)
    await pods_w.start()
    await rs_w.start()
    await env.kubectl("set", "image", "deployment/web", "nginx=nginx:1.27")
    out = await env.kubectl("rollout", "status", "deployment/web", "--timeout=60s")
    assert "successfully rolled out" in out
    await eventually(lambda: _eq(live_images(client, "app=web"), ["nginx:1.27"] * 3), timeout=30)
    await pods_w.stop()
    await rs_w.stop()
    assert available and rs_totals
    assert min(available) >= min_available, available
    assert max(rs_totals) <= max_total, rs_totals
    created = {o["metadata"]["name"] for t, o in pods_w.log if t == "ADDED"}
    assert len(created) == 3  # one new pod per replica, none wasted
    retired = {o["metadata"]["name"] for t, o in pods_w.log
               if o["metadata"].get("deletionTimestamp") and image(o) == "nginx"}
    assert len(retired) == 3 and not retired & created  # the watch saw the whole rollout

    hist = await env.kubectl("rollout", "history", "deployment/web")
    revisions = [ln.split()[0] for ln in hist.splitlines()[2:] if ln.strip()]
    assert revisions == ["1", "2"], hist
    one = await env.kubectl("rollout", "history", "deployment/web", "--revision=1")
    assert "nginx" in one and "nginx:1.27" not in one

    await env.kubectl("rollout", "undo", "deployment/web")
    await env.kubectl("rollout", "status", "deployment/web", "--timeout=60s")
    d = await client.get(DEPLOYMENTS, "web", namespace="default")
    assert image(d) == "nginx"
    await eventually(lambda: _eq(live_images(client, "app=web"), ["nginx"] * 3), timeout=30)
    assert len((await client.list(REPLICASETS, namespace="default"))["items"]) == 2

    await env.kubectl("scale", "deployment/web", "--replicas=0")
    await eventually(lambda: _eq(live_images(client, "app=web"), []), timeout=30)
    await eventually(lambda: _status_replicas(client, 0), timeout=30)
    await env.kubectl("scale", "deployment/web", "--replicas=3")
    await env.kubectl("rollout", "status", "deployment/web", "--timeout=60s")
    await eventually(lambda: _eq(live_images(client, "app=web"), ["nginx"] * 3), timeout=30)
    d = await client.get(DEPLOYMENTS, "web", namespace="default")
    assert d["status"]["availableReplicas"] == 3 and d["status"]["readyReplicas"] == 3

    desc = await env.kubectl("describe", "deploy", "web")
    assert "ScalingReplicaSet" in desc and "Scaled up replica set web-" in desc
    rs_name = next(r["metadata"]["name"] for r in
                   (await client.list(REPLICASETS, namespace="default"))["items"]
                   if image(r) == "nginx")
    desc = await env.kubectl("describe", "rs", rs_name)
    assert "SuccessfulCreate" in desc and f"Created pod: {rs_name}-" in desc


async def _eq(coro: Any, want: Any) -> bool:
    return (await coro) == want


async def _status_replicas(client: Any, n: int) -> bool:
    s = (await client.get(DEPLOYMENTS, "web", namespace="default")).get("status") or {}
    return s.get("replicas", 0) == n and s.get("availableReplicas", 0) == n


# ---------------------------------------------------------------- StatefulSet

STS = {"apiVersion": "apps/v1", "kind": "StatefulSet",
       "metadata": {"name": "web", "namespace": "default"},
       "spec": {"replicas": 3, "serviceName": "web", "selector": {"matchLabels": {"app": "sts"}},
                "template": {"metadata": {"labels": {"app": "sts"}},
                             "spec": {"containers": [{"name": "c", "image": "nginx"}]}},
                "volumeClaimTemplates": [{"metadata": {"name": "www"}, "spec": {
                    "accessModes": ["ReadWriteOnce"],
                    "resources": {"requests": {"storage": "1Gi"}}}}]}}


async def test_statefulset_comes_up_in_order_with_a_pvc_each(workloads: WorkloadEnv) -> None:
    env, client = workloads, workloads.client
    pods_w = Recorder(client, PODS, label_selector="app=sts")
    await pods_w.start()
    await env.kubectl("apply", "-f", "-", input=json.dumps(STS))
    out = await env.kubectl("rollout", "status", "statefulset/web", "--timeout=60s")
    assert "roll out complete: 3 new pods have been updated" in out
    await pods_w.stop()

    first_added: dict[str, int] = {}
    first_ready: dict[str, int] = {}
    for i, (t, pod) in enumerate(pods_w.log):
        name = pod["metadata"]["name"]
        if t == "ADDED":
            first_added.setdefault(name, i)
        if ready(pod):
            first_ready.setdefault(name, i)
    assert sorted(first_added) == ["web-0", "web-1", "web-2"]
    assert first_added["web-0"] < first_ready["web-0"] < first_added["web-1"] \
        < first_ready["web-1"] < first_added["web-2"] < first_ready["web-2"], pods_w.log

    pvcs = {p["metadata"]["name"]: p for p in (await client.list(PVCS, namespace="default"))["items"]}
    assert sorted(pvcs) == ["www-web-0", "www-web-1", "www-web-2"]
    for i in range(3):
        pod = await client.get(PODS, f"web-{i}", namespace="default")
        vols = {v["name"]: v for v in pod["spec"]["volumes"]}
        assert vols["www"]["persistentVolumeClaim"]["claimName"] == f"www-web-{i}"
        assert pod["spec"]["hostname"] == f"web-{i}"
        assert pvcs[f"www-web-{i}"]["metadata"]["labels"]["app"] == "sts"


# ---------------------------------------------------------------- Jobs

def job(name: str, command: list[str], **spec: Any) -> str:
    return json.dumps({"apiVersion": "batch/v1", "kind": "Job",
                       "metadata": {"name": name, "namespace": "default"},
                       "spec": {**spec, "template": {"spec": {
                           "restartPolicy": "Never",
                           "containers": [{"name": "c", "image": "busybox",
                                           "command": command}]}}}})


def condition(obj: Obj, type_: str) -> Obj | None:
    return next((c for c in (obj.get("status") or {}).get("conditions") or ()
                 if c["type"] == type_ and c["status"] == "True"), None)


async def test_job_completions_parallelism_and_backoff_limit(workloads: WorkloadEnv) -> None:
    env, client = workloads, workloads.client
    ctrl = env.mgr.get(JobController)
    assert ctrl is not None
    ctrl.backoff_base = 0.05  # the pod re-creation backoff: 10 s in Kubernetes

    active: list[int] = []

    def on_pod(_t: str, _o: Obj, pods: dict[str, Obj]) -> None:
        active.append(sum(1 for p in pods.values() if live(p) and (p.get("status") or {}).get(
            "phase") not in ("Succeeded", "Failed")))

    pods_w = Recorder(client, PODS, label_selector="job-name=five", on_event=on_pod)
    await pods_w.start()
    await env.kubectl("apply", "-f", "-", input=job("five", ["sleep", "1"],
                                                     completions=5, parallelism=2))
    await env.kubectl("wait", "--for=condition=Complete", "job/five", "--timeout=60s")
    await pods_w.stop()
    j = await client.get(JOBS, "five", namespace="default")
    assert j["status"]["succeeded"] == 5 and not j["status"].get("failed")
    assert max(active) == 2, active
    added = {o["metadata"]["name"] for t, o in pods_w.log if t == "ADDED"}
    assert len(added) == 5
    desc = await env.kubectl("describe", "job", "five")
    assert "Completed" in desc and "Job completed" in desc and "SuccessfulCreate" in desc

    await env.kubectl("apply", "-f", "-", input=job("fails", ["sh", "-c", "exit 1"],
                                                     backoffLimit=2))
    await env.kubectl("wait", "--for=condition=Failed", "job/fails", "--timeout=60s")
    j = await client.get(JOBS, "fails", namespace="default")
    failed = condition(j, "Failed")
    assert failed is not None and failed["reason"] == "BackoffLimitExceeded"
    assert j["status"]["failed"] == 3 and not j["status"].get("succeeded")
    pods = (await client.list(PODS, namespace="default", label_selector="job-name=fails"))["items"]
    assert len(pods) == 3 and all(p["status"]["phase"] == "Failed" for p in pods)
    desc = await env.kubectl("describe", "job", "fails")
    assert "BackoffLimitExceeded" in desc


# ---------------------------------------------------------------- CronJob

async def test_cronjob_creates_a_job_within_a_minute(workloads: WorkloadEnv) -> None:
    env, client = workloads, workloads.client
    # Move the controllers' clock to one second before the next minute: the schedule is then
    # due in one second of real time, and the controller must wake up for it on its own.
    now = datetime.now(timezone.utc)
    minute = now.replace(second=0, microsecond=0) + timedelta(minutes=1)
    env.clock.offset = minute - now - timedelta(seconds=1)
    await env.kubectl("create", "cronjob", "tick", "--image=busybox",
                      "--schedule=*/1 * * * *", "--", "true")
    cj = await client.get(CRONJOBS, "tick", namespace="default")

    async def a_job() -> Obj | None:
        jobs = (await client.list(JOBS, namespace="default"))["items"]
        assert len(jobs) <= 1, jobs
        return jobs[0] if jobs else None
    j = await eventually(a_job, timeout=20)
    assert j["metadata"]["ownerReferences"][0]["uid"] == cj["metadata"]["uid"]
    # named after the scheduled time in minutes since the epoch, as Kubernetes names them
    want = datetime.fromisoformat(
        j["metadata"]["annotations"]["batch.kubernetes.io/cronjob-scheduled-timestamp"]
        .replace("Z", "+00:00"))
    assert want.second == 0 and want >= minute - timedelta(minutes=1)
    assert j["metadata"]["name"] == f"tick-{int(want.timestamp()) // 60}"
    await env.kubectl("wait", "--for=condition=Complete", f"job/{j['metadata']['name']}",
                      "--timeout=60s")

    async def seen() -> bool:
        st = (await client.get(CRONJOBS, "tick", namespace="default")).get("status") or {}
        assert "lastSuccessfulTime" in st and "lastScheduleTime" in st and not st.get("active"), st
        return True
    await eventually(seen, timeout=30)
    desc = await env.kubectl("describe", "cronjob", "tick")
    assert "SuccessfulCreate" in desc and "SawCompletedJob" in desc


# ---------------------------------------------------------------- cascading deletion

async def test_delete_deployment_cascades_or_orphans(workloads: WorkloadEnv) -> None:
    env, client = workloads, workloads.client
    await env.kubectl("create", "deployment", "web", "--image=nginx", "--replicas=2")
    await env.kubectl("rollout", "status", "deployment/web", "--timeout=60s")
    await env.kubectl("delete", "deploy", "web")

    async def nothing_left() -> bool:
        rss = (await client.list(REPLICASETS, namespace="default"))["items"]
        pods = (await client.list(PODS, namespace="default", label_selector="app=web"))["items"]
        return not rss and not pods
    await eventually(nothing_left, timeout=30)

    await env.kubectl("create", "deployment", "web", "--image=nginx", "--replicas=2")
    await env.kubectl("rollout", "status", "deployment/web", "--timeout=60s")
    (rs,) = (await client.list(REPLICASETS, namespace="default"))["items"]
    pods = (await client.list(PODS, namespace="default", label_selector="app=web"))["items"]
    await env.kubectl("delete", "deploy", "web", "--cascade=orphan")

    async def orphaned() -> bool:
        try:
            await client.get(DEPLOYMENTS, "web", namespace="default")
            return False
        except errors.NotFound:
            pass
        got = await client.get(REPLICASETS, rs["metadata"]["name"], namespace="default")
        return got if not got["metadata"].get("ownerReferences") else False
    kept = await eventually(orphaned, timeout=30)
    assert kept["metadata"]["uid"] == rs["metadata"]["uid"]
    await asyncio.sleep(0.5)  # give a wrong cascade time to show
    now = (await client.list(PODS, namespace="default", label_selector="app=web"))["items"]
    assert sorted(p["metadata"]["uid"] for p in now if live(p)) == \
        sorted(p["metadata"]["uid"] for p in pods)
    assert all(p["metadata"]["ownerReferences"][0]["uid"] == rs["metadata"]["uid"] for p in now)
    assert (await client.get(REPLICASETS, rs["metadata"]["name"], namespace="default"))[
        "spec"]["replicas"] == 2


# ---------------------------------------------------------------- namespace deletion

def many_objects(ns: str) -> str:
    docs: list[Obj] = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}]
    for i in range(100):
        docs.append({"apiVersion": "v1", "kind": "ConfigMap",
                     "metadata": {"name": f"cm-{i}", "namespace": ns}, "data": {"i": str(i)}})
    for i in range(50):
        docs.append({"apiVersion": "v1", "kind": "Secret",
                     "metadata": {"name": f"secret-{i}", "namespace": ns},
                     "stringData": {"i": str(i)}})
    for i in range(45):
        docs.append({"apiVersion": "v1", "kind": "Service",
                     "metadata": {"name": f"svc-{i}", "namespace": ns},
                     "spec": {"selector": {"app": "big"}, "ports": [{"port": 80}]}})
    docs.append({"apiVersion": "apps/v1", "kind": "Deployment",
                 "metadata": {"name": "big", "namespace": ns},
                 "spec": {"replicas": 4, "selector": {"matchLabels": {"app": "big"}},
                          "template": {"metadata": {"labels": {"app": "big"}},
                                       "spec": {"containers": [{"name": "c",
                                                                "image": "nginx"}]}}}})
    return yaml.safe_dump_all(docs)


async def test_delete_namespace_with_200_objects(workloads: WorkloadEnv) -> None:
    env, client = workloads, workloads.client
    await env.kubectl("create", "-f", "-", input=many_objects("big"))
    await env.kubectl("rollout", "status", "deployment/big", "-n", "big", "--timeout=60s")

    resources = [r.resource for r in await client.discover()
                 if r.resource.namespaced and "list" in r.verbs and "delete" in r.verbs]

    async def count() -> dict[str, int]:
        out = {}
        for res in resources:
            n = len((await client.list(res, namespace="big"))["items"])
            if n:
                out[res.plural] = n
        return out
    before = await count()
    assert before["configmaps"] >= 100 and before["secrets"] == 50
    assert before["services"] == 45 and before["pods"] == 4 and before["replicasets"] == 1
    assert sum(before.values()) >= 200, before

    await env.kubectl("delete", "ns", "big", "--timeout=90s")
    try:
        await client.get(NAMESPACES, "big")
        raise AssertionError("namespace big still exists")
    except errors.NotFound:
        pass
    assert await count() == {}
