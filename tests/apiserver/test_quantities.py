"""Through kubectl: every quantity reads back in Kubernetes' canonical form, whatever the kind."""

from __future__ import annotations

import asyncio
import json

import yaml

MANIFESTS = """
apiVersion: v1
kind: Pod
metadata: {name: q}
spec:
  containers:
  - name: c
    image: x
    resources:
      requests: {cpu: "0.1", memory: 1.5Gi}
      limits: {cpu: 1000m, memory: 2097152Ki}
  volumes:
  - name: scratch
    emptyDir: {sizeLimit: 1024Mi}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: d}
spec:
  selector: {matchLabels: {app: d}}
  template:
    metadata: {labels: {app: d}}
    spec:
      containers:
      - name: c
        image: x
        resources: {requests: {cpu: 0.25, memory: 1e3}, limits: {memory: "1e3"}}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data}
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 1048576Ki}}
---
apiVersion: v1
kind: ResourceQuota
metadata: {name: rq}
spec:
  hard: {requests.cpu: 2000m, requests.memory: 0.5Gi, pods: 10}
---
apiVersion: v1
kind: LimitRange
metadata: {name: lr}
spec:
  limits:
  - type: Container
    default: {cpu: 500m, memory: 0.25Gi}
    max: {cpu: "4.0"}
"""


async def get(cp, *what: str) -> dict:
    out = await asyncio.to_thread(cp.kubectl, "get", *what, "-o", "json")
    return json.loads(out.stdout)


async def test_quantities_read_back_canonical(control_plane):
    await asyncio.to_thread(control_plane.kubectl, "apply", "-f", "-", input=MANIFESTS)
    pod = await get(control_plane, "pod", "q")
    assert pod["spec"]["containers"][0]["resources"] == {
        "requests": {"cpu": "100m", "memory": "1536Mi"}, "limits": {"cpu": "1", "memory": "2Gi"}}
    assert pod["spec"]["volumes"][0]["emptyDir"] == {"sizeLimit": "1Gi"}
    dep = await get(control_plane, "deployment", "d")
    # unquoted 1e3 is a YAML number (kubectl sends 1000): "1k"; the string "1e3" keeps its
    # exponent form, as resource.Quantity does
    assert dep["spec"]["template"]["spec"]["containers"][0]["resources"] == {
        "requests": {"cpu": "250m", "memory": "1k"}, "limits": {"memory": "1e3"}}
    pvc = await get(control_plane, "pvc", "data")
    assert pvc["spec"]["resources"]["requests"] == {"storage": "1Gi"}
    rq = await get(control_plane, "resourcequota", "rq")
    assert rq["spec"]["hard"] == {"requests.cpu": "2", "requests.memory": "512Mi", "pods": "10"}
    lr = await get(control_plane, "limitrange", "lr")
    assert lr["spec"]["limits"][0]["default"] == {"cpu": "500m", "memory": "256Mi"}
    assert lr["spec"]["limits"][0]["max"] == {"cpu": "4"}
    # re-applying the same manifests writes nothing: kubectl's patch sets "0.1" again, which
    # is the stored "100m" (kubectl says "configured", as it does against Kubernetes)
    await asyncio.to_thread(control_plane.kubectl, "apply", "-f", "-", input=MANIFESTS)
    again = await get(control_plane, "pod", "q")
    assert again["metadata"]["resourceVersion"] == pod["metadata"]["resourceVersion"]
    assert again["spec"]["containers"][0]["resources"] == pod["spec"]["containers"][0]["resources"]


async def test_a_bad_quantity_anywhere_is_invalid_naming_the_field(control_plane):
    bad = yaml.safe_load_all(MANIFESTS)
    lr = [d for d in bad if d["kind"] == "LimitRange"][0]
    lr["metadata"]["name"] = "bad"
    lr["spec"]["limits"][0]["max"] = {"cpu": "4 cores"}
    proc = await asyncio.to_thread(control_plane.kubectl, "create", "-f", "-",
                                   input=json.dumps(lr), check=False)
    assert proc.returncode != 0
    assert 'The LimitRange "bad" is invalid' in proc.stderr
    assert 'is invalid: spec.limits[0].max[cpu]: Invalid value: "4 cores": quantities must match' in proc.stderr
    missing = await asyncio.to_thread(control_plane.kubectl, "get", "limitrange", "bad",
                                      check=False)
    assert missing.returncode != 0
