"""Issue 14's metrics and autoscaling acceptance, through ``vkube create`` and the real kubectl:
``kubectl top`` shows the simulated usage of a Deployment's pods (the virtual cluster reads the
embedded host's metrics for the host pods), and an HPA targeting 50 % CPU scales the Deployment
up when the usage rises and down once its stabilization window passed."""

from __future__ import annotations

import json

from tests.cli.conftest import User, cleanup, eventually, make_user
from tests.conftest import kubectl

DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: default}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: app
        image: nginx
        resources: {requests: {cpu: 100m, memory: 64Mi}}
"""

HPA = """
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: web, namespace: default}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  minReplicas: 1
  maxReplicas: 3
  metrics:
  - type: Resource
    resource: {name: cpu, target: {type: Utilization, averageUtilization: 50}}
  behavior:
    scaleDown: {stabilizationWindowSeconds: 20}
"""


def get(u: User, *args: str) -> dict:
    return json.loads(u.kubectl("get", *args, "-o", "json").stdout)


def running_pods(u: User, n: int) -> list[dict]:
    pods = [p for p in get(u, "pods", "-l", "app=web")["items"] if not p["metadata"].get("deletionTimestamp")]
    assert len(pods) == n and all(p["status"].get("phase") == "Running" for p in pods), \
        [(p["metadata"]["name"], p["status"].get("phase")) for p in pods]
    return pods


def test_top_and_hpa_scale_a_deployment_up_and_down(shared_host, tmp_path):
    u = make_user(tmp_path / "u")
    try:
        u.vkube("create", "auto", "--host-kubeconfig", str(shared_host))
        u.kubectl("apply", "-f", "-", input=DEPLOYMENT)
        pod = eventually(lambda: running_pods(u, 1), timeout=120, delay=0.5)[0]
        name = pod["metadata"]["name"]

        # without an annotation a container uses 10 % of its request
        def top_shows_default() -> None:
            out = u.kubectl("top", "pods", "--no-headers", check=False)
            assert out.returncode == 0, out.stderr
            assert out.stdout.split()[:3] == [name, "10m", "6Mi"], out.stdout
        eventually(top_shows_default, timeout=60, delay=0.5)
        per_container = u.kubectl("top", "pods", name, "--containers", "--no-headers").stdout.split()
        assert per_container[:4] == [name, "app", "10m", "6Mi"]
        nodes = u.kubectl("top", "nodes", "--no-headers").stdout.splitlines()
        assert nodes and all(len(line.split()) >= 5 for line in nodes), nodes

        u.kubectl("apply", "-f", "-", input=HPA)

        def hpa_active() -> dict:
            hpa = get(u, "hpa", "web")
            conds = {c["type"]: c for c in hpa.get("status", {}).get("conditions", [])}
            assert conds.get("ScalingActive", {}).get("status") == "True", hpa.get("status")
            assert conds["ScalingActive"]["reason"] == "ValidMetricFound"
            return hpa
        hpa = eventually(hpa_active, timeout=90, delay=1)
        assert hpa["status"]["currentMetrics"][0]["resource"]["current"]["averageUtilization"] == 10
        assert "cpu: 10%/50%" in u.kubectl("get", "hpa", "web").stdout

        # usage rises to 200 % of the request: 4x the target, so the HPA asks for the maximum
        u.kubectl("annotate", "pods", "-l", "app=web", "vkube.io/cpu-usage=200m", "--overwrite")

        def rescaled(message: str) -> None:
            def check() -> None:
                events = u.kubectl("get", "events", "--field-selector",
                                   "involvedObject.name=web,reason=SuccessfulRescale",
                                   "-o", "jsonpath={.items[*].message}").stdout
                assert message in events, events
            eventually(check, timeout=30, delay=0.5)

        def scaled_to(n: int):
            def check() -> None:
                assert get(u, "deployment", "web")["spec"]["replicas"] == n
            return check
        # the virtual cluster's metrics are the host's, for the translated host pod
        def host_reports_the_usage() -> None:
            rows = kubectl(shared_host, "top", "pods", "-n", "vkube-auto", "--no-headers").stdout.splitlines()
            assert [f"{name}-x-default-x-auto", "200m"] in [r.split()[:2] for r in rows], rows
        eventually(host_reports_the_usage, timeout=60, delay=0.5)
        eventually(scaled_to(3), timeout=120, delay=1)

        def status_says_3() -> None:  # the status write follows the scale write
            hpa = get(u, "hpa", "web")
            conds = {c["type"]: c for c in hpa["status"]["conditions"]}
            assert hpa["status"]["desiredReplicas"] == 3 and hpa["status"].get("lastScaleTime"), hpa["status"]
            assert conds["AbleToScale"]["status"] == "True"
            assert conds["ScalingLimited"]["reason"] in ("TooManyReplicas", "DesiredWithinRange")
        eventually(status_says_3, timeout=60, delay=0.5)
        rescaled("New size: 3; reason: cpu resource utilization (percentage of request) above target")
        eventually(lambda: running_pods(u, 3), timeout=120, delay=0.5)

        # usage falls: after the 20 s down-stabilization window the HPA goes back to minReplicas
        u.kubectl("annotate", "pods", "-l", "app=web", "vkube.io/cpu-usage=5m", "--overwrite")
        eventually(scaled_to(1), timeout=150, delay=1)
        rescaled("New size: 1; reason: All metrics below target")
    finally:
        cleanup(u)
