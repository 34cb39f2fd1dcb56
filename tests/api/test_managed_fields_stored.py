"""managedFields of a stored object are updated without decoding the other managers' sets
(``ssa._update_stored`` with ``fieldset.raw_difference``): the result must be exactly what
decoding every entry, taking the difference and encoding again gives, for any sequence of
writes by several managers (spec, metadata, status and subresources, list items added and
removed, fields moving between managers)."""

from __future__ import annotations

import copy
import random

import pytest

from vkube.api import fieldset as fs
from vkube.api import ssa
from vkube.api.kinds import Registry
from vkube.api.openapi import OpenAPI

MANAGERS = [("kubectl", ""), ("vkube-syncer", ""), ("kubelet", "status"), ("scheduler", "binding"),
            ("kube-controller-manager", "")]


@pytest.fixture(scope="module")
def schema() -> dict:
    return OpenAPI(Registry()).schema_for("", "v1", "Pod")


def pod() -> dict:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "namespace": "default", "labels": {"app": "a"}},
            "spec": {"containers": [{"name": "c", "image": "nginx", "ports": [{"containerPort": 80}]}]}}


def mutate(rng: random.Random, obj: dict) -> dict:
    new = copy.deepcopy(obj)
    meta, spec = new["metadata"], new["spec"]
    status = new.setdefault("status", {})
    for _ in range(rng.randint(1, 3)):
        n = rng.randint(0, 9)
        if n == 0:
            meta.setdefault("labels", {})[f"l{rng.randint(0, 4)}"] = str(rng.randint(0, 3))
        elif n == 1 and meta.get("labels"):
            meta["labels"].pop(rng.choice(sorted(meta["labels"])))
        elif n == 2:
            meta.setdefault("annotations", {})[f"a{rng.randint(0, 3)}"] = "x" * rng.randint(0, 3)
        elif n == 3:
            spec["containers"].append({"name": f"c{rng.randint(0, 5)}", "image": "busybox"})
            spec["containers"] = list({c["name"]: c for c in spec["containers"]}.values())
        elif n == 4 and len(spec["containers"]) > 1:
            spec["containers"].pop(rng.randrange(len(spec["containers"])))
        elif n == 5:
            rng.choice(spec["containers"])["image"] = f"nginx:{rng.randint(1, 9)}"
        elif n == 6:
            status["phase"] = rng.choice(["Pending", "Running", "Succeeded"])
            status["podIP"] = f"10.0.0.{rng.randint(1, 9)}"
            status["podIPs"] = [{"ip": status["podIP"]}]
        elif n == 7:
            conds = {c["type"]: c for c in status.get("conditions") or []}
            t = rng.choice(["Ready", "PodScheduled", "Initialized"])
            conds[t] = {"type": t, "status": rng.choice(["True", "False"])}
            if rng.random() < 0.3:
                conds.pop(rng.choice(sorted(conds)))
            status["conditions"] = list(conds.values())
        elif n == 8:
            spec["nodeName"] = f"n{rng.randint(0, 2)}"
        elif n == 9 and status:
            status.pop(rng.choice(sorted(status)))
    return new


def write(old: dict, new: dict, manager: tuple[str, str], now: str, schema: dict, eager: bool,
          monkeypatch: pytest.MonkeyPatch) -> dict:
    out = copy.deepcopy(new)
    with monkeypatch.context() as m:
        if eager:
            m.setattr(ssa, "_update_stored", lambda *a, **k: False)
        ssa.update_managed_fields(copy.deepcopy(old), out, manager=manager[0], operation="Update",
                                  api_version="v1", now=now, schema=schema, subresource=manager[1],
                                  cache=fs.FieldSetCache())
    return out


@pytest.mark.parametrize("seed", range(6))
def test_stored_entries_update_as_decoding_them_all_would(schema: dict, seed: int,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(seed)
    obj = pod()
    ssa.update_managed_fields(None, obj, manager="kubectl", operation="Update", api_version="v1",
                              now="2026-01-01T00:00:00Z", schema=schema)
    owners: set[str] = set()
    for step in range(60):
        new = mutate(rng, obj)
        new["metadata"]["managedFields"] = copy.deepcopy(obj["metadata"].get("managedFields"))
        manager = rng.choice(MANAGERS)
        now = f"2026-01-01T00:{step // 60:02d}:{step % 60:02d}Z"
        fast = write(obj, new, manager, now, schema, False, monkeypatch)
        slow = write(obj, new, manager, now, schema, True, monkeypatch)
        assert fast == slow, f"seed {seed} step {step} by {manager}"
        owners |= {e["manager"] for e in fast["metadata"].get("managedFields") or []}
        obj = fast
    assert len(owners) >= 4  # fields moved between several managers on the way


def test_raw_difference_returns_the_same_set_when_nothing_is_removed() -> None:
    raw = {"f:metadata": {"f:labels": {"f:app": {}}}, "f:spec": {"f:containers": {'k:{"name":"c"}': {
        ".": {}, "f:image": {}, "f:name": {}}}}}
    assert fs.raw_difference(raw, {"f:status": {"f:phase": {fs.DOT: {}}}}) is raw
    out = fs.raw_difference(raw, {"f:spec": {"f:containers": {'k:{"name":"c"}': {"f:image": {fs.DOT: {}}}}}})
    assert out == {"f:metadata": {"f:labels": {"f:app": {}}}, "f:spec": {"f:containers": {'k:{"name":"c"}': {
        ".": {}, "f:name": {}}}}}
    assert raw["f:spec"]["f:containers"]['k:{"name":"c"}'] == {".": {}, "f:image": {}, "f:name": {}}  # untouched
    gone = fs.raw_difference(raw, fs.from_fields_v1(raw))
    assert gone == {}
    with pytest.raises(ValueError):
        fs.raw_difference({"f:spec": "x"}, {"f:spec": {fs.DOT: {}}})
