"""Bad input never yields a 500: random mutations of valid objects, sent to every verb of the
common kinds, must each get a 2xx or a 4xx Status (bounded: a fixed seed and count)."""

from __future__ import annotations

import copy
import random
from typing import Any

import aiohttp
import orjson

SEEDS = {
    "/api/v1/namespaces/default/pods": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labels": {"a": "b"}},
                                        "spec": {"containers": [{"name": "c", "image": "nginx", "ports": [{"containerPort": 80}],
                                                                 "env": [{"name": "A", "value": "1"}],
                                                                 "resources": {"limits": {"cpu": "1"}}}],
                                                 "volumes": [{"name": "v", "emptyDir": {}}]}},
    "/api/v1/namespaces/default/services": {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
                                            "spec": {"selector": {"a": "b"}, "ports": [{"port": 80, "targetPort": "http"}]}},
    "/apis/apps/v1/namespaces/default/deployments": {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"a": "b"}},
                 "strategy": {"rollingUpdate": {"maxSurge": 1}},
                 "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "x"}]}}}},
    "/apis/batch/v1/namespaces/default/jobs": {
        "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"},
        "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "x"}]}}}},
    "/apis/batch/v1/namespaces/default/cronjobs": {
        "apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "cj"},
        "spec": {"schedule": "*/5 * * * *", "jobTemplate": {"spec": {"template": {"spec": {
            "restartPolicy": "OnFailure", "containers": [{"name": "c", "image": "x"}]}}}}}},
    "/api/v1/namespaces/default/configmaps": {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"}, "data": {"k": "v"}},
    "/api/v1/namespaces": {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ns"}},
    "/apis/apps/v1/namespaces/default/statefulsets": {
        "apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "ss"},
        "spec": {"serviceName": "ss", "selector": {"matchLabels": {"a": "b"}},
                 "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "x"}]}},
                 "volumeClaimTemplates": [{"metadata": {"name": "d"}, "spec": {"accessModes": ["ReadWriteOnce"],
                                                                               "resources": {"requests": {"storage": "1Gi"}}}}]}},
}
WEIRD: list[Any] = [None, "", "x" * 300, -1, 0, 2**63, 1.5, True, [], {}, [1, "a"], {"$patch": "delete"},
                    {"a": {"b": None}}, "Bad_Name", "-", "a/b", "10.0.0.1", "*/1 * * * *", "1Gi", "100m"]


def paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(node, dict):
        for k, v in node.items():
            out += paths(v, prefix + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += paths(v, prefix + (i,))
    return out


def mutate(obj: Any, rng: random.Random) -> Any:
    obj = copy.deepcopy(obj)
    for _ in range(rng.randint(1, 3)):
        target = rng.choice(paths(obj)[1:])
        parent = obj
        for p in target[:-1]:
            parent = parent[p]
        choice = rng.random()
        if choice < 0.15 and isinstance(parent, dict):
            del parent[target[-1]]
        elif choice < 0.25 and isinstance(parent, dict):
            parent[rng.choice(["extra", "$retainKeys", "status", "apiVersion"])] = copy.deepcopy(rng.choice(WEIRD))
        else:
            parent[target[-1]] = copy.deepcopy(rng.choice(WEIRD))
    return obj


async def test_random_bad_input_never_500(control_plane):
    rng = random.Random(20261124)
    seen: dict[int, int] = {}
    async with control_plane.session() as s:
        async def send(method: str, url: str, body: Any, ctype: str = "application/json") -> None:
            async with s.request(method, control_plane.url + url, data=orjson.dumps(body),
                                 headers={"Content-Type": ctype}) as r:
                text = await r.read()
                seen[r.status] = seen.get(r.status, 0) + 1
                assert r.status < 500, (method, url, orjson.dumps(body)[:400], text[:400])
                if r.status >= 400:
                    st = orjson.loads(text)
                    assert st["kind"] == "Status" and st["code"] == r.status and st["message"]

        for url, seed in SEEDS.items():
            await send("POST", url, seed)
            name = seed["metadata"]["name"]
            for _ in range(40):
                bad = mutate(seed, rng)
                await send("POST", url, bad)
                await send("PUT", f"{url}/{name}", bad)
                await send("PATCH", f"{url}/{name}", bad, "application/merge-patch+json")
                await send("PATCH", f"{url}/{name}", bad, "application/strategic-merge-patch+json")
                await send("PATCH", f"{url}/{name}?fieldManager=fuzz&force=true", bad, "application/apply-patch+yaml")
    assert seen.get(201, 0) + seen.get(200, 0) > 0 and sum(v for k, v in seen.items() if 400 <= k < 500) > 100


def _is_watch(params: dict) -> bool:
    """kube-apiserver takes any ``watch`` value but "", "0" and "false" as a watch."""
    return params.get("watch", "").lower() not in ("", "0", "false")


async def test_random_query_parameters_and_subresources_never_500(control_plane):
    rng = random.Random(7)
    junk = ["", "0", "-1", "abc", "99999999999999999999", "a=b", "a in (", "!x", "x,y", "metadata.name=a",
            "spec.nodeName!=n", "Exact", "NotOlderThan", "true", "All", "Strict", "%00", "a" * 300]
    keys = ["limit", "continue", "labelSelector", "fieldSelector", "resourceVersion", "resourceVersionMatch",
            "timeoutSeconds", "watch", "allowWatchBookmarks", "sendInitialEvents", "dryRun", "fieldValidation",
            "gracePeriodSeconds", "propagationPolicy", "fieldManager", "force"]
    urls = ["/api/v1/namespaces/default/pods", "/api/v1/pods", "/apis/apps/v1/namespaces/default/deployments",
            "/api/v1/namespaces", "/api/v1/nodes"]
    subs = ["status", "scale", "binding", "eviction", "log", "finalize", "token", "exec", "nope"]
    async with control_plane.session() as s:
        async def send(method: str, url: str, params: dict, body: Any = None) -> None:
            data = orjson.dumps(body) if body is not None else None
            async with s.request(method, control_plane.url + url, params=params, data=data,
                                 headers={"Content-Type": "application/json"},
                                 timeout=aiohttp.ClientTimeout(total=10)) as r:
                text = await r.read() if not _is_watch(params) else b""
                assert r.status < 500, (method, url, params, text[:300])

        await send("POST", "/apis/apps/v1/namespaces/default/deployments", {}, SEEDS["/apis/apps/v1/namespaces/default/deployments"])
        await send("POST", "/api/v1/namespaces/default/pods", {}, SEEDS["/api/v1/namespaces/default/pods"])
        for _ in range(150):
            params = {k: rng.choice(junk) for k in rng.sample(keys, rng.randint(1, 4))}
            if _is_watch(params):
                params["timeoutSeconds"] = "1"
            await send(rng.choice(["GET", "DELETE"]), rng.choice(urls), params)
        for _ in range(60):
            base = rng.choice(["/api/v1/namespaces/default/pods/p", "/apis/apps/v1/namespaces/default/deployments/d",
                               "/api/v1/namespaces/default", "/api/v1/namespaces/default/serviceaccounts/default"])
            body = mutate(rng.choice(list(SEEDS.values())), rng)
            await send(rng.choice(["GET", "PUT", "POST", "PATCH"]), f"{base}/{rng.choice(subs)}", {}, body)


def random_json_patch(seed: Any, rng: random.Random) -> Any:
    """A JSON patch whose ops, paths and values are drawn from the seed's own paths and WEIRD."""
    ops = []
    targets = ["/" + "/".join(str(p) for p in path) for path in paths(seed)]
    for _ in range(rng.randint(1, 4)):
        op: dict[str, Any] = {"op": rng.choice(["add", "remove", "replace", "move", "copy", "test", "bogus", None, 3])}
        if rng.random() < 0.9:
            op["path"] = rng.choice(targets + ["", "/", "/metadata/labels/x~1y", "/spec/containers/-", "/no/such", 7])
        if rng.random() < 0.5:
            op["from"] = rng.choice(targets + [None, "/nope"])
        if rng.random() < 0.8:
            op["value"] = copy.deepcopy(rng.choice(WEIRD))
        ops.append(op)
    return ops if rng.random() < 0.95 else rng.choice(WEIRD)


def random_smp(seed: Any, rng: random.Random) -> Any:
    """A strategic merge patch with directives in random places and of random shapes."""
    patch = mutate(seed, rng)
    directives = ["$patch", "$retainKeys", "$setElementOrder/containers", "$deleteFromPrimitiveList/finalizers",
                  "$setElementOrder/ports", "$setElementOrder/env"]
    for _ in range(rng.randint(1, 3)):
        target = rng.choice(paths(patch))
        node = patch
        for p in target:
            node = node[p]
        if isinstance(node, dict):
            node[rng.choice(directives)] = copy.deepcopy(rng.choice(WEIRD + [["a"], [{"name": "c"}], "replace", "merge"]))
        elif isinstance(node, list):
            node.append(copy.deepcopy(rng.choice([{"$patch": "delete"}, {"$patch": "delete", "name": "c"},
                                                  {"$patch": "replace"}, {"$retainKeys": ["x"]}, [1], None])))
    return patch


async def test_random_patches_never_500(control_plane):
    """JSON patches and strategic merge patches of every shape, to every seed kind: with no
    blanket except left around patching, any crash in the patch code would show as a 500."""
    rng = random.Random(20261129)
    codes: dict[int, int] = {}
    async with control_plane.session() as s:
        for url, seed in SEEDS.items():
            async with s.post(control_plane.url + url, data=orjson.dumps(seed),
                              headers={"Content-Type": "application/json"}) as r:
                assert r.status in (201, 409), await r.text()
            name = seed["metadata"]["name"]
            for _ in range(40):
                for ctype, body in [("application/json-patch+json", random_json_patch(seed, rng)),
                                    ("application/strategic-merge-patch+json", random_smp(seed, rng))]:
                    async with s.patch(f"{control_plane.url}{url}/{name}", data=orjson.dumps(body),
                                       headers={"Content-Type": ctype}) as r:
                        text = await r.read()
                        codes[r.status] = codes.get(r.status, 0) + 1
                        assert r.status < 500, (url, ctype, orjson.dumps(body)[:400], text[:400])
    assert sum(v for k, v in codes.items() if k < 300) > 0 and sum(v for k, v in codes.items() if k >= 400) > 100
