"""Cost of the per-write schema walks (issue 11): quantity canonicalization next to the type
check that already walks the same object, for a Pod and a Deployment with several containers.

Prints JSON lines. Usage: python bench/bench_canonical.py [N]   (default N=2000)
"""

from __future__ import annotations

import copy
import json
import sys
import time

from vkube.api import openapi_convert as conv
from vkube.api.canonical import canonicalize_quantities
from vkube.api.typecheck import type_errors

N = int(sys.argv[1]) if len(sys.argv) > 1 else 2000


def container(i: int) -> dict:
    return {"name": f"c{i}", "image": "nginx", "ports": [{"containerPort": 80 + i}],
            "env": [{"name": f"E{j}", "value": "x"} for j in range(5)],
            "resources": {"requests": {"cpu": "0.1", "memory": "1.5Gi"},
                          "limits": {"cpu": "1000m", "memory": "2097152Ki"}}}


POD = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labels": {"a": "b"}},
       "spec": {"containers": [container(i) for i in range(4)],
                "volumes": [{"name": "v", "emptyDir": {"sizeLimit": "1Gi"}}]}}
DEPLOY = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
          "spec": {"replicas": 3, "selector": {"matchLabels": {"a": "b"}},
                   "template": {"metadata": {"labels": {"a": "b"}}, "spec": POD["spec"]}}}


def per_call_us(fn, obj: dict, schema: dict) -> float:
    objs = [copy.deepcopy(obj) for _ in range(N)]
    t = time.perf_counter()
    for o in objs:
        fn(o, schema)
    return (time.perf_counter() - t) / N * 1e6


POD40 = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p40"},
         "spec": {"containers": [container(i) for i in range(40)]}}

for group, kind, name, obj in (("", "Pod", "Pod", POD), ("apps", "Deployment", "Deployment", DEPLOY),
                               ("", "Pod", "Pod40", POD40)):
    schema = conv.builtin_resolver().definition(conv.gvk_index()[(group, "v1", kind)])
    print(json.dumps({"bench": "canonical", "kind": name, "n": N,
                      "canonicalize_us": round(per_call_us(canonicalize_quantities, obj, schema), 1),
                      "typecheck_us": round(per_call_us(type_errors, obj, schema), 1)}))
