"""Bad input never yields a 500: CRDs and custom resources with values of the wrong type or
shape at random places are refused with a Status (400/422), never crash the server, and the
control plane keeps serving afterwards."""

from __future__ import annotations

import copy
import json
import random
from typing import Any

import aiohttp
import pytest

from tests.crd.fixtures import crontab, crontab_crd
from tests.crd.helpers import install

WEIRD: list[Any] = [None, 0, -1, 1.5, True, "", "x", "CAPS", [], [1], {}, {"a": 1}, "Δ", 10**20]


def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, prefix + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, prefix + (i,))
    return out


def _mutate(doc: Any, rng: random.Random) -> Any:
    doc = copy.deepcopy(doc)
    for _ in range(rng.randint(1, 3)):
        paths = [p for p in _paths(doc) if p]
        path = rng.choice(paths)
        parent = doc
        for part in path[:-1]:
            parent = parent[part]
        if isinstance(parent, dict) and rng.random() < 0.2:
            parent.pop(path[-1], None)
        else:
            parent[path[-1]] = copy.deepcopy(rng.choice(WEIRD))
    return doc


@pytest.mark.parametrize("seed", [13, 7, 2026])
async def test_mutated_crds_and_custom_resources_never_500(control_plane, seed):
    cp = control_plane
    rng = random.Random(seed)
    base = crontab_crd()
    await install(cp, base)
    crds = f"{cp.url}/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
    crs = f"{cp.url}/apis/stable.example.com/v1/namespaces/default/crontabs"
    codes: dict[int, int] = {}
    async with cp.session() as s:
        for i in range(150):
            bad = _mutate(base, rng)
            if isinstance(bad.get("metadata"), dict):
                bad["metadata"]["name"] = f"fuzz{i}.stable.example.com"
            async with s.post(crds, data=json.dumps(bad), headers={"Content-Type": "application/json"}) as r:
                codes[r.status] = codes.get(r.status, 0) + 1
                assert r.status < 500, await r.text()
        for i in range(150):
            bad = _mutate(crontab(f"cr{i}", replicas=2), rng)
            async with s.post(crs, data=json.dumps(bad), headers={"Content-Type": "application/json"}) as r:
                codes[r.status] = codes.get(r.status, 0) + 1
                assert r.status < 500, await r.text()
            async with s.patch(f"{crs}/cr0", data=json.dumps(bad),
                               headers={"Content-Type": "application/merge-patch+json"}) as r:
                assert r.status < 500, await r.text()
        async with s.get(f"{cp.url}/readyz") as r:
            assert r.status == 200
        async with s.get(crs) as r:  # still served, and every stored object reads back
            assert r.status == 200
    assert codes.get(422, 0) > 0 and codes.get(201, 0) > 0
