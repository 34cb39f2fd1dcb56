"""Two virtual clusters whose host grants once shared a name keep their own.

Cluster ``b`` in host namespace ``vkube-a-x`` and cluster ``x-b`` in ``vkube-a`` both had
ClusterRole/ClusterRoleBinding ``vkube-vkube-a-x-b``: creating, upgrading or deleting one
overwrote or removed the other's grants (a tenant boundary when different people create
them). Driven through the real CLI on the embedded host, as a user runs it: each gets its own
``vkube-NAMESPACE.NAME``; a cluster an earlier version made keeps its former objects through
the other's delete, and its own ``--upgrade`` and ``delete`` clear them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.cli.conftest import User, eventually
from tests.conftest import kubectl

LEGACY = "vkube-vkube-a-x-b"  # what both clusters were once given
POD = """
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: default}
spec: {containers: [{name: nginx, image: nginx}]}
"""


def _host(u: User) -> Path:
    return u.home / "host" / "kubeconfig"


def _get(u: User, kind: str, name: str) -> dict | None:
    out = kubectl(_host(u), "get", kind, name, "-o", "json", check=False)
    if out.returncode != 0:
        assert "NotFound" in out.stderr, out.stderr
        return None
    return json.loads(out.stdout)


def _grant_of(u: User, name: str, ns: str) -> tuple[dict, dict]:
    role, binding = _get(u, "clusterrole", f"vkube-{ns}.{name}"), \
        _get(u, "clusterrolebinding", f"vkube-{ns}.{name}")
    assert role is not None and binding is not None, (name, ns)
    assert role["metadata"]["labels"]["vkube.io/vcluster"] == name
    assert binding["roleRef"]["name"] == f"vkube-{ns}.{name}"
    assert [(s["kind"], s["name"], s["namespace"]) for s in binding["subjects"]] == [
        ("ServiceAccount", f"vkube-{name}", ns)]
    return role, binding


def _as_an_earlier_version_made_it(u: User, name: str, ns: str) -> None:
    """Move the cluster's ClusterRole/Binding to the former name, as an earlier version
    applied them (same rules, labels and subject)."""
    role, binding = _grant_of(u, name, ns)
    docs = []
    for obj in (role, binding):
        meta = obj["metadata"]
        docs.append({"apiVersion": obj["apiVersion"], "kind": obj["kind"],
                     "metadata": {"name": LEGACY, "labels": meta["labels"]},
                     **{k: obj[k] for k in ("rules", "subjects") if k in obj},
                     **({"roleRef": {**obj["roleRef"], "name": LEGACY}}
                        if "roleRef" in obj else {})})
    kubectl(_host(u), "create", "-f", "-", input=yaml.safe_dump_all(docs))
    kubectl(_host(u), "delete", "clusterrolebinding,clusterrole", f"vkube-{ns}.{name}")


def _pod_runs(u: User, ns: str) -> None:
    def running() -> None:
        host_pods = json.loads(kubectl(_host(u), "get", "pods", "-n", ns, "-o",
                                       "json").stdout)["items"]
        assert [p["status"].get("phase") for p in host_pods] == ["Running"], host_pods
        assert u.kubectl("get", "pod", "web", "-o",
                         "jsonpath={.status.phase}").stdout == "Running"
    u.kubectl("apply", "-f", "-", input=POD)
    eventually(running, timeout=120)


@pytest.mark.timeout(600)  # two clusters' lives on a loaded machine
def test_clusters_whose_grants_shared_a_name_keep_their_own(user: User) -> None:
    user.vkube("create", "x-b", "--namespace", "vkube-a")  # kubectl's current context
    user.vkube("create", "b", "--namespace", "vkube-a-x", "--connect=false")
    _grant_of(user, "x-b", "vkube-a")
    _grant_of(user, "b", "vkube-a-x")
    assert _get(user, "clusterrole", LEGACY) is None

    # x-b as an earlier version left it: its grants under the name b's also was
    _as_an_earlier_version_made_it(user, "x-b", "vkube-a")
    user.vkube("delete", "b")  # b's delete leaves it alone (it removed it: the fault)
    for kind in ("clusterrole", "clusterrolebinding"):
        assert _get(user, kind, "vkube-vkube-a-x.b") is None  # b's own are gone
        kept = _get(user, kind, LEGACY)
        assert kept is not None and kept["metadata"]["labels"]["vkube.io/vcluster"] == "x-b"
    # x-b's syncer still has its grants: it reads nodes and syncs a pod
    confined = user.home / "clusters" / "x-b" / "host-syncer.kubeconfig"
    assert kubectl(confined, "get", "nodes", "-o", "name").stdout.strip()
    _pod_runs(user, "vkube-a")

    # x-b's own upgrade moves it to its new name and clears the former objects (its own)
    user.vkube("create", "x-b", "--upgrade", "--connect=false")
    _grant_of(user, "x-b", "vkube-a")
    assert _get(user, "clusterrole", LEGACY) is None
    assert _get(user, "clusterrolebinding", LEGACY) is None
    assert kubectl(confined, "get", "nodes", "-o", "name").stdout.strip()

    user.vkube("delete", "x-b")
    for kind in ("clusterrole", "clusterrolebinding"):
        assert _get(user, kind, "vkube-vkube-a.x-b") is None
