"""DRA sync pieces without a server: which claims a pod means, the host pod's claims, the
claim status as the virtual cluster shows it, the toggle's refusal and RBAC."""

from __future__ import annotations

from typing import Any

import pytest

from vkube.syncer.admission import PodAdmission
from vkube.syncer.claims import ClaimsNotReady, ConsumerMap, claim_names, host_pod_claims, virtual_status
from vkube.syncer.hostrbac import host_rbac
from vkube.syncer.podrewrite import PodRewriteConfig, rewrite_pod
from vkube.syncer.translate import ANN_NAME, ANN_NAMESPACE, ANN_UID, LABEL_MANAGED_BY, Translator
from vkube.syncer.values import ValuesError, load_values

tr = Translator("vc", "vkube-vc")


def pod(entries: list[dict[str, Any]], statuses: list[dict[str, Any]] | None = None,
        name: str = "train-0", uid: str = "vu1") -> dict[str, Any]:
    out: dict[str, Any] = {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "ml", "uid": uid},
        "spec": {"containers": [{"name": "c", "image": "cuda", "resources": {"claims": [{"name": "gpu"}]}}],
                 "resourceClaims": entries}}
    if statuses is not None:
        out["status"] = {"resourceClaimStatuses": statuses}
    return out


def test_claim_names_follow_resourceclaim_name_rules():
    p = pod([{"name": "gpu", "resourceClaimTemplateName": "one-gpu"}, {"name": "shared", "resourceClaimName": "pool"}],
            [{"name": "gpu", "resourceClaimName": "train-0-gpu-abcde"}])
    assert claim_names(p) == {"gpu": "train-0-gpu-abcde", "shared": "pool"}
    # the template needs no claim: recorded without a name
    assert claim_names(pod([{"name": "gpu", "resourceClaimTemplateName": "t"}], [{"name": "gpu"}])) == {"gpu": None}
    with pytest.raises(ClaimsNotReady, match='pod "ml/train-0": ResourceClaim not created yet') as e:
        claim_names(pod([{"name": "gpu", "resourceClaimTemplateName": "t"}]))
    assert not e.value.shown  # a passing wait: the controller records it next


def test_host_pod_names_the_host_claims_directly():
    p = pod([{"name": "gpu", "resourceClaimTemplateName": "one-gpu"}, {"name": "shared", "resourceClaimName": "pool"},
             {"name": "none", "resourceClaimTemplateName": "t"}],
            [{"name": "gpu", "resourceClaimName": "train-0-gpu-abcde"}, {"name": "none"}])
    claims = host_pod_claims(tr, p)
    assert claims == ({"name": "gpu", "resourceClaimName": "train-0-gpu-abcde-x-ml-x-vc"},
                      {"name": "shared", "resourceClaimName": "pool-x-ml-x-vc"})
    cfg = PodRewriteConfig(translator=tr, host_service_account="sa", token_secret=None)
    assert "resourceClaims" not in rewrite_pod(p, cfg)["spec"]  # nothing given: nothing kept
    from dataclasses import replace
    host = rewrite_pod(p, replace(cfg, resource_claims=claims))
    assert host["spec"]["resourceClaims"] == list(claims)
    assert host["spec"]["containers"][0]["resources"] == {"claims": [{"name": "gpu"}]}  # entry names stay
    assert p["spec"]["resourceClaims"][0] == {"name": "gpu", "resourceClaimTemplateName": "one-gpu"}  # not mutated


class _Cache:
    def __init__(self, *objs: dict[str, Any]) -> None:
        self.objs = {(o["metadata"].get("namespace"), o["metadata"]["name"]): o for o in objs}

    def get(self, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        return self.objs.get((namespace, name))


def _hpod(vname: str, vuid: str, huid: str) -> dict[str, Any]:
    return {"metadata": {"name": tr.host_name(vname, "ml", limit=63), "namespace": "vkube-vc", "uid": huid,
                         "labels": {LABEL_MANAGED_BY: "vc"},
                         "annotations": {ANN_NAME: vname, ANN_NAMESPACE: "ml", ANN_UID: vuid}}}


def test_status_up_translates_reservations_and_hides_foreign_consumers():
    vpods = _Cache(pod([], name="a", uid="va"), pod([], name="b", uid="vb-new"),
                   {**pod([], name="gone", uid="vg"), "metadata": {"name": "gone", "namespace": "ml", "uid": "vg",
                                                                  "deletionTimestamp": "2026-01-01T00:00:00Z"}})
    hpods = _Cache(_hpod("a", "va", "ha"), _hpod("b", "vb-old", "hb"), _hpod("gone", "vg", "hg"))
    consumer = ConsumerMap(tr, hpods, vpods)
    alloc = {"devices": {"results": [{"request": "gpu", "driver": "gpu.example.com", "pool": "n1", "device": "gpu-0"}]},
             "nodeSelector": {"nodeSelectorTerms": [{"matchFields": [
                 {"key": "metadata.name", "operator": "In", "values": ["n1"]}]}]}}
    hstatus = {"allocation": alloc, "devices": [{"driver": "gpu.example.com", "pool": "n1", "device": "gpu-0"}],
               "reservedFor": [
                   {"resource": "pods", "name": tr.host_name("a", "ml", limit=63), "uid": "ha"},
                   {"resource": "pods", "name": tr.host_name("b", "ml", limit=63), "uid": "hb"},  # older pod b
                   {"resource": "pods", "name": tr.host_name("gone", "ml", limit=63), "uid": "hg"},  # being deleted
                   {"resource": "pods", "name": tr.host_name("a", "ml", limit=63), "uid": "other"},  # stale host uid
                   {"resource": "pods", "name": "someone-elses", "uid": "x"},
                   {"apiGroup": "example.com", "resource": "things", "name": "t", "uid": "y"}]}
    out = virtual_status(hstatus, consumer)
    assert out == {"allocation": alloc, "devices": hstatus["devices"],
                   "reservedFor": [{"resource": "pods", "name": "a", "uid": "va"}]}
    assert hstatus["reservedFor"][0]["name"] != "a"  # the host's status is not touched
    # reserved for nobody of ours: unallocated, as the virtual claim controller would make it
    only_foreign = {"allocation": alloc, "reservedFor": [{"resource": "pods", "name": "someone-elses", "uid": "x"}]}
    assert virtual_status(only_foreign, consumer) == {}
    assert virtual_status({}, consumer) == {}


def test_the_toggle_decides_the_refusal_and_the_rbac():
    entries = [{"name": "gpu", "resourceClaimTemplateName": "t"}]
    off = PodAdmission(load_values(""), cluster="gpu-team").check(pod(entries))
    assert off is not None and "sync.resourceclaims.enabled: true" in off
    # the fix names the cluster, not a placeholder
    assert "vkube create gpu-team --upgrade -f values.yaml" in off and "NAME" not in off
    on = load_values("sync: {resourceclaims: {enabled: true}}")
    assert PodAdmission(on).check(pod(entries)) is None

    def resources(rules: list[dict[str, Any]]) -> dict[str, list[str]]:
        return {r: sorted(rule["verbs"]) for rule in rules if "resource.k8s.io" in rule["apiGroups"]
                for r in rule["resources"]}
    assert resources(host_rbac(load_values(""), "vkube-vc").namespaced) == {}
    assert resources(host_rbac(load_values(""), "vkube-vc").cluster) == {}
    rbac = host_rbac(on, "vkube-vc")
    assert resources(rbac.namespaced) == {"resourceclaims": ["create", "delete", "get", "list", "update", "watch"]}
    assert resources(rbac.cluster) == {"deviceclasses": ["get", "list", "watch"],
                                       "resourceslices": ["get", "list", "watch"]}
    with pytest.raises(ValuesError, match=r"^sync.resourceclaims.enabled: .*sync.nodes.enableScheduler"):
        load_values("sync: {resourceclaims: {enabled: true}, nodes: {enabled: true, enableScheduler: true}}")


class _Inf(_Cache):
    """Enough of an informer for one syncer: get/list, indexes and handlers."""

    def __init__(self, *objs: dict[str, Any]) -> None:
        super().__init__(*objs)
        self.indexes: dict[str, Any] = {}

    def list(self, namespace: str | None = None) -> list[dict[str, Any]]:
        return list(self.objs.values())

    def add_index(self, name: str, fn: Any) -> None:
        self.indexes[name] = fn

    def by_index(self, name: str, value: str) -> list[dict[str, Any]]:
        return [o for o in self.objs.values() if value in self.indexes[name](o)]

    def add_handler(self, fn: Any) -> None:
        pass


class _Virtual:
    def __init__(self, inf: _Inf) -> None:
        self.inf, self.calls = inf, []

    async def create(self, res: Any, obj: dict[str, Any]) -> dict[str, Any]:
        self.calls.append(("create", obj["metadata"]["name"]))
        self.inf.objs[(None, obj["metadata"]["name"])] = obj
        return obj

    async def update(self, res: Any, obj: dict[str, Any]) -> dict[str, Any]:
        self.calls.append(("update", obj["metadata"]["name"]))
        self.inf.objs[(None, obj["metadata"]["name"])] = obj
        return obj

    async def delete(self, res: Any, name: str, namespace: str | None = None, **kw: Any) -> None:
        self.calls.append(("delete", name))
        self.inf.objs.pop((None, name), None)


def test_slices_of_unselected_nodes_and_tenant_objects_are_not_shown():
    import asyncio
    from types import SimpleNamespace

    from vkube.client.resources import NODES, RESOURCESLICES
    from vkube.syncer.claims import ANN_FROM_HOST, HostDeviceSyncer

    def node(name: str, pool: str) -> dict[str, Any]:
        return {"metadata": {"name": name, "labels": {"pool": pool}}}

    def slice_(name: str, node_name: str | None, **meta: Any) -> dict[str, Any]:
        spec: dict[str, Any] = {"driver": "gpu.example.com", "pool": {"name": name}, "devices": [{"name": "gpu-0"}]}
        spec.update({"nodeName": node_name} if node_name else {"allNodes": True})
        return {"metadata": {"name": name, **meta}, "spec": spec}

    hslices = _Inf(slice_("s1", "n1"), slice_("s2", "n2"), slice_("shared", None))
    hnodes = _Inf(node("n1", "a"), node("n2", "b"))
    vslices = _Inf(slice_("s2", "n2", annotations={ANN_FROM_HOST: "true"}),  # shown before the selector
                   slice_("tenant", "n1"),  # the tenant's own
                   {**slice_("s1", "n1", annotations={ANN_FROM_HOST: "true"}, labels={"edited": "yes"})})
    informers = SimpleNamespace(
        virtual=lambda res: vslices,
        host=lambda res, owned=True: {RESOURCESLICES: hslices, NODES: hnodes}[res])
    events: list[tuple[str, str]] = []
    recorder = SimpleNamespace(event=lambda obj, typ, reason, msg: events.append((obj["metadata"]["name"], reason)))
    virtual = _Virtual(vslices)
    ctx = SimpleNamespace(informers=informers, values=load_values(
        "sync: {resourceclaims: {enabled: true}}\nisolation: {enabled: true, nodeSelector: pool=a}"),
        virtual=virtual, recorder=recorder, tr=tr)
    syncer = HostDeviceSyncer(ctx, RESOURCESLICES)  # type: ignore[arg-type]
    syncer.setup()

    async def run() -> None:
        for key in syncer.initial_keys():
            await syncer.reconcile(key)
    asyncio.run(run())
    assert sorted(n for _, n in vslices.objs) == ["s1", "shared"]
    assert sorted(virtual.calls) == [("create", "shared"), ("delete", "s2"), ("delete", "tenant"), ("update", "s1")]
    assert events == [("tenant", "SyncRejected")]
    assert vslices.get("s1")["metadata"]["labels"] == {}  # the edit is undone


def test_a_host_without_dra_is_told_apart_from_a_refusal():
    import asyncio

    from vkube.api import errors
    from vkube.syncer.claims import host_lacks_dra

    class Host:
        def __init__(self, exc: Exception | None) -> None:
            self.exc = exc

        async def list(self, res: Any, **kw: Any) -> dict[str, Any]:
            if self.exc is not None:
                raise self.exc
            return {"items": []}
    assert asyncio.run(host_lacks_dra(Host(errors.NotFound("the server could not find the requested resource"))))
    assert not asyncio.run(host_lacks_dra(Host(errors.Forbidden("no"))))
    assert not asyncio.run(host_lacks_dra(Host(None)))


def test_host_copies_in_use_outlive_their_claim_and_stale_ones_are_replaced():
    import asyncio
    from types import SimpleNamespace

    from vkube.client.resources import PODS, RESOURCECLAIMS
    from vkube.syncer.claims import ResourceClaimSyncer

    def vclaim(name: str, uid: str) -> dict[str, Any]:
        return {"metadata": {"name": name, "namespace": "ml", "uid": uid},
                "spec": {"devices": {"requests": [{"name": "gpu", "exactly": {"deviceClassName": "gpu"}}]}}}

    def hclaim(name: str, vuid: str, reserved: bool) -> dict[str, Any]:
        meta = tr.host_metadata(vclaim(name, vuid))
        return {"metadata": meta, "spec": vclaim(name, vuid)["spec"],
                "status": {"reservedFor": [{"resource": "pods", "name": "p", "uid": "h"}]} if reserved else {}}

    vclaims = _Inf(vclaim("again", "new"), vclaim("again-busy", "new"))
    hclaims = _Inf(hclaim("gone-busy", "u1", True), hclaim("again", "old", False), hclaim("again-busy", "old", True))
    deleted: list[str] = []

    async def delete(res: Any, name: str, namespace: str | None = None, **kw: Any) -> None:
        deleted.append(name)
    ctx = SimpleNamespace(
        informers=SimpleNamespace(virtual=lambda res: {RESOURCECLAIMS: vclaims, PODS: _Inf()}.get(res, _Inf()),
                                  host=lambda res, owned=True: {RESOURCECLAIMS: hclaims}.get(res, _Inf())),
        host=SimpleNamespace(delete=delete), host_namespace="vkube-vc", tr=tr, syncers={},
        recorder=SimpleNamespace(event=lambda *a, **kw: None))
    syncer = ResourceClaimSyncer(ctx)  # type: ignore[arg-type]
    syncer.setup()
    for key in ("ml/gone-busy", "ml/again", "ml/again-busy"):
        asyncio.run(syncer.reconcile(key))
    assert deleted == [tr.host_name("again", "ml")]  # in-use copies wait for their pods
