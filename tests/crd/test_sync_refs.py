"""Custom resources synced to the host with their references translated (``patches``), and
namespaced host custom resources shown in the virtual cluster where ``mappings.byName`` puts
them — between two real control planes."""

from __future__ import annotations

import copy

import pytest

from tests.crd.fixtures import crontab, crontab_crd
from tests.syncer.conftest import HOST_NS, eventually, planes, start_syncer, stop_syncer  # noqa: F401
from vkube.api import errors
from vkube.client.client import Resource
from vkube.client.resources import CRDS, NAMESPACES, SECRETS
from vkube.syncer import load_values
from vkube.syncer.values import ValuesError

CRONTABS = Resource("stable.example.com", "v1", "crontabs", True, "CronTab")
PATCHES = """
sync:
  toHost:
    customResources:
      CronTab.stable.example.com:
        enabled: true
        patches:
        - {path: spec.secretName, reference: {kind: Secret}}
        - {path: "spec.volumes[*].configMap", reference: {kind: ConfigMap}}
        - {path: spec.backend, reference: {kind: Service, namePath: name, namespacePath: namespace}}
        - {path: spec.class, reference: {apiVersion: storage.k8s.io/v1, kind: StorageClass}}
"""


def _crd_with_references() -> dict:
    crd = crontab_crd()
    props = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
    props.update(secretName={"type": "string"}, **{"class": {"type": "string"}},
                 volumes={"type": "array", "items": {"type": "object", "properties": {
                     "configMap": {"type": "string"}, "mountPath": {"type": "string"}}}},
                 backend={"type": "object", "properties": {"name": {"type": "string"},
                                                           "namespace": {"type": "string"}}})
    return crd


async def _established(client, crd: dict) -> None:
    await client.create(CRDS, crd)

    async def served() -> None:
        got = await client.get(CRDS, crd["metadata"]["name"])
        conds = {c["type"]: c["status"] for c in (got.get("status") or {}).get("conditions") or ()}
        assert conds.get("Established") == "True"

    await eventually(served, attempts=300, delay=0.1)


async def test_references_are_translated_on_the_way_to_the_host(planes):  # noqa: F811
    vcp, hcp = planes
    pair = await start_syncer(vcp, hcp, load_values(PATCHES))
    try:
        await _established(pair.virtual, _crd_with_references())
        await _established(pair.host, _crd_with_references())
        obj = crontab("web", secretName="tls-web", volumes=[{"configMap": "site", "mountPath": "/s"}, {"mountPath": "/x"}],
                      backend={"name": "api", "namespace": "default"}, **{"class": "fast"})
        await pair.virtual.create(CRONTABS, obj, namespace="default")

        async def copied() -> dict:
            try:
                return await pair.host.get(CRONTABS, "web-x-default-x-vc1", namespace=HOST_NS)
            except errors.NotFound as exc:
                raise AssertionError("not copied yet") from exc

        spec = (await eventually(copied, attempts=300, delay=0.1))["spec"]
        assert spec["secretName"] == "tls-web-x-default-x-vc1"
        assert spec["volumes"] == [{"configMap": "site-x-default-x-vc1", "mountPath": "/s"}, {"mountPath": "/x"}]
        assert spec["backend"] == {"name": "api-x-default-x-vc1", "namespace": HOST_NS}
        assert spec["class"] == "fast-x-vc1"  # a cluster-scoped kind: NAME-x-VC
        assert spec["image"] == "my-cron-image"  # everything else as it was
        # the virtual object keeps its own names; an update is translated again
        vobj = copy.deepcopy(await pair.virtual.get(CRONTABS, "web", namespace="default"))
        assert vobj["spec"]["secretName"] == "tls-web"
        vobj["spec"]["secretName"] = "tls-new"
        await pair.virtual.update(CRONTABS, vobj)

        async def updated() -> None:
            assert (await copied())["spec"]["secretName"] == "tls-new-x-default-x-vc1"

        await eventually(updated, attempts=300, delay=0.1)
    finally:
        await stop_syncer(pair)


async def test_referenced_secrets_reach_the_host_while_referenced(planes):  # noqa: F811
    vcp, hcp = planes
    pair = await start_syncer(vcp, hcp, load_values(PATCHES))
    try:
        await _established(pair.virtual, _crd_with_references())
        await _established(pair.host, _crd_with_references())
        for name in ("creds", "unused"):
            await pair.virtual.create(SECRETS, {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name},
                                                "stringData": {"token": name}}, namespace="default")
        await pair.virtual.create(CRONTABS, crontab("store", secretName="creds"), namespace="default")

        async def secret_on_host() -> None:
            hsecrets = (await pair.host.list(SECRETS, namespace=HOST_NS))["items"]
            names = {s["metadata"]["name"] for s in hsecrets}
            assert "creds-x-default-x-vc1" in names and "unused-x-default-x-vc1" not in names

        await eventually(secret_on_host, attempts=300, delay=0.1)
        await pair.virtual.delete(CRONTABS, "store", namespace="default")

        async def secret_gone() -> None:
            names = {s["metadata"]["name"] for s in (await pair.host.list(SECRETS, namespace=HOST_NS))["items"]}
            assert "creds-x-default-x-vc1" not in names

        await eventually(secret_gone, attempts=300, delay=0.1)
    finally:
        await stop_syncer(pair)


FROM_HOST = """
sync:
  fromHost:
    customResources:
      CronTab.stable.example.com:
        enabled: true
        mappings:
          byName:
            "shared/*": "platform/*"
            "other/special": "default/special-view"
"""


async def test_namespaced_host_custom_resources_appear_where_mapped(planes):  # noqa: F811
    vcp, hcp = planes
    pair = await start_syncer(vcp, hcp, load_values(FROM_HOST))
    try:
        await _established(pair.host, crontab_crd())
        for ns in ("shared", "other", "unmapped"):
            await pair.host.create(NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
        hobj = await pair.host.create(CRONTABS, crontab("issuer", namespace="shared", replicas=3), namespace="shared")
        await pair.host.update(CRONTABS, {**hobj, "status": {"replicas": 3}}, subresource="status")
        await pair.host.create(CRONTABS, crontab("special", namespace="other", replicas=1), namespace="other")
        await pair.host.create(CRONTABS, crontab("hidden", namespace="unmapped"), namespace="unmapped")
        await pair.host.create(CRONTABS, crontab("not-named", namespace="other"), namespace="other")

        async def shown() -> dict:
            try:
                obj = await pair.virtual.get(CRONTABS, "issuer", namespace="platform")
                special = await pair.virtual.get(CRONTABS, "special-view", namespace="default")
            except errors.NotFound as exc:
                raise AssertionError("not shown yet") from exc
            assert obj["spec"]["replicas"] == 3 and obj.get("status") == {"replicas": 3}
            assert special["spec"]["replicas"] == 1
            return obj

        vobj = await eventually(shown, attempts=300, delay=0.1)
        assert vobj["metadata"]["labels"]["vkube.io/synced-from-host"] == "true"
        assert (await pair.virtual.get(NAMESPACES, "platform"))["metadata"]["name"] == "platform"  # made for it
        everywhere = (await pair.virtual.list(CRONTABS))["items"]
        assert sorted((o["metadata"]["namespace"], o["metadata"]["name"]) for o in everywhere) == [
            ("default", "special-view"), ("platform", "issuer")]
        # read-only in mapped namespaces: a change is put back, a tenant's own object removed
        await pair.virtual.update(CRONTABS, {**vobj, "spec": {**vobj["spec"], "replicas": 4}})
        await pair.virtual.create(CRONTABS, crontab("mine", namespace="platform"), namespace="platform")
        await pair.virtual.create(CRONTABS, crontab("free", namespace="default"), namespace="default")

        async def reverted() -> None:
            assert (await pair.virtual.get(CRONTABS, "issuer", namespace="platform"))["spec"]["replicas"] == 3
            names = [o["metadata"]["name"] for o in (await pair.virtual.list(CRONTABS, namespace="platform"))["items"]]
            assert names == ["issuer"]

        await eventually(reverted, attempts=300, delay=0.1)
        # an unmapped virtual namespace is the tenant's own
        await pair.virtual.get(CRONTABS, "free", namespace="default")
        # the host deletes it: so does the virtual cluster
        await pair.host.delete(CRONTABS, "issuer", namespace="shared")

        async def gone() -> None:
            assert (await pair.virtual.list(CRONTABS, namespace="platform"))["items"] == []

        await eventually(gone, attempts=300, delay=0.1)
    finally:
        await stop_syncer(pair)


@pytest.mark.parametrize("text, error", [
    ("sync: {toHost: {customResources: {CronTab.stable.example.com: {patches: [{path: 'spec..x', reference: {kind: Secret}}]}}}}",
     "sync.toHost.customResources.CronTab.stable.example.com.patches[0].path: 'spec..x' is not a field path"),
    ("sync: {toHost: {customResources: {CronTab.stable.example.com: {patches: [{path: spec.x}]}}}}",
     "patches[0].reference.kind: required"),
    ("sync: {fromHost: {customResources: {CronTab.stable.example.com: {mappings: {byName: {'shared/*': 'platform/one'}}}}}}",
     "* maps only to *"),
    ("sync: {fromHost: {customResources: {CronTab.stable.example.com: {mappings: {byName: {'shared': 'platform'}}}}}}",
     "map HOSTNAMESPACE/* to VIRTUALNAMESPACE/*"),
])
def test_bad_patches_and_mappings_name_the_key(text: str, error: str) -> None:
    with pytest.raises(ValuesError, match=None) as info:
        load_values(text)
    assert error in str(info.value)
