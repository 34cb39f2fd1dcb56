"""What checking a snapshot file costs before a restore, and the restore's one transaction.

Builds a snapshot file of N pods (a realistic pod: two containers, probes, volumes, status),
then prints one JSON line: CPU seconds to read it (line checks only), to read and check every
object (``vkube.cluster.snapcheck``: shape, types, the API's create validation, grants), and
wall seconds to restore it into a SQLite store that already holds N other pods (so every key
is a create or a delete, all in one transaction).

    .venv/bin/python bench/bench_snapshot_restore.py [N]
"""

from __future__ import annotations

import asyncio
import base64
import copy
import hashlib
import json
import sys
import tempfile
import time
from pathlib import Path

from vkube.cluster.snapcheck import check_for
from vkube.store import open_store
from vkube.store.snapshot import restore, verify

_POD = {
    "apiVersion": "v1", "kind": "Pod",
    "metadata": {"name": "", "namespace": "default", "uid": "5d0c1f9e-1111-4a4a-9b9b-000000000000",
                 "creationTimestamp": "2026-01-01T00:00:00Z", "labels": {"app": "web", "tier": "fe"},
                 "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-1",
                                      "uid": "5d0c1f9e-2222-4a4a-9b9b-000000000000",
                                      "controller": True, "blockOwnerDeletion": True}]},
    "spec": {"containers": [
        {"name": n, "image": "nginx:1.27", "ports": [{"containerPort": 80, "protocol": "TCP"}],
         "env": [{"name": "A", "value": "b"}], "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}},
         "readinessProbe": {"httpGet": {"path": "/", "port": 80}, "periodSeconds": 5},
         "volumeMounts": [{"name": "data", "mountPath": "/data"}]} for n in ("web", "sidecar")],
        "volumes": [{"name": "data", "emptyDir": {}}], "restartPolicy": "Always",
        "nodeName": "node-1", "tolerations": [{"key": "k", "operator": "Exists"}]},
    "status": {"phase": "Running", "podIP": "10.0.0.1", "startTime": "2026-01-01T00:00:01Z",
               "conditions": [{"type": "Ready", "status": "True",
                               "lastTransitionTime": "2026-01-01T00:00:02Z"}]},
}


def _file(path: Path, n: int, prefix: str) -> None:
    """N pods and their Namespace (a restore refuses an object whose Namespace it lacks)."""
    ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {
        "name": "default", "uid": f"5d0c1f9e-ffff-4a4a-9b9b-{prefix.encode().hex():0>12}",
        "creationTimestamp": "2026-01-01T00:00:00Z"}}
    body = [json.dumps({"k": "/core/namespaces/default", "v": base64.b64encode(
        json.dumps(ns).encode()).decode(), "c": n + 1, "m": n + 1}).encode() + b"\n"]
    for i in range(n):
        pod = copy.deepcopy(_POD)
        pod["metadata"]["name"] = f"{prefix}{i:06d}"
        pod["metadata"]["uid"] = f"5d0c1f9e-{i:04x}-4a4a-9b9b-{prefix.encode().hex():0>12}"
        body.append(json.dumps({"k": f"/core/pods/default/{prefix}{i:06d}", "v": base64.b64encode(
            json.dumps(pod).encode()).decode(), "c": i + 1, "m": i + 1}).encode() + b"\n")
    header = {"format": "vkube-store-snapshot", "version": 2, "revision": n + 1, "source": "bench",
              "values": "transformed"}
    end = {"end": True, "keys": n + 1, "sha256": hashlib.sha256(b"".join(body)).hexdigest()}
    path.write_bytes(json.dumps(header).encode() + b"\n" + b"".join(body)
                     + json.dumps(end).encode() + b"\n")


async def _restore(db: Path, old: Path, new: Path) -> float:
    store = open_store(f"sqlite://{db}")
    await store.start()
    try:
        await restore(store, old)  # an empty store: the keys keep their revisions
        began = time.perf_counter()
        await restore(store, new, check=check_for(str(new), None))
        return time.perf_counter() - began
    finally:
        await store.close()


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    with tempfile.TemporaryDirectory() as tmp:
        old, new = Path(tmp) / "old.jsonl", Path(tmp) / "new.jsonl"
        _file(old, n, "a")
        _file(new, n, "b")
        began = time.process_time()
        verify(new)
        read = time.process_time() - began
        check = check_for(str(new), None)
        began = time.process_time()
        verify(new, check)
        checked = time.process_time() - began
        wall = asyncio.run(_restore(Path(tmp) / "s.db", old, new))
        size = new.stat().st_size
    print(json.dumps({"bench": "snapshot_restore", "pods": n, "read_cpu_s": round(read, 3),
                      "read_and_check_cpu_s": round(checked, 3),
                      "check_ms_per_object": round((checked - read) / n * 1000, 3),
                      "restore_one_txn_wall_s": round(wall, 2),
                      "bytes": size}))


if __name__ == "__main__":
    main()
