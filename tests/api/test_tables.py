"""Tables: what kubectl prints, computed relative to a given now."""

from datetime import datetime, timedelta, timezone

import pytest

from vkube.api.builtin import builtin_registry
from vkube.api.printers_core import pod_summary
from vkube.api.tables import human_duration, to_table

REG = builtin_registry()
NOW = datetime(2024, 6, 1, 12, 0, 0, tzinfo=timezone.utc)


def ts(ago: timedelta) -> str:
    return (NOW - ago).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.mark.parametrize("seconds,text", [
    (-5, "<invalid>"), (-1, "0s"), (5, "5s"), (119, "119s"), (182, "3m2s"), (300, "5m"), (600, "10m"),
    (3 * 3600 + 120, "3h2m"), (5 * 3600, "5h"), (10 * 3600, "10h"), (51 * 3600, "2d3h"), (45 * 86400, "45d"),
    (800 * 86400, "2y70d"), (3000 * 86400, "8y"),
])
def test_human_duration(seconds, text):
    assert human_duration(seconds) == text


def cs(name="c", *, ready=False, restarts=0, state=None, last=None):
    status = {"name": name, "ready": ready, "restartCount": restarts, "state": state or {}}
    if last:
        status["lastState"] = {"terminated": {"exitCode": 1, "finishedAt": last}}
    return status


def pod(statuses=(), init=(), init_statuses=(), phase="Running", **extra):
    spec = {"containers": [{"name": s["name"]} for s in statuses] or [{"name": "c"}],
            "initContainers": [{"name": n} for n in init]}
    return {"metadata": {"name": "p", "creationTimestamp": ts(timedelta(minutes=3, seconds=2)), **extra},
            "spec": spec, "status": {"phase": phase, "containerStatuses": list(statuses),
                                     "initContainerStatuses": list(init_statuses)}}


@pytest.mark.parametrize("obj,ready,status", [
    (pod([cs(ready=True, state={"running": {}})]), "1/1", "Running"),
    (pod([cs(state={"waiting": {"reason": "ContainerCreating"}})], phase="Pending"), "0/1", "ContainerCreating"),
    (pod([cs(state={"waiting": {"reason": "CrashLoopBackOff"}})]), "0/1", "CrashLoopBackOff"),
    (pod([cs(state={"terminated": {"exitCode": 0, "reason": "Completed"}})], phase="Succeeded"), "0/1", "Completed"),
    (pod([cs(state={"terminated": {"exitCode": 1, "reason": "Error"}})], phase="Failed"), "0/1", "Error"),
    (pod([cs(state={"terminated": {"exitCode": 137}})], phase="Failed"), "0/1", "ExitCode:137"),
    (pod([cs(state={"waiting": {"reason": "PodInitializing"}})], init=["i"],
         init_statuses=[cs("i", state={"running": {}})], phase="Pending"), "0/1", "Init:0/1"),
    (pod([cs()], init=["i"], init_statuses=[cs("i", state={"waiting": {"reason": "ImagePullBackOff"}})],
         phase="Pending"), "0/1", "Init:ImagePullBackOff"),
    (pod([cs(ready=True, state={"running": {}})], deletionTimestamp=ts(timedelta(seconds=1))), "1/1", "Terminating"),
    (pod(phase="Pending"), "0/1", "Pending"),
])
def test_pod_status(obj, ready, status):
    assert pod_summary(obj)[:2] == (ready, status)


def test_pod_row_and_restarts():
    p = pod([cs(ready=True, restarts=2, state={"running": {}}, last=ts(timedelta(minutes=5)))])
    p["status"]["podIP"] = "10.1.0.5"
    p["spec"]["nodeName"] = "node-1"
    table = to_table(REG.get("", "v1", "pods"), [p], now=NOW)
    assert [c["name"] for c in table["columnDefinitions"]] == [
        "Name", "Ready", "Status", "Restarts", "Age", "IP", "Node", "Nominated Node", "Readiness Gates"]
    assert [c["priority"] for c in table["columnDefinitions"]] == [0, 0, 0, 0, 0, 1, 1, 1, 1]
    assert table["rows"][0]["cells"] == ["p", "1/1", "Running", "2 (5m ago)", "3m2s", "10.1.0.5", "node-1", "<none>", "<none>"]
    assert table["rows"][0]["object"] == {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": p["metadata"]}
    assert table["kind"] == "Table" and table["apiVersion"] == "meta.k8s.io/v1"
    narrow = to_table(REG.get("", "v1", "pods"), [p], now=NOW, wide=False, include_object="None")
    assert len(narrow["rows"][0]["cells"]) == 5 and "object" not in narrow["rows"][0]
    assert to_table(REG.get("", "v1", "pods"), [p], now=NOW, include_object="Object")["rows"][0]["object"] is p


def cells(plural, obj, group=""):
    return to_table(REG.get(group, "v1", plural), [obj], now=NOW)["rows"][0]["cells"]


def test_workload_tables():
    age = ts(timedelta(days=2, hours=3))
    dep = {"metadata": {"name": "web", "creationTimestamp": age},
           "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                    "template": {"spec": {"containers": [{"name": "a", "image": "nginx"}, {"name": "b", "image": "busybox"}]}}},
           "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}}
    assert cells("deployments", dep, "apps") == ["web", "2/3", 3, 2, "2d3h", "a,b", "nginx,busybox", "app=web"]
    job = {"metadata": {"name": "pi", "creationTimestamp": age}, "spec": {"completions": 1},
           "status": {"succeeded": 1, "startTime": ts(timedelta(minutes=10)), "completionTime": ts(timedelta(minutes=9, seconds=30)),
                      "conditions": [{"type": "Complete", "status": "True"}]}}
    assert cells("jobs", job, "batch")[:4] == ["pi", "Complete", "1/1", "30s"]
    cj = {"metadata": {"name": "c", "creationTimestamp": age}, "spec": {"schedule": "*/1 * * * *", "suspend": False},
          "status": {"lastScheduleTime": ts(timedelta(seconds=40))}}
    assert cells("cronjobs", cj, "batch")[:7] == ["c", "*/1 * * * *", "<none>", "False", 0, "40s", "2d3h"]


def test_service_and_node_tables():
    svc = {"metadata": {"name": "s", "creationTimestamp": ts(timedelta(hours=1))},
           "spec": {"type": "NodePort", "clusterIP": "10.96.0.5", "selector": {"app": "web"},
                    "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}]}}
    assert cells("services", svc) == ["s", "NodePort", "10.96.0.5", "<none>", "80:30080/TCP,53/UDP", "60m", "app=web"]
    lb = {"metadata": {"name": "l"}, "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]}}
    assert cells("services", lb)[3] == "<pending>"
    node = {"metadata": {"name": "n1", "labels": {"node-role.kubernetes.io/control-plane": ""}},
            "spec": {"unschedulable": True},
            "status": {"conditions": [{"type": "Ready", "status": "True"}], "nodeInfo": {"kubeletVersion": "v1.37.0"},
                       "addresses": [{"type": "InternalIP", "address": "10.0.0.1"}]}}
    assert cells("nodes", node)[:6] == ["n1", "Ready,SchedulingDisabled", "control-plane", "<unknown>", "v1.37.0", "10.0.0.1"]


def test_event_table_has_no_leading_name():
    ev = {"metadata": {"name": "p.1"}, "type": "Normal", "reason": "Scheduled", "message": " assigned ",
          "involvedObject": {"kind": "Pod", "name": "p"}, "lastTimestamp": ts(timedelta(seconds=12)),
          "firstTimestamp": ts(timedelta(minutes=1)), "count": 3, "source": {"component": "default-scheduler"}}
    assert cells("events", ev) == ["12s", "Normal", "Scheduled", "pod/p", "", "default-scheduler", "assigned", "60s", 3, "p.1"]


def test_default_columns_are_name_and_age():
    table = to_table(REG.get("coordination.k8s.io", "v1", "leases"), [], now=NOW)
    assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "Holder", "Age"]
    assert table["rows"] == []
    cm = {"metadata": {"name": "c", "creationTimestamp": ts(timedelta(seconds=5))}, "data": {"a": "1"}, "binaryData": {"b": ""}}
    assert cells("configmaps", cm) == ["c", 2, "5s"]
    assert cells("podtemplates", {"metadata": {"name": "t"}, "template": {}}, "") == ["t", "", "", "<none>"]
    assert cells("controllerrevisions", {"metadata": {"name": "r"}}, "apps")[-1] == "<unknown>"
