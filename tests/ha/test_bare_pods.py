"""Issue 17: nothing lost on pause/resume — a bare pod (no owner, so no controller would make
it again) comes back after ``vkube resume`` as its user left it, through the CLI and kubectl."""

from __future__ import annotations

import json

from tests.cli.conftest import User, eventually
from tests.conftest import kubectl

BARE = """
apiVersion: v1
kind: Pod
metadata: {name: solo, namespace: default, labels: {keep: me}, annotations: {note: hand-made}}
spec:
  containers: [{name: main, image: busybox, command: [sleep, "3600"],
                volumeMounts: [{name: data, mountPath: /data}]}]
  volumes: [{name: data, persistentVolumeClaim: {claimName: data}}]
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data, namespace: default}
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 1Gi}}
---
apiVersion: v1
kind: Pod
metadata: {name: done, namespace: default}
spec:
  restartPolicy: Never
  containers: [{name: main, image: busybox, command: ["true"]}]
"""


def host_pods(u: User, ns: str) -> list[dict]:
    out = kubectl(u.home / "host" / "kubeconfig", "get", "pods", "-n", ns, "-o", "json").stdout
    return json.loads(out)["items"]


WEB = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: default}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: main, image: busybox, command: [sleep, "3600"]}]
"""


def ready(pod: dict) -> bool:
    return {c["type"]: c["status"] for c in pod["status"].get("conditions") or []}.get("Ready") == "True"


def hosted_by_uid(u: User, ns: str) -> dict[str, dict]:
    """The host pods that run, by the uid of the virtual pod each was made for."""
    return {p["metadata"].get("annotations", {}).get("vkube.io/object-uid"): p for p in host_pods(u, ns)
            if p["status"].get("phase") == "Running"}


def assert_honest(pods: list[dict], hosted: dict[str, dict]) -> None:
    """Read the virtual side first, then the host: a virtual pod can say it runs only after its
    host pod does, so one that claims to run without a running host pod is stale. One that
    does not run shows what a kubelet shows of a pod it has not started (again) yet."""
    for pod in pods:
        status = pod["status"]
        if status.get("phase") in ("Succeeded", "Failed"):
            continue
        host = hosted.get(pod["metadata"]["uid"])
        if host is not None:
            if status.get("podIP"):
                assert status["podIP"] == host["status"]["podIP"], (status, host["status"])
            continue
        name = pod["metadata"]["name"]
        assert status.get("phase") == "Pending" and "podIP" not in status, (name, status)
        assert not ready(pod), (name, status)
        for c in status.get("containerStatuses") or []:
            assert list(c["state"]) == ["waiting"] and not c["ready"], (name, status)


def test_bare_pod_survives_pause_resume(user: User):
    """A bare pod is the same pod after pause/resume (uid, spec, node), shown not running from
    the first request after ``vkube resume`` until its host pod runs again, then Running with
    the host's address and one restart more, as after a node reboot; so are a Deployment's pods,
    never shown Running before they run again, so ``kubectl rollout status`` waits for them."""
    user.vkube("create", "bare", timeout=180)
    ns = "vkube-bare"
    user.kubectl("apply", "-f", "-", input=BARE + "---" + WEB)

    def running() -> dict:
        pod = json.loads(user.kubectl("get", "pod", "solo", "-o", "json").stdout)
        assert pod["status"].get("phase") == "Running" and ready(pod), pod["status"]
        host = hosted_by_uid(user, ns).get(pod["metadata"]["uid"])
        assert host is not None
        return pod

    def finished() -> None:
        pod = json.loads(user.kubectl("get", "pod", "done", "-o", "json").stdout)
        assert pod["status"].get("phase") == "Succeeded", pod["status"]

    before = eventually(running, timeout=90)
    eventually(finished, timeout=90)
    user.kubectl("rollout", "status", "deployment/web", "--timeout=120s", timeout=150)
    [cs] = before["status"]["containerStatuses"]
    assert cs["restartCount"] == 0
    volume = json.loads(user.kubectl("get", "pvc", "data", "-o", "json").stdout)["spec"]["volumeName"]
    web_before = {p["metadata"]["uid"]: p["metadata"]["name"] for p in json.loads(user.kubectl(
        "get", "pods", "-l", "app=web", "-o", "json").stdout)["items"]}
    assert len(web_before) == 2

    user.vkube("pause", "bare")
    assert host_pods(user, ns) == []
    # the tenant's data stays: its claim and the volume the host provisioned for it
    kubectl(user.home / "host" / "kubeconfig", "get", "pv", volume)
    user.vkube("resume", "bare", timeout=180)
    # from the first request after resume, no pod claims to run on a host pod that does not,
    # and the Deployment counts no more pods available than run (read first: they only grow)
    deployment = json.loads(user.kubectl("get", "deployment", "web", "-o", "json").stdout)
    first = json.loads(user.kubectl("get", "pods", "-o", "json").stdout)["items"]
    hosted = hosted_by_uid(user, ns)
    assert_honest(first, hosted)
    assert {p["metadata"]["name"] for p in first} >= {"solo", "done"}
    running_web = [p for p in first if p["metadata"].get("labels", {}).get("app") == "web"
                   and ready(p) and p["metadata"]["uid"] in hosted]
    assert deployment["status"].get("availableReplicas", 0) <= len(running_web), deployment["status"]

    # the Deployment is complete only once its pods run on the host again (its status is not
    # stale): the same pods, as after a node's reboot, each with one restart more
    user.kubectl("rollout", "status", "deployment/web", "--timeout=120s", timeout=150)

    def web_back() -> list[dict]:
        pods = json.loads(user.kubectl("get", "pods", "-l", "app=web", "-o", "json").stdout)["items"]
        hosted = hosted_by_uid(user, ns)
        assert len([p for p in pods if ready(p) and p["metadata"]["uid"] in hosted]) == 2, \
            ([(p["metadata"]["name"], p["status"]) for p in pods], list(hosted))
        return pods
    pods = eventually(web_back, timeout=60)
    assert {p["metadata"]["uid"]: p["metadata"]["name"] for p in pods} == web_before
    assert [c["restartCount"] for p in pods for c in p["status"]["containerStatuses"]] == [1, 1]

    # the bare pod: not running until its host pod runs, observed at each poll
    def back() -> dict:
        pod = json.loads(user.kubectl("get", "pod", "solo", "-o", "json").stdout)
        assert_honest([pod], hosted_by_uid(user, ns))
        return running()

    after = eventually(back, timeout=120)
    assert after["metadata"]["uid"] == before["metadata"]["uid"]
    assert after["metadata"]["labels"] == {"keep": "me"}
    assert after["metadata"]["annotations"]["note"] == "hand-made"
    assert after["spec"]["containers"] == before["spec"]["containers"]
    assert after["spec"]["nodeName"] == before["spec"]["nodeName"]
    host = hosted_by_uid(user, ns)[after["metadata"]["uid"]]
    assert host["spec"]["nodeName"] == after["spec"]["nodeName"]
    assert after["status"]["podIP"] == host["status"]["podIP"]
    # its container ran again: one restart, the run before the pause its last state
    [cs] = after["status"]["containerStatuses"]
    assert cs["restartCount"] == 1, cs
    assert cs["lastState"]["terminated"]["reason"] == "Unknown", cs
    table = user.kubectl("get", "pod", "solo", "--no-headers").stdout.split()
    assert table[1:4] == ["1/1", "Running", "1"], table
    claim = json.loads(user.kubectl("get", "pvc", "data", "-o", "json").stdout)
    assert claim["spec"]["volumeName"] == volume and claim["status"]["phase"] == "Bound"
    hpv = json.loads(kubectl(user.home / "host" / "kubeconfig", "get", "pv", volume, "-o",
                             "json").stdout)
    assert hpv["status"]["phase"] == "Bound", hpv["status"]
    # a finished bare pod stays as it finished: kept, not run again
    done = json.loads(user.kubectl("get", "pod", "done", "-o", "json").stdout)
    assert done["status"]["phase"] == "Succeeded"

    # a host pod deleted under a running syncer still takes its bare pod with it (as before)
    kubectl(user.home / "host" / "kubeconfig", "delete", "pod", "-n", ns, host["metadata"]["name"],
            "--wait=false")

    def gone() -> None:
        out = user.kubectl("get", "pods", "-o", "jsonpath={.items[*].metadata.name}").stdout.split()
        assert "solo" not in out, out
    eventually(gone, timeout=90)
