"""The bootstrap policy exists at start and is reconciled on every start (kube-apiserver's
``rbac/bootstrap-roles`` hook), and the clusterrole-aggregation controller keeps ``admin``,
``edit`` and ``view`` filled with what other ClusterRoles contribute (CRD authors' rules)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from pathlib import Path

from tests.conftest import kubectl
from vkube.api.rbac import covers
from vkube.apiserver.server import ControlPlane
from vkube.client import Client
from vkube.controllers.clusterroleaggregation import ClusterRoleAggregationController
from vkube.controllers.runtime import ControllerManager
from vkube.pki.cluster import CONTROLLER_MANAGER


async def k(config: Path, *args: str, input: str | None = None, check: bool = True):
    return await asyncio.to_thread(kubectl, config, *args, input=input, check=check)


async def get_json(config: Path, *args: str) -> dict:
    return json.loads((await k(config, "get", *args, "-o", "json")).stdout)


async def test_bootstrap_policy_at_start(control_plane):
    config = control_plane.kubeconfig
    names = set((await k(config, "get", "clusterroles", "-o", "name")).stdout.split())
    for name in ("cluster-admin", "admin", "edit", "view", "system:discovery", "system:basic-user",
                 "system:public-info-viewer", "system:kube-scheduler", "system:node",
                 "system:controller:deployment-controller", "system:controller:namespace-controller",
                 "system:controller:clusterrole-aggregation-controller"):
        assert f"clusterrole.rbac.authorization.k8s.io/{name}" in names, name
    admin = await get_json(config, "clusterrolebinding", "cluster-admin")
    assert admin["subjects"] == [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "system:masters"}]
    assert admin["metadata"]["annotations"]["rbac.authorization.kubernetes.io/autoupdate"] == "true"
    assert admin["metadata"]["labels"]["kubernetes.io/bootstrapping"] == "rbac-defaults"
    view = await get_json(config, "clusterrole", "view")
    assert view["aggregationRule"]["clusterRoleSelectors"] == [
        {"matchLabels": {"rbac.authorization.k8s.io/aggregate-to-view": "true"}}]
    assert any("configmaps" in r.get("resources", []) for r in view["rules"])
    assert "extension-apiserver-authentication-reader" in (
        await k(config, "get", "roles", "-n", "kube-system", "-o", "name")).stdout


async def test_every_bootstrap_object_passes_the_checks_its_start_up_create_skips(control_plane):
    """A new cluster creates the policy with ``checked=True`` (no type walk, no validation:
    ~150 objects at every start). Here each object goes through the full create path as a
    server-side dry run: its checks pass, and it stops only because it exists already."""
    from vkube.api import errors
    from vkube.api.rbac import bootstrap_policy
    from vkube.apiserver.rbacbootstrap import _SECTIONS, RBAC
    from vkube.apiserver.request import internal_context

    policy = bootstrap_policy()
    seen = 0
    for section, kind, plural in _SECTIONS:
        storage = control_plane.cp.ctx.storage_for(RBAC, kind)
        for want in policy[section]:
            namespace = want["metadata"].get("namespace")
            rc = dataclasses.replace(internal_context("create", resource=plural, group=RBAC, version="v1",
                                                      namespace=namespace or "", field_manager="test"),
                                     dry_run=True)
            try:
                await storage.create(rc, namespace, json.loads(json.dumps(want)))
            except errors.AlreadyExists:
                seen += 1
                continue
            raise AssertionError(f"{kind} {want['metadata']['name']}: dry run was not refused as existing")
    assert seen == sum(len(policy[s]) for s, _, _ in _SECTIONS) > 100


async def test_reconciled_on_restart(tmp_path):
    data = tmp_path / "cp"
    config = data / "kubeconfig"
    cp = ControlPlane(data_dir=data)
    await cp.start()
    try:
        before = {o["metadata"]["name"]: o["metadata"]["resourceVersion"]
                  for o in (await get_json(config, "clusterroles"))["items"]}
        basic = await get_json(config, "clusterrole", "system:basic-user")
        await k(config, "patch", "clusterrole", "system:basic-user", "--type=json",
                "-p", '[{"op":"remove","path":"/rules/0"}]')
        await k(config, "delete", "clusterrole", "edit")
        await k(config, "patch", "clusterrolebinding", "system:discovery", "--type=merge",
                "-p", '{"subjects":[{"apiGroup":"rbac.authorization.k8s.io","kind":"Group","name":"other"}]}')
        await k(config, "annotate", "--overwrite", "clusterrole", "system:public-info-viewer",
                "rbac.authorization.kubernetes.io/autoupdate=false")
        await k(config, "patch", "clusterrole", "system:public-info-viewer", "--type=json",
                "-p", '[{"op":"replace","path":"/rules","value":[]}]')
        await k(config, "label", "clusterrole", "view", "kubernetes.io/bootstrapping-")
    finally:
        await cp.stop()
    cp = ControlPlane(data_dir=data)
    await cp.start()
    try:
        restored = await get_json(config, "clusterrole", "system:basic-user")
        # the missing rule is appended broken down, as upstream's reconciler adds ``Covers``' leftovers
        assert covers(restored["rules"], basic["rules"])[0] and covers(basic["rules"], restored["rules"])[0]
        assert restored["rules"][0] == basic["rules"][1]
        assert (await get_json(config, "clusterrole", "edit"))["aggregationRule"]
        subjects = (await get_json(config, "clusterrolebinding", "system:discovery"))["subjects"]
        assert {"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "system:authenticated"} in subjects
        assert {"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "other"} in subjects  # kept
        assert (await get_json(config, "clusterrole", "system:public-info-viewer")).get("rules") in (None, [])
        assert (await get_json(config, "clusterrole", "view"))["metadata"]["labels"][
            "kubernetes.io/bootstrapping"] == "rbac-defaults"
        # untouched objects were not rewritten
        after = {o["metadata"]["name"]: o["metadata"]["resourceVersion"]
                 for o in (await get_json(config, "clusterroles"))["items"]}
        unchanged = [n for n in before if n not in ("system:basic-user", "edit", "system:public-info-viewer", "view")]
        assert {n: after[n] for n in unchanged} == {n: before[n] for n in unchanged}
    finally:
        await cp.stop()
    # a third start changes nothing at all
    cp = ControlPlane(data_dir=data)
    await cp.start()
    try:
        again = {o["metadata"]["name"]: o["metadata"]["resourceVersion"]
                 for o in (await get_json(config, "clusterroles"))["items"]}
        assert again == after
    finally:
        await cp.stop()


WIDGETS = """\
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: widgets-view
  labels: {rbac.authorization.k8s.io/aggregate-to-view: "true"}
rules:
- apiGroups: [example.com]
  resources: [widgets]
  verbs: [get, list, watch]
"""


async def alice_may_list_widgets(config: Path) -> bool:
    """A SelfSubjectAccessReview as alice (``auth can-i`` cannot name the group of a resource
    the server does not serve: no CRD is installed here, only the rules)."""
    review = {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview", "spec": {
        "resourceAttributes": {"namespace": "a", "verb": "list", "group": "example.com", "resource": "widgets"}}}
    out = await k(config, "create", "--raw", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
                  "-f", "-", "--as=alice", input=json.dumps(review))
    return json.loads(out.stdout)["status"]["allowed"]


def _has_widgets(role: dict) -> bool:
    return any("widgets" in r.get("resources", []) for r in role.get("rules") or [])


async def test_aggregation_controller(control_plane):
    config = control_plane.kubeconfig
    # the controller runs as the controller manager: its bootstrap bindings must suffice
    client = Client(control_plane.url, ssl=control_plane.ssl(*CONTROLLER_MANAGER))
    mgr = ControllerManager(client, identity="test-aggregation", leader_election=False)
    mgr.add(ClusterRoleAggregationController)
    task = asyncio.create_task(mgr.run())
    try:
        await asyncio.wait_for(mgr.started.wait(), 60)
        await k(config, "create", "ns", "a")
        await k(config, "create", "rolebinding", "alice-view", "-n", "a", "--clusterrole=view", "--user=alice")
        await k(config, "apply", "-f", "-", input=WIDGETS)

        async def roles() -> dict[str, bool]:
            return {n: _has_widgets(await get_json(config, "clusterrole", n)) for n in ("view", "edit", "admin")}

        async def until(want: bool) -> None:
            async with asyncio.timeout(60):
                while set((await roles()).values()) != {want}:
                    await asyncio.sleep(0.2)

        await until(True)  # view directly; edit and admin through view's and edit's labels
        assert await alice_may_list_widgets(config)
        await k(config, "label", "clusterrole", "widgets-view", "rbac.authorization.k8s.io/aggregate-to-view-")
        await until(False)
        assert not await alice_may_list_widgets(config)
        # an aggregated role's own rules are the controller's: a manual edit is put back
        # (view aggregates system:aggregate-to-view and system:aggregated-metrics-reader)
        aggregated = len((await get_json(config, "clusterrole", "view"))["rules"])
        await k(config, "patch", "clusterrole", "view", "--type=json", "-p", '[{"op":"remove","path":"/rules/0"}]')

        async def restored() -> bool:
            return len((await get_json(config, "clusterrole", "view"))["rules"]) == aggregated
        async with asyncio.timeout(60):
            while not await restored():
                await asyncio.sleep(0.2)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await client.close()
