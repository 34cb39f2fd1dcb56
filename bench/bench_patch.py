"""Patch throughput on a 40-container pod: strategic merge patch and server-side apply against
plain replacement of the same object. Prints one JSON line per figure (ops/s). managedFields
are decoded through a ``FieldSetCache``, as the API server does (one per cluster)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from vkube.api.fieldset import FieldSetCache
from vkube.api.jsonvalue import clone
from vkube.api.kinds import Registry
from vkube.api.openapi import OpenAPI
from vkube.api.smp import apply_strategic_merge_patch
from vkube.api.ssa import server_side_apply, update_managed_fields

NOW = "2026-01-01T00:00:00Z"


def pod(n: int, image: str) -> dict:
    containers = [
        {"name": f"c{i}", "image": f"{image}:{i}", "ports": [{"containerPort": 8000 + i, "protocol": "TCP"}],
         "env": [{"name": f"E{j}", "value": str(j)} for j in range(5)],
         "resources": {"limits": {"cpu": "100m", "memory": "64Mi"}}}
        for i in range(n)
    ]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "big", "namespace": "default", "labels": {"app": "big"}},
            "spec": {"containers": containers, "restartPolicy": "Always"}}


def rate(fn: Callable[[], object], seconds: float = 1.0) -> float:
    fn()
    count, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        fn()
        count += 1
    return count / elapsed


def main() -> None:
    schema = OpenAPI(Registry()).schema_for("", "v1", "Pod")
    base, changed = pod(40, "nginx"), pod(40, "nginx-new")
    smp_patch = {"spec": {"$setElementOrder/containers": [{"name": f"c{i}"} for i in range(40)],
                          "containers": [{"name": f"c{i}", "image": f"nginx-new:{i}"} for i in range(40)]}}
    applied = server_side_apply(None, base, manager="bench", force=False, schema=schema, now=NOW)
    cache = FieldSetCache()

    def replace() -> object:
        return clone(changed)

    def replace_tracked() -> object:
        new = clone(changed)
        update_managed_fields(applied, new, manager="bench-update", operation="Update", api_version="v1", now=NOW, schema=schema,
                              cache=cache)
        return new

    results = {
        "replace": rate(replace),
        "replace+managedFields": rate(replace_tracked),
        "strategic-merge-patch": rate(lambda: apply_strategic_merge_patch(applied, smp_patch, schema)),
        "server-side-apply": rate(lambda: server_side_apply(applied, changed, manager="bench", force=False, schema=schema, now=NOW,
                                                       cache=cache)),
    }
    for name, ops in results.items():
        print(json.dumps({"bench": "patch", "case": name, "containers": 40, "ops_per_s": round(ops, 1)}))


if __name__ == "__main__":
    main()
