"""Server-side apply and managedFields, checked against what a Kubernetes API server returns."""

from __future__ import annotations

import copy

import pytest
import yaml

from vkube.api import errors
from vkube.api.kinds import Registry
from vkube.api.openapi import OpenAPI
from vkube.api.ssa import server_side_apply, update_managed_fields

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
      - name: nginx
        image: nginx:1.14
        ports: [{containerPort: 80}]
""")


@pytest.fixture(scope="module")
def schema() -> dict:
    return OpenAPI(Registry()).schema_for("apps", "v1", "Deployment")


def entries(obj: dict) -> dict[tuple[str, str], dict]:
    return {(e["manager"], e["operation"]): e for e in obj["metadata"].get("managedFields", [])}


def test_apply_creates_with_exact_managed_fields(schema: dict) -> None:
    obj = server_side_apply(None, DEPLOYMENT, manager="kubectl", force=False, schema=schema, now=T0)
    assert obj["spec"]["replicas"] == 2
    [entry] = obj["metadata"]["managedFields"]
    assert entry == {
        "manager": "kubectl", "operation": "Apply", "apiVersion": "apps/v1", "time": T0,
        "fieldsType": "FieldsV1",
        "fieldsV1": {
            "f:metadata": {"f:labels": {"f:app": {}}},
            "f:spec": {
                "f:replicas": {}, "f:selector": {},
                "f:template": {
                    "f:metadata": {"f:labels": {"f:app": {}}},
                    "f:spec": {"f:containers": {'k:{"name":"nginx"}': {
                        ".": {}, "f:image": {}, "f:name": {},
                        "f:ports": {'k:{"containerPort":80,"protocol":"TCP"}': {".": {}, "f:containerPort": {}}},
                    }}},
                },
            },
        },
    }
    assert DEPLOYMENT["metadata"].get("managedFields") is None  # input untouched


def test_update_entry_encoding_matches_kubectl_create(schema: dict) -> None:
    obj = copy.deepcopy(DEPLOYMENT)
    update_managed_fields(None, obj, manager="kubectl-create", operation="Update", api_version="apps/v1", now=T0, schema=schema)
    [entry] = obj["metadata"]["managedFields"]
    assert entry["operation"] == "Update" and entry["manager"] == "kubectl-create"
    fields = entry["fieldsV1"]
    assert fields["f:metadata"] == {"f:labels": {".": {}, "f:app": {}}}
    assert list(fields["f:spec"]["f:template"]["f:spec"]["f:containers"]['k:{"name":"nginx"}']) == [".", "f:image", "f:name", "f:ports"]


def _live_with_csa(schema: dict) -> dict:
    """An object created by client-side apply, then applied server-side by another manager."""
    obj = copy.deepcopy(DEPLOYMENT)
    update_managed_fields(None, obj, manager="kubectl-client-side-apply", operation="Update", api_version="apps/v1", now=T0, schema=schema)
    return obj


def test_conflict_message_and_causes(schema: dict) -> None:
    live = _live_with_csa(schema)
    applied = copy.deepcopy(DEPLOYMENT)
    applied["spec"]["replicas"] = 3
    with pytest.raises(errors.Conflict) as exc:
        server_side_apply(live, applied, manager="kubectl", force=False, schema=schema, now=T1)
    err = exc.value
    assert err.code == 409 and err.reason == "Conflict"
    assert err.message == 'Apply failed with 1 conflict: conflict with "kubectl-client-side-apply" using apps/v1: .spec.replicas'
    assert err.causes == [{"reason": "FieldManagerConflict", "message": 'conflict with "kubectl-client-side-apply" using apps/v1', "field": ".spec.replicas"}]


def test_several_conflicts_listed(schema: dict) -> None:
    live = _live_with_csa(schema)
    applied = copy.deepcopy(DEPLOYMENT)
    applied["spec"]["replicas"] = 3
    applied["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:2"
    with pytest.raises(errors.Conflict) as exc:
        server_side_apply(live, applied, manager="kubectl", force=False, schema=schema, now=T1)
    assert exc.value.message.startswith('Apply failed with 2 conflicts: conflicts with "kubectl-client-side-apply" using apps/v1:\n')
    assert {c["field"] for c in exc.value.causes} == {".spec.replicas", '.spec.template.spec.containers[name="nginx"].image'}


def test_same_values_are_shared_without_conflict(schema: dict) -> None:
    live = _live_with_csa(schema)
    obj = server_side_apply(live, DEPLOYMENT, manager="kubectl", force=False, schema=schema, now=T1)
    owners = entries(obj)
    assert "f:replicas" in owners[("kubectl", "Apply")]["fieldsV1"]["f:spec"]
    assert "f:replicas" in owners[("kubectl-client-side-apply", "Update")]["fieldsV1"]["f:spec"]
    assert [e["operation"] for e in obj["metadata"]["managedFields"]] == ["Apply", "Update"]


def test_force_takes_ownership(schema: dict) -> None:
    live = _live_with_csa(schema)
    applied = copy.deepcopy(DEPLOYMENT)
    applied["spec"]["replicas"] = 3
    obj = server_side_apply(live, applied, manager="kubectl", force=True, schema=schema, now=T1)
    assert obj["spec"]["replicas"] == 3
    owners = entries(obj)
    assert "f:replicas" not in owners[("kubectl-client-side-apply", "Update")]["fieldsV1"]["f:spec"]
    assert "f:replicas" in owners[("kubectl", "Apply")]["fieldsV1"]["f:spec"]


def test_update_by_another_manager_then_reapply_conflicts(schema: dict) -> None:
    obj = server_side_apply(None, DEPLOYMENT, manager="kubectl", force=False, schema=schema, now=T0)
    scaled = copy.deepcopy(obj)
    scaled["spec"]["replicas"] = 5
    update_managed_fields(obj, scaled, manager="hpa", operation="Update", api_version="apps/v1", now=T1, schema=schema)
    owners = entries(scaled)
    assert owners[("hpa", "Update")]["fieldsV1"] == {"f:spec": {"f:replicas": {}}}
    assert "f:replicas" not in owners[("kubectl", "Apply")]["fieldsV1"]["f:spec"]
    with pytest.raises(errors.Conflict):
        server_side_apply(scaled, DEPLOYMENT, manager="kubectl", force=False, schema=schema, now=T2)
    # dropping replicas from the configuration resolves it: the hpa keeps its value
    applied = copy.deepcopy(DEPLOYMENT)
    del applied["spec"]["replicas"]
    out = server_side_apply(scaled, applied, manager="kubectl", force=False, schema=schema, now=T2)
    assert out["spec"]["replicas"] == 5


def test_fields_no_longer_applied_are_removed(schema: dict) -> None:
    first = copy.deepcopy(DEPLOYMENT)
    first["metadata"]["labels"]["tier"] = "web"
    first["spec"]["template"]["spec"]["containers"].append({"name": "sidecar", "image": "busybox"})
    obj = server_side_apply(None, first, manager="kubectl", force=False, schema=schema, now=T0)
    assert len(obj["spec"]["template"]["spec"]["containers"]) == 2
    out = server_side_apply(obj, DEPLOYMENT, manager="kubectl", force=False, schema=schema, now=T1)
    assert out["metadata"]["labels"] == {"app": "nginx"}
    assert [c["name"] for c in out["spec"]["template"]["spec"]["containers"]] == ["nginx"]
    fields = entries(out)[("kubectl", "Apply")]["fieldsV1"]
    assert 'k:{"name":"sidecar"}' not in fields["f:spec"]["f:template"]["f:spec"]["f:containers"]


def test_fields_co_owned_by_another_manager_survive(schema: dict) -> None:
    first = copy.deepcopy(DEPLOYMENT)
    first["metadata"]["labels"]["tier"] = "web"
    obj = server_side_apply(None, first, manager="a", force=False, schema=schema, now=T0)
    obj = server_side_apply(obj, {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "nginx", "labels": {"tier": "web"}}},
                            manager="b", force=False, schema=schema, now=T1)
    out = server_side_apply(obj, DEPLOYMENT, manager="a", force=False, schema=schema, now=T2)
    assert out["metadata"]["labels"] == {"app": "nginx", "tier": "web"}


def test_lists_merge_by_schema(schema: dict) -> None:
    live = server_side_apply(None, DEPLOYMENT, manager="a", force=False, schema=schema, now=T0)
    other = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "nginx", "finalizers": ["x/y"]},
             "spec": {"template": {"spec": {"containers": [{"name": "log", "image": "fluent"}],
                                            "tolerations": [{"key": "k", "operator": "Exists"}]}}}}
    out = server_side_apply(live, other, manager="b", force=False, schema=schema, now=T1)
    assert [c["name"] for c in out["spec"]["template"]["spec"]["containers"]] == ["nginx", "log"]
    assert out["metadata"]["finalizers"] == ["x/y"]
    fields = entries(out)[("b", "Apply")]["fieldsV1"]
    assert fields["f:metadata"] == {"f:finalizers": {'v:"x/y"': {}}}
    assert fields["f:spec"]["f:template"]["f:spec"]["f:tolerations"] == {}  # atomic list: a leaf


def test_applied_managed_fields_rejected(schema: dict) -> None:
    applied = copy.deepcopy(DEPLOYMENT)
    applied["metadata"]["managedFields"] = [{"manager": "x"}]
    with pytest.raises(errors.BadRequest, match="metadata.managedFields must be nil"):
        server_side_apply(None, applied, manager="kubectl", force=False, schema=schema, now=T0)


def test_schemaless_custom_resource() -> None:
    cr = {"apiVersion": "example.com/v1", "kind": "W", "metadata": {"name": "w"}, "spec": {"a": {"b": 1}, "list": [1, 2]}}
    obj = server_side_apply(None, cr, manager="m", force=False, schema=None, now=T0)
    out = server_side_apply(obj, {"apiVersion": "example.com/v1", "kind": "W", "metadata": {"name": "w"}, "spec": {"a": {"c": 2}, "list": [3]}},
                            manager="n", force=True, schema=None, now=T1)
    assert out["spec"] == {"a": {"b": 1, "c": 2}, "list": [3]}
    # without a schema every key is a map entry (owned itself); lists are atomic leaves
    assert entries(out)[("n", "Apply")]["fieldsV1"] == {"f:spec": {".": {}, "f:a": {".": {}, "f:c": {}}, "f:list": {}}}
    assert "f:list" not in entries(out)[("m", "Apply")]["fieldsV1"]["f:spec"]


def test_update_removed_fields_leave_every_set(schema: dict) -> None:
    obj = server_side_apply(None, DEPLOYMENT, manager="kubectl", force=False, schema=schema, now=T0)
    new = copy.deepcopy(obj)
    del new["metadata"]["labels"]
    update_managed_fields(obj, new, manager="editor", operation="Update", api_version="apps/v1", now=T1, schema=schema)
    fields = entries(new)[("kubectl", "Apply")]["fieldsV1"]
    assert "f:metadata" not in fields
    assert ("editor", "Update") not in entries(new)  # it removed things but owns nothing


def test_client_managed_fields_handling(schema: dict) -> None:
    obj = server_side_apply(None, DEPLOYMENT, manager="kubectl", force=False, schema=schema, now=T0)
    # [] keeps the live entries
    new = copy.deepcopy(obj)
    new["metadata"]["managedFields"] = []
    update_managed_fields(obj, new, manager="x", operation="Update", api_version="apps/v1", now=T1, schema=schema)
    assert ("kubectl", "Apply") in entries(new)
    # corrupt entries fall back to the live ones
    new = copy.deepcopy(obj)
    new["metadata"]["managedFields"] = [{"manager": "evil", "operation": "Destroy", "fieldsV1": {"bad": 1}}]
    update_managed_fields(obj, new, manager="x", operation="Update", api_version="apps/v1", now=T1, schema=schema)
    assert set(entries(new)) == {("kubectl", "Apply")}
    # [{}] clears them all
    new = copy.deepcopy(obj)
    new["metadata"]["managedFields"] = [{}]
    update_managed_fields(obj, new, manager="x", operation="Update", api_version="apps/v1", now=T1, schema=schema)
    assert "managedFields" not in new["metadata"]
    # valid edited entries are honoured
    new = copy.deepcopy(obj)
    new["metadata"]["managedFields"][0]["manager"] = "renamed"
    update_managed_fields(obj, new, manager="x", operation="Update", api_version="apps/v1", now=T1, schema=schema)
    assert set(entries(new)) == {("renamed", "Apply")}


def test_status_subresource_entry(schema: dict) -> None:
    obj = server_side_apply(None, DEPLOYMENT, manager="kubectl", force=False, schema=schema, now=T0)
    new = copy.deepcopy(obj)
    new["status"] = {"replicas": 2, "conditions": [{"type": "Available", "status": "True"}]}
    update_managed_fields(obj, new, manager="kube-controller-manager", operation="Update", api_version="apps/v1", now=T1, schema=schema, subresource="status")
    entry = entries(new)[("kube-controller-manager", "Update")]
    assert entry["subresource"] == "status"
    assert entry["fieldsV1"] == {"f:status": {"f:conditions": {'k:{"type":"Available"}': {".": {}, "f:status": {}, "f:type": {}}}, "f:replicas": {}}}
