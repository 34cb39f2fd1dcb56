"""The Node authorizer and NodeRestriction through the real kubectl with kubelet client
certificates (``system:node:NAME`` in ``system:nodes``): a kubelet reads only what the pods bound
to its node reference, and writes only its own node, lease and pods — kube-apiserver's
``--authorization-mode=Node,RBAC`` with ``--enable-admission-plugins=NodeRestriction``."""

from __future__ import annotations

import asyncio
import json

import yaml

from tests.conftest import kubectl

SETUP = """
apiVersion: v1
kind: Secret
metadata: {name: s1}
stringData: {k: v}
---
apiVersion: v1
kind: Secret
metadata: {name: other}
stringData: {k: v}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: c1}
data: {k: v}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data}
spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}, volumeName: pv1}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: runner}
---
apiVersion: v1
kind: Pod
metadata: {name: p1}
spec:
  nodeName: n1
  serviceAccountName: runner
  automountServiceAccountToken: false
  containers:
  - name: c
    image: nginx
    env: [{name: X, valueFrom: {configMapKeyRef: {name: c1, key: k}}}]
  volumes:
  - {name: s, secret: {secretName: s1}}
  - {name: d, persistentVolumeClaim: {claimName: data}}
---
apiVersion: v1
kind: Pod
metadata: {name: p2}
spec:
  nodeName: n2
  automountServiceAccountToken: false
  containers: [{name: c, image: nginx}]
"""


async def test_kubelets_read_only_what_their_pods_need(control_plane, tmp_path):
    cp = control_plane
    await asyncio.to_thread(cp.kubectl, "apply", "-f", "-", input=SETUP)
    for n in ("n1", "n2"):
        await asyncio.to_thread(cp.kubectl, "apply", "-f", "-", input=json.dumps(
            {"apiVersion": "v1", "kind": "Node", "metadata": {"name": n}}))

    def node(name: str):
        path = tmp_path / f"{name}.kubeconfig"
        if not path.exists():
            path.write_text(yaml.safe_dump(cp.cp.pki.kubeconfig(
                cp.url, context=name, user=f"system:node:{name}", groups=("system:nodes",))))

        async def run(*args: str, input: str | None = None):
            return await asyncio.to_thread(kubectl, path, *args, check=False, input=input)
        return run

    n1, n2 = node("n1"), node("n2")

    async def ok(run, *args: str, input: str | None = None) -> str:
        for _ in range(100):  # the graph follows the store's watch: a moment after a write
            out = await run(*args, input=input)
            if out.returncode == 0:
                return out.stdout
            await asyncio.sleep(0.05)
        raise AssertionError(f"{args}: {out.stderr}")

    async def denied(run, *args: str, input: str | None = None) -> str:
        out = await run(*args, input=input)
        assert out.returncode != 0, (args, out.stdout)
        assert "(Forbidden)" in out.stderr or "forbidden" in out.stderr, out.stderr
        return out.stderr

    # n1 reads what p1 references, through every reference kind
    await ok(n1, "get", "secret", "s1")
    await ok(n1, "get", "configmap", "c1")
    await ok(n1, "get", "pvc", "data")
    # …and nothing else; n2 none of it, with upstream's reason
    err = await denied(n2, "get", "secret", "s1")
    assert ('secrets "s1" is forbidden: User "system:node:n2" cannot get resource "secrets" in API group "" '
            "in the namespace \"default\": no relationship found between node 'n2' and this object") in err
    await denied(n1, "get", "secret", "other")
    await denied(n1, "get", "secrets")  # no list of every secret
    # a pod created unbound (the graph skips it unread) and bound later gains its edges
    await asyncio.to_thread(cp.kubectl, "apply", "-f", "-", input=json.dumps(
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p3"},
         "spec": {"automountServiceAccountToken": False, "containers": [{"name": "c", "image": "nginx"}],
                  "volumes": [{"name": "s", "secret": {"secretName": "other"}}]}}))
    await denied(n1, "get", "secret", "other")
    await asyncio.to_thread(cp.kubectl, "create", "--raw", "/api/v1/namespaces/default/pods/p3/binding",
                            "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "Binding",
                                                          "metadata": {"name": "p3"},
                                                          "target": {"kind": "Node", "name": "n1"}}))
    await ok(n1, "get", "secret", "other")
    await asyncio.to_thread(cp.kubectl, "delete", "pod", "p3", "--grace-period=0", "--force")
    for _ in range(100):  # its edges go with it
        if (await n1("get", "secret", "other")).returncode != 0:
            break
        await asyncio.sleep(0.05)
    await denied(n1, "get", "secret", "other")
    await denied(n2, "get", "configmap", "c1")
    # a token only for a service account of its own pods
    await ok(n1, "create", "token", "runner")
    await denied(n2, "create", "token", "runner")
    # reads every kubelet needs stay open (NodeRules)
    await ok(n2, "get", "pods", "-A")
    await ok(n2, "get", "nodes")
    await ok(n2, "get", "services", "-A")

    # NodeRestriction: only its own node, lease and pods
    await ok(n1, "label", "node", "n1", "disk=ssd")
    err = await denied(n1, "label", "node", "n2", "disk=ssd")
    assert 'node "n1" is not allowed to modify node "n2"' in err
    err = await denied(n1, "label", "node", "n1", "node-restriction.kubernetes.io/pool=a")
    assert "is not allowed to modify labels: node-restriction.kubernetes.io/pool" in err
    # status as a kubelet writes it (a PATCH of pods/status; `kubectl patch` would GET
    # pods/status first, which NodeRules do not grant — upstream alike)
    from vkube.api import errors
    from vkube.client import Client
    from vkube.client.resources import PODS

    async with Client(cp.url, ssl=cp.cp.client_ssl("system:node:n1", ("system:nodes",))) as kubelet1:
        await kubelet1.patch(PODS, "p1", {"status": {"phase": "Running"}}, namespace="default",
                             subresource="status")
        try:
            await kubelet1.patch(PODS, "p2", {"status": {"phase": "Running"}}, namespace="default",
                                 subresource="status")
            raise AssertionError("n1 changed the status of a pod on n2")
        except errors.Forbidden as exc:
            assert 'node "n1" can only update pod status for pods with spec.nodeName set to itself' in str(exc)
    err = await denied(n1, "label", "pod", "p1", "x=y")
    assert "(Forbidden)" in err
    err = await denied(n1, "run", "sneaky", "--image=nginx", "--overrides",
                       json.dumps({"spec": {"nodeName": "n1"}}))
    assert 'can only create mirror pods' in err
    await denied(n1, "delete", "pod", "p2", "--wait=false")
    lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
             "metadata": {"name": "n1", "namespace": "kube-node-lease"}, "spec": {"holderIdentity": "n1"}}
    await ok(n1, "apply", "-f", "-", input=json.dumps(lease))
    err = await denied(n2, "apply", "-f", "-", input=json.dumps(lease))
    # the pod moves away from n1 (deleted): n1 loses its access
    await asyncio.to_thread(cp.kubectl, "delete", "pod", "p1", "--wait=false", "--grace-period=0", "--force")
    for _ in range(100):
        out = await n1("get", "secret", "s1")
        if out.returncode != 0:
            break
        await asyncio.sleep(0.05)
    assert out.returncode != 0 and "no relationship found" in out.stderr
