"""Issue 17's HA acceptance, through ``vkube serve`` and the real kubectl: three replicas of
one virtual cluster on a shared PostgreSQL or etcd store, synced to an embedded host. The
leader is killed with SIGKILL during a 300-pod Deployment rollout: another replica leads
within 15 s (by the Lease's own times), the rollout completes, the host has exactly 300 pods
and no host object twice. Then every replica stops and starts again: the cluster is as it was.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.cli.conftest import make_user
from tests.conftest import kubectl
from tests.ha.replicas import Replica, Replicas
from vkube.api.meta import parse_time

PODS = int(os.environ.get("VKUBE_HA_PODS", "300"))
ANN_UID = "vkube.io/object-uid"

DEPLOYMENT = f"""
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web, namespace: default}}
spec:
  replicas: {PODS}
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec: {{containers: [{{name: web, image: nginx}}]}}
---
apiVersion: v1
kind: ConfigMap
metadata: {{name: settings, namespace: default}}
data: {{color: blue}}
---
apiVersion: v1
kind: Service
metadata: {{name: web, namespace: default}}
spec: {{selector: {{app: web}}, ports: [{{port: 80}}]}}
"""


def wait(check, *, timeout: float, what: str, delay: float = 0.5):
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = check()
            if result:
                return result
        except AssertionError:
            pass
        assert time.monotonic() < deadline, f"{what}: not within {timeout:.0f} s"
        time.sleep(delay)


def host_items(host: Path, kind: str) -> list[dict]:
    out = kubectl(host, "get", kind, "-n", "vkube-ha", "-o", "json", timeout=120).stdout
    return json.loads(out)["items"]


def assert_no_duplicates(host: Path) -> None:
    for kind in ("pods", "configmaps", "services", "secrets"):
        uids = Counter((o["metadata"].get("annotations") or {}).get(ANN_UID)
                       for o in host_items(host, kind))
        uids.pop(None, None)
        dup = {u: n for u, n in uids.items() if n > 1}
        assert not dup, f"host {kind} duplicated for virtual uids {dup}"


def deployment(r: Replica) -> dict:
    return json.loads(kubectl(r.kubeconfig, "get", "deploy", "web", "-o", "json").stdout)


async def _fresh_db(server: str) -> str:
    import asyncpg
    import uuid

    name = f"vkube_ha_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(server)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return server.rsplit("/", 1)[0] + "/" + name


@pytest.fixture(params=["postgres", "etcd"])
def store_url(request) -> str:
    if request.param == "postgres":
        return asyncio.run(_fresh_db(request.getfixturevalue("postgres_server")))
    return request.getfixturevalue("etcd_server") + f"/ha-{os.getpid()}-{time.monotonic_ns()}"


def server_of(r: Replica) -> str:
    return kubectl(r.kubeconfig, "config", "view", "--minify", "-o",
                   "jsonpath={.clusters[0].cluster.server}").stdout


@pytest.mark.timeout(2400)
def test_leader_killed_during_rollout(tmp_path: Path, store_url: str):
    owner = make_user(tmp_path / "user")
    owner.vkube("host", "start", "--nodes", "4", timeout=120)  # 110 pods a node
    host = owner.home / "host" / "kubeconfig"
    values = tmp_path / "values.yaml"
    values.write_text(f"enableHA: true\nreplicas: 3\ncontrolPlane: {{store: '{store_url}'}}\n")
    reps = Replicas(tmp_path / "replicas", values, host)
    try:
        reps.start_all(3)
        first = reps.members[0]
        leader = wait(lambda: reps.leader(first), timeout=60, what="a leader")
        client = next(r for r in reps.members if r is not leader)  # kubectl's replica
        # every replica serves the same objects: a write on one is read back on the others
        kubectl(client.kubeconfig, "apply", "-f", "-", input=DEPLOYMENT)
        for r in reps.members:
            assert kubectl(r.kubeconfig, "get", "cm", "settings", "-o",
                           "jsonpath={.data.color}").stdout == "blue"
        # the replicas share one CA, one token key and one encryption key (through the store):
        # each replica's kubeconfig works on every other, a token issued by one authenticates
        # on all, and a Secret written (encrypted) through one is read back through all
        for shared in ("ca.crt", "front-proxy-ca.crt"):
            assert len({(r.data_dir / "pki" / shared).read_bytes() for r in reps.members}) == 1
        # the leader's service-account controller makes `default` shortly after start
        wait(lambda: kubectl(client.kubeconfig, "get", "sa", "default", check=False).returncode == 0,
             timeout=60, what="the default service account")
        token = kubectl(client.kubeconfig, "create", "token", "default").stdout.strip()
        kubectl(client.kubeconfig, "create", "secret", "generic", "s", "--from-literal=k=v")
        for r in reps.members:
            for other in reps.members:
                assert kubectl(r.kubeconfig, "--server", server_of(other), "get", "secret", "s", "-o",
                               "jsonpath={.data.k}").stdout == "dg=="
            bare = tmp_path / "bare-kubeconfig"  # no client certificate: the token alone
            bare.write_text("apiVersion: v1\nkind: Config\n")
            whoami = kubectl(bare, "--server", server_of(r), "--certificate-authority",
                             str(r.data_dir / "pki" / "ca.crt"), "--token", token,
                             "auth", "whoami", "-o", "jsonpath={.status.userInfo.username}").stdout
            assert whoami == "system:serviceaccount:default:default"

        # kill -9 the leader mid-rollout (whichever replica leads by then)
        wait(lambda: len(host_items(host, "pods")) >= PODS // 5, timeout=600,
             what="rollout under way on the host", delay=1)
        leader = wait(lambda: reps.leader(client), timeout=60, what="the current leader")
        if leader is client:
            client = next(r for r in reps.members if r is not leader)
        old = reps.lease(client)["spec"]
        assert old["holderIdentity"] == leader.identity
        reps.kill(leader)
        new = wait(lambda: (s := reps.lease(client).get("spec") or {}).get("holderIdentity")
                   not in ("", None, leader.identity) and s, timeout=120, what="a new leader")
        took = (parse_time(new["acquireTime"]) - parse_time(old["renewTime"])).total_seconds()
        print(f"failover: {old['holderIdentity']} -> {new['holderIdentity']} in {took:.1f} s")
        assert took <= 15, f"new leader took the lease {took:.1f} s after the last renewal"
        survivor = next(r for r in reps.members if r.identity == new["holderIdentity"])
        client = next(r for r in reps.members if r.alive() and r is not survivor)

        def rolled_out() -> bool:
            st = deployment(client).get("status") or {}
            return st.get("availableReplicas") == PODS and st.get("updatedReplicas") == PODS

        wait(rolled_out, timeout=1200, what=f"{PODS} available replicas", delay=2)
        wait(lambda: len([p for p in host_items(host, "pods")
                          if p["status"].get("phase") == "Running"]) == PODS,
             timeout=300, what=f"{PODS} running host pods", delay=2)
        print(f"lease transitions: {reps.lease(client)['spec'].get('leaseTransitions')}")
        time.sleep(3)  # anything a second syncer would wrongly do shows up now
        assert len(host_items(host, "pods")) == PODS
        assert_no_duplicates(host)
        vpods = json.loads(kubectl(client.kubeconfig, "get", "pods", "-o", "json",
                                   timeout=120).stdout)["items"]
        assert len(vpods) == PODS
        assert {p["metadata"]["uid"] for p in vpods} == \
            {p["metadata"]["annotations"][ANN_UID] for p in host_items(host, "pods")}

        # stop every replica, start them again: the cluster comes back as it was
        before = {o["metadata"]["uid"] for o in vpods}
        cm_uid = json.loads(kubectl(client.kubeconfig, "get", "cm", "settings", "-o", "json").stdout)[
            "metadata"]["uid"]
        reps.stop_all()
        reps.start_all()
        again = reps.members[1]
        wait(lambda: reps.leader(again), timeout=60, what="a leader after the restart")
        after = json.loads(kubectl(again.kubeconfig, "get", "pods", "-o", "json",
                                   timeout=120).stdout)["items"]
        assert {o["metadata"]["uid"] for o in after} == before
        assert json.loads(kubectl(again.kubeconfig, "get", "cm", "settings", "-o", "json").stdout)[
            "metadata"]["uid"] == cm_uid
        wait(lambda: (deployment(again).get("status") or {}).get("availableReplicas") == PODS,
             timeout=300, what="still available after the restart", delay=2)
        assert len(host_items(host, "pods")) == PODS
        assert_no_duplicates(host)
    finally:
        reps.stop_all()
        owner.vkube("host", "stop", check=False)
