"""The write path's fast paths (issue 19) give the same answers as the slow ones: the cache of
decoded managedFields (bounded, per cluster, never changed through a shared set), the quick
duplicate-key check, null dropping, error paths built on demand, quantities parsed with
integer arithmetic, and pod update validation without copies."""

from __future__ import annotations

import copy
from fractions import Fraction

import orjson
import pytest
import yaml

from vkube.api import errors
from vkube.api.fieldset import FieldSetCache, from_fields_v1
from vkube.api.fieldvalidation import duplicate_fields, unknown_fields
from vkube.api.kinds import Registry
from vkube.api.meta import new_uid, rfc3339, rfc3339_micro
from vkube.api.openapi import OpenAPI
from vkube.api.quantity import QuantityError, parse_quantity
from vkube.api import fieldset as fs
from vkube.api import ssa
from vkube.api.ssa import server_side_apply, update_managed_fields
from vkube.api.typecheck import TypeIndex, type_errors
from vkube.api.validation_pod import validate_pod_update

T0, T1, T2 = "2026-01-01T00:00:00Z", "2026-01-01T00:01:00Z", "2026-01-01T00:02:00Z"

DEPLOYMENT = yaml.safe_load("""
apiVersion: apps/v1
kind: Deployment
metadata: {name: nginx, labels: {app: nginx}}
spec:
  replicas: 2
  selector: {matchLabels: {app: nginx}}
  template:
    metadata: {labels: {app: nginx}}
    spec:
      containers:
      - {name: nginx, image: "nginx:1.14", ports: [{containerPort: 80}]}
      - {name: side, image: "side:1"}
""")


@pytest.fixture(scope="module")
def schema() -> dict:
    return OpenAPI(Registry()).schema_for("apps", "v1", "Deployment")


@pytest.fixture(scope="module")
def pod_schema() -> dict:
    return OpenAPI(Registry()).schema_for("", "v1", "Pod")


RAW = {"f:metadata": {"f:labels": {".": {}, "f:app": {}}},
       "f:spec": {"f:containers": {'k:{"name":"a"}': {".": {}, "f:image": {}}}}}


# -- FieldSetCache -------------------------------------------------------------------------

def test_cache_decodes_like_the_decoder_and_reuses() -> None:
    cache = FieldSetCache()
    first = cache.decode(RAW)
    assert first == from_fields_v1(RAW)
    assert cache.decode(copy.deepcopy(RAW)) is first  # equal JSON: a lookup
    assert len(cache) == 1


def test_cache_is_bounded_least_recently_used_first() -> None:
    cache = FieldSetCache(size=2)
    a, b, c = ({f"f:{n}": {}} for n in "abc")
    ta = cache.decode(a)
    cache.decode(b)
    assert cache.decode(a) is ta  # a is now the most recent
    cache.decode(c)  # evicts b
    assert len(cache) == 2
    assert cache.decode(a) is ta
    tb = cache.decode(b)
    assert tb == {"f:b": {".": {}}}


def test_cache_refuses_what_the_decoder_refuses_and_keeps_nothing() -> None:
    cache = FieldSetCache()
    for bad in ({"x:bad": {}}, {'k:{"name"': {}}, {".": {"f:a": {}}}, ["f:a"]):
        with pytest.raises(ValueError):
            cache.decode(bad)
    assert len(cache) == 0


def test_caches_are_independent() -> None:
    one, two = FieldSetCache(), FieldSetCache()
    one.decode(RAW)
    assert len(one) == 1 and len(two) == 0
    assert two.decode(RAW) is not one.decode(RAW)


def _csa(schema: dict, cache: FieldSetCache | None) -> dict:
    obj = copy.deepcopy(DEPLOYMENT)
    update_managed_fields(None, obj, manager="csa", operation="Update", api_version="apps/v1", now=T0,
                          schema=schema, cache=cache)
    return obj


def test_forced_apply_does_not_change_a_cached_set(schema: dict) -> None:
    cache = FieldSetCache()
    live = _csa(schema, cache)
    raw = copy.deepcopy(live["metadata"]["managedFields"][0]["fieldsV1"])
    applied = copy.deepcopy(DEPLOYMENT)
    applied["spec"]["replicas"] = 3
    with pytest.raises(errors.Conflict):
        server_side_apply(live, applied, manager="kubectl", force=False, schema=schema, now=T1, cache=cache)
    cached = cache.decode(raw)
    snapshot = copy.deepcopy(cached)
    out = server_side_apply(live, applied, manager="kubectl", force=True, schema=schema, now=T1, cache=cache)
    assert cache.decode(raw) == snapshot == from_fields_v1(raw)  # the forced removal changed a copy
    owners = {e["manager"]: e["fieldsV1"] for e in out["metadata"]["managedFields"]}
    assert "f:replicas" not in owners["csa"]["f:spec"] and "f:replicas" in owners["kubectl"]["f:spec"]


def test_same_results_with_and_without_cache(schema: dict) -> None:
    def run(cache: FieldSetCache | None) -> list[dict]:
        out = []
        obj = _csa(schema, cache)
        for i in range(3):
            applied = copy.deepcopy(DEPLOYMENT)
            applied["spec"]["replicas"] = 3 + i
            del applied["spec"]["template"]["spec"]["containers"][1 if i else 0]["image"]
            obj = server_side_apply(obj, applied, manager="kubectl", force=True, schema=schema, now=T1, cache=cache)
            out.append(copy.deepcopy(obj))
            scaled = copy.deepcopy(obj)
            scaled["spec"]["replicas"] = 10 + i
            update_managed_fields(obj, scaled, manager="hpa", operation="Update", api_version="apps/v1",
                                  now=T2, schema=schema, cache=cache)
            obj = scaled
            out.append(copy.deepcopy(obj))
        return out

    assert run(FieldSetCache()) == run(None)


def test_managed_fields_sent_back_unchanged_or_edited(schema: dict) -> None:
    cache = FieldSetCache()
    old = _csa(schema, cache)
    new = copy.deepcopy(old)  # read-modify-write: the client sends the live entries back
    new["spec"]["replicas"] = 4
    update_managed_fields(old, new, manager="edit", operation="Update", api_version="apps/v1", now=T1,
                          schema=schema, cache=cache)
    managers = [e["manager"] for e in new["metadata"]["managedFields"]]
    assert managers == ["csa", "edit"]
    edited = copy.deepcopy(old)  # the client rewrote the entries: honoured
    edited["metadata"]["managedFields"][0]["manager"] = "renamed"
    update_managed_fields(old, edited, manager="csa", operation="Update", api_version="apps/v1", now=T1,
                          schema=schema, cache=cache)
    assert [e["manager"] for e in edited["metadata"]["managedFields"]] == ["renamed"]


# -- duplicate and unknown fields, type errors ---------------------------------------------

def test_duplicates_found_in_json_at_any_depth() -> None:
    assert duplicate_fields(b'{"a": 1, "b": {"c": [{"d": 1, "d": 2}]}}', "application/json") == [
        'duplicate field "b.c[0].d"']
    assert duplicate_fields(b'{"a": 1, "a": 2}', "application/json") == ['duplicate field "a"']
    assert duplicate_fields(b'{"a": {"x": 1}, "b": {"x": 1}}', "application/json") == []


def test_duplicates_in_a_json_body_sent_as_yaml_keep_line_numbers() -> None:
    raw = b'{\n"a": 1,\n"a": 2\n}'
    assert duplicate_fields(raw, "application/apply-patch+yaml") == ['line 3: key "a" already set in map']
    assert duplicate_fields(b'{"a": 1, "b": 2}', "application/apply-patch+yaml") == []
    assert duplicate_fields(b"{a: 1, a: 2}", "application/yaml") == ['line 1: key "a" already set in map']


def test_bad_json_is_still_a_bad_request() -> None:
    with pytest.raises(errors.BadRequest):
        duplicate_fields(b'{"a": ', "application/json")


def test_unknown_fields_paths(pod_schema: dict) -> None:
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "bogus": 1},
           "spec": {"containers": [{"name": "a", "image": "i"}, {"name": "b", "image": "i", "imagee": "x",
                                                                  "ports": [{"containerPort": 1, "prt": 2}]}]}}
    assert unknown_fields(pod, pod_schema) == ['unknown field "metadata.bogus"',
                                               'unknown field "spec.containers[1].imagee"',
                                               'unknown field "spec.containers[1].ports[0].prt"']


def test_type_error_paths(pod_schema: dict) -> None:
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labels": {"a": 1}},
           "spec": {"containers": [{"name": "a", "image": 5, "ports": [{"containerPort": "80"}, None]}],
                    "nodeName": None}}
    # encoding/json's words for scalar fields (the Go path names a map, not its key)
    go = "json: cannot unmarshal"
    assert type_errors(pod, pod_schema) == [
        ("metadata.labels.a", f"{go} number into Go struct field ObjectMeta.metadata.labels of type string"),
        ("spec.containers[0].image", f"{go} number into Go struct field Container.spec.containers.image of type string"),
        ("spec.containers[0].ports[0].containerPort",
         f"{go} string into Go struct field ContainerPort.spec.containers.ports.containerPort of type int32"),
        ("spec.containers[0].ports[1]", "expected a value, got null"),
    ]
    ok = {"spec": {"containers": [{"name": "a", "image": "i", "resources": {"limits": {"cpu": 1}}}],
                   "terminationGracePeriodSeconds": 3, "hostNetwork": True}}
    assert type_errors(ok, pod_schema) == []
    assert type_errors({"spec": {"hostNetwork": 1}}, pod_schema) == [
        ("spec.hostNetwork", f"{go} number into Go struct field PodSpec.spec.hostNetwork of type bool")]
    assert type_errors({"spec": {"terminationGracePeriodSeconds": True}}, pod_schema) == [
        ("spec.terminationGracePeriodSeconds",
         f"{go} bool into Go struct field PodSpec.spec.terminationGracePeriodSeconds of type int64")]


def test_type_errors_with_a_kept_index_are_the_same(pod_schema: dict, schema: dict) -> None:
    """The index of a kind's field types (kept by the storage across writes) changes no
    answer, and an index of another schema is not used for this one."""
    index = TypeIndex(pod_schema)
    cases = [
        {"metadata": {"name": "p", "labels": {"a": 1}}, "spec": {"containers": [
            {"name": "a", "image": 5, "ports": [{"containerPort": "80"}, None, {"containerPort": 2**31}]},
            {"name": "b", "image": "i", "args": ["x", 1], "readinessProbe": {"httpGet": {"port": 1.5}}}]}},
        {"spec": {"containers": [{"name": "a", "image": "i", "resources": {"limits": {"cpu": 1, "memory": True}}}],
                  "terminationGracePeriodSeconds": True, "hostNetwork": 1, "nodeName": None}},
        {"spec": {"containers": [{"name": "a", "livenessProbe": {"tcpSocket": {"port": "http"}}}],
                  "securityContext": {"runAsUser": 1.0, "fsGroup": 2.5}}},
        {"spec": {"containers": [{"name": "a", "livenessProbe": {"tcpSocket": {"port": [1]}}}]}},
        {"spec": "no", "metadata": {"annotations": {"a": {"b": 1}}}},
    ]
    for obj in cases:
        expected = type_errors(copy.deepcopy(obj), pod_schema)
        assert expected, obj
        assert type_errors(copy.deepcopy(obj), pod_schema, index) == expected, obj
    deployment = {"spec": {"replicas": "two"}}
    assert type_errors(deployment, schema, index) == type_errors(deployment, schema) != []
    # one index per schema in the process, whichever cluster asks (the schemas are shared too)
    from vkube.api.canonical import QuantityIndex

    assert TypeIndex.shared(pod_schema) is TypeIndex.shared(pod_schema) is not TypeIndex.shared(schema)
    assert QuantityIndex.shared(pod_schema) is QuantityIndex.shared(pod_schema)
    assert QuantityIndex.shared(pod_schema) is not TypeIndex.shared(pod_schema)


def test_a_create_s_managed_fields_are_those_of_the_general_path(schema: dict, pod_schema: dict) -> None:
    """A create's one entry is built straight in FieldsV1 form; it is what the trie, stripped
    and encoded, gives, for structs, maps, map lists (one and two keys, repeated keys), set
    lists, atomic lists and maps, empty values and schemaless objects."""
    big = {"apiVersion": "v1", "kind": "Pod", "metadata": {
        "name": "p", "namespace": "d", "uid": "u", "labels": {"a": "b"}, "annotations": {},
        "finalizers": ["x", "y", "x"], "ownerReferences": [{"uid": "1", "name": "o", "kind": "K", "apiVersion": "v1"}]},
        "spec": {"containers": [
            {"name": f"c{i}", "image": "i", "args": ["a", "b"], "ports": [{"containerPort": 80 + i, "protocol": "TCP"},
                                                                          {"containerPort": 80 + i, "protocol": "UDP"}],
             "env": [{"name": "E", "value": "1"}, {"name": "E", "valueFrom": {"fieldRef": {"fieldPath": "x"}}}],
             "resources": {"limits": {"cpu": "1"}}, "securityContext": {}} for i in range(3)],
            "nodeSelector": {"a": "b"}, "volumes": [], "tolerations": [{"key": "k", "operator": "Exists"}]},
        "status": {}}
    samples = [(big, pod_schema), (copy.deepcopy(DEPLOYMENT), schema),
               ({"apiVersion": "x/v1", "kind": "Thing", "metadata": {"name": "t", "labels": {"a": "b"}},
                 "spec": {"list": [1, {"a": 2}], "map": {"k": {"d": [3]}}, "empty": {}}}, None),
               ({"apiVersion": "v1", "kind": "Pod", "metadata": {}}, pod_schema)]
    for obj, sch in samples:
        effective = ssa._effective(sch)
        trie = ssa._strip(ssa._contents(copy.deepcopy(obj), effective))
        raw = ssa._strip_raw(ssa._raw_contents(copy.deepcopy(obj), effective))
        assert orjson.dumps(raw) == orjson.dumps(fs.to_fields_v1(trie)), obj  # in Kubernetes' order too
        made = copy.deepcopy(obj)
        update_managed_fields(None, made, manager="m", operation="Update", api_version="v1", now=T0, schema=sch)
        entries = (made.get("metadata") or {}).get("managedFields")
        if trie:
            assert entries == [{"manager": "m", "operation": "Update", "apiVersion": "v1", "time": T0,
                                "fieldsType": "FieldsV1", "fieldsV1": fs.to_fields_v1(trie)}]
        else:
            assert entries is None


# -- quantities ----------------------------------------------------------------------------

@pytest.mark.parametrize("text", ["0", "100m", "1.5", ".5", "5.", "64Mi", "1.5Gi", "2e3", "1E-3", "-5k",
                                  "+3", "0.1n", "123456789012345678901234567890", "7Ei", "12.25u", "1e21"])
def test_quantities_exact(text: str) -> None:
    import re
    sign, number, suffix = re.match(r"^([+-]?)([\d.]+)(.*)$", text).groups()  # type: ignore[union-attr]
    binary = {"Ki": 1, "Mi": 2, "Gi": 3, "Ti": 4, "Pi": 5, "Ei": 6}
    decimal = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
    want = Fraction(number) * (Fraction(1024) ** binary[suffix] if suffix in binary else
                               Fraction(10) ** (decimal[suffix] if suffix in decimal else int(suffix[1:])))
    assert parse_quantity(text).value == (-want if sign == "-" else want)


@pytest.mark.parametrize("bad", ["", "m", "1..2", "1Ki2", "abc", "1e", "--1"])
def test_quantities_refused(bad: str) -> None:
    with pytest.raises(QuantityError):
        parse_quantity(bad)


# -- pod update ----------------------------------------------------------------------------

def _pod() -> dict:
    return {"spec": {"containers": [{"name": "a", "image": "a:1", "ports": [{"containerPort": 80}]},
                                    {"name": "b", "image": "b:1"}],
                     "initContainers": [{"name": "i", "image": "i:1"}], "restartPolicy": "Always",
                     "tolerations": [{"key": "k", "operator": "Exists"}]}}


def test_pod_update_images_and_mutable_fields_allowed() -> None:
    old, new = _pod(), _pod()
    new["spec"]["containers"][1]["image"] = "b:2"
    new["spec"]["initContainers"][0]["image"] = "i:2"
    new["spec"]["tolerations"].append({"key": "x", "operator": "Exists"})
    new["spec"]["activeDeadlineSeconds"] = 30
    new["spec"]["nodeName"] = "n1"  # set once (binding)
    assert validate_pod_update(new, old) == []
    assert old == _pod()  # nothing changed in place


@pytest.mark.parametrize("change", [
    lambda s: s["containers"][0]["ports"].append({"containerPort": 81}),
    lambda s: s["containers"][1].update(command=["x"]),
    lambda s: s["containers"][1].pop("name"),
    lambda s: s["containers"].append({"name": "c", "image": "c"}),
    lambda s: s.update(restartPolicy="Never"),
    lambda s: s.pop("restartPolicy"),
    lambda s: s.update(initContainers=[]),
    lambda s: s.update(hostNetwork=False),
])
def test_pod_update_other_changes_forbidden(change) -> None:  # type: ignore[no-untyped-def]
    old, new = _pod(), _pod()
    change(new["spec"])
    causes = validate_pod_update(new, old)
    assert [c["field"] for c in causes] == ["spec"] and "pod updates may not change" in causes[0]["message"]


def test_pod_update_node_name_fixed_once_set() -> None:
    old, new = _pod(), _pod()
    old["spec"]["nodeName"] = "n1"
    new["spec"]["nodeName"] = "n2"
    assert [c["field"] for c in validate_pod_update(new, old)] == ["spec"]
    new["spec"]["nodeName"] = "n1"
    assert validate_pod_update(new, old) == []


def test_json_body_roundtrip_has_no_nulls_after_drop() -> None:
    from vkube.apiserver.storage import _drop_nulls

    body = orjson.loads(b'{"a": null, "b": [{"c": null, "d": 1}, null], "e": {"f": {"g": null}}, "s": "null"}')
    _drop_nulls(body)
    assert body == {"b": [{"d": 1}, None], "e": {"f": {}}, "s": "null"}
    clean = {"a": 1, "b": ["x"]}
    _drop_nulls(clean)
    assert clean == {"a": 1, "b": ["x"]}


def test_new_uid_is_a_random_version_4_uuid() -> None:
    import uuid

    uids = {new_uid() for _ in range(2000)}
    assert len(uids) == 2000
    for text in list(uids)[:200]:
        parsed = uuid.UUID(text)
        assert str(parsed) == text and parsed.version == 4 and parsed.variant == uuid.RFC_4122


def test_times_are_written_as_kubernetes_writes_them() -> None:
    import datetime as dt

    plus2 = dt.timezone(dt.timedelta(hours=2))
    assert rfc3339(dt.datetime(2026, 1, 2, 3, 4, 5, 999999, tzinfo=plus2)) == "2026-01-02T01:04:05Z"
    assert rfc3339(dt.datetime(2026, 1, 2, 3, 4, 5)) == "2026-01-02T03:04:05Z"  # naive: UTC
    assert rfc3339(dt.datetime(1, 1, 1, tzinfo=dt.timezone.utc)) == "0001-01-01T00:00:00Z"
    assert rfc3339_micro(dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=plus2)) == "2026-01-02T01:04:05.000000Z"
    assert rfc3339_micro(dt.datetime(2026, 1, 2, 3, 4, 5, 42)) == "2026-01-02T03:04:05.000042Z"


def test_reapplying_the_same_fields_keeps_their_fields_v1(schema: dict) -> None:
    """A re-apply of the same fields (new values) reuses the entry's FieldsV1; it is what
    encoding the set again gives, and only the time moves."""
    first = server_side_apply(None, copy.deepcopy(DEPLOYMENT), manager="kubectl", force=False, schema=schema, now=T0)
    changed = copy.deepcopy(DEPLOYMENT)
    changed["spec"]["replicas"] = 5
    second = server_side_apply(first, changed, manager="kubectl", force=False, schema=schema, now=T1)
    [before], [after] = first["metadata"]["managedFields"], second["metadata"]["managedFields"]
    assert orjson.dumps(after["fieldsV1"]) == orjson.dumps(before["fieldsV1"])
    assert (before["time"], after["time"]) == (T0, T1) and second["spec"]["replicas"] == 5
    fewer = copy.deepcopy(DEPLOYMENT)
    del fewer["spec"]["replicas"]
    third = server_side_apply(second, fewer, manager="kubectl", force=False, schema=schema, now=T2)
    assert "f:replicas" not in third["metadata"]["managedFields"][0]["fieldsV1"]["f:spec"]
