"""Custom resources synced to the host (``sync.toHost.customResources``): a Warning event on
the virtual CRD while the host lacks it, then objects copied down translated, status copied
back up, updates and deletes followed — between two real control planes."""

from __future__ import annotations

import copy

from tests.crd.fixtures import crontab, crontab_crd
from tests.syncer.conftest import HOST_NS, eventually, planes, start_syncer, stop_syncer  # noqa: F401
from vkube.api import errors
from vkube.client.client import Resource
from vkube.client.resources import CRDS, EVENTS
from vkube.syncer import load_values

CRONTABS = Resource("stable.example.com", "v1", "crontabs", True, "CronTab")
VALUES = "sync: {toHost: {customResources: {CronTab.stable.example.com: {enabled: true}}}}"


async def _established(client, crd: dict) -> None:
    await client.create(CRDS, crd)

    async def served() -> None:
        got = await client.get(CRDS, crd["metadata"]["name"])
        conds = {c["type"]: c["status"] for c in (got.get("status") or {}).get("conditions") or ()}
        assert conds.get("Established") == "True"

    await eventually(served)


async def test_custom_resources_go_down_and_status_comes_up(planes):  # noqa: F811
    vcp, hcp = planes
    pair = await start_syncer(vcp, hcp, load_values(VALUES))
    try:
        await _established(pair.virtual, crontab_crd())
        await pair.virtual.create(CRONTABS, crontab("nightly", replicas=2), namespace="default")

        async def warned() -> None:
            events = (await pair.virtual.list(EVENTS, namespace="default")).get("items") or []
            assert any(e["reason"] == "SyncError" and "not served by the host cluster" in e["message"]
                       and e["involvedObject"]["kind"] == "CustomResourceDefinition" for e in events)

        await eventually(warned, attempts=300, delay=0.1)
        host_crd = crontab_crd()
        await _established(pair.host, host_crd)
        hname = "nightly-x-default-x-vc1"

        async def copied() -> dict:
            try:
                obj = await pair.host.get(CRONTABS, hname, namespace=HOST_NS)
            except errors.NotFound as exc:
                raise AssertionError("not copied yet") from exc
            assert obj["spec"]["replicas"] == 2 and obj["spec"]["cronSpec"] == "* * * * */5"
            return obj

        hobj = await eventually(copied, attempts=300, delay=0.1)
        assert hobj["metadata"]["labels"]["vkube.io/managed-by"] == "vc1"
        assert hobj["metadata"]["annotations"]["vkube.io/object-name"] == "nightly"
        # a host operator writes status: it appears in the virtual cluster
        hobj["status"] = {"replicas": 2, "conditions": [{"type": "Ready", "status": "True"}]}
        await pair.host.update(CRONTABS, hobj, subresource="status")

        async def status_up() -> None:
            vobj = await pair.virtual.get(CRONTABS, "nightly", namespace="default")
            assert vobj.get("status", {}).get("replicas") == 2

        await eventually(status_up, attempts=300, delay=0.1)
        # an update follows; the host keeps its status
        vobj = await pair.virtual.get(CRONTABS, "nightly", namespace="default")
        vobj = copy.deepcopy(vobj)
        vobj["spec"]["replicas"] = 3
        await pair.virtual.update(CRONTABS, vobj)

        async def updated() -> None:
            obj = await pair.host.get(CRONTABS, hname, namespace=HOST_NS)
            assert obj["spec"]["replicas"] == 3 and obj["status"]["replicas"] == 2

        await eventually(updated, attempts=300, delay=0.1)
        # a delete follows
        await pair.virtual.delete(CRONTABS, "nightly", namespace="default")

        async def deleted() -> None:
            try:
                await pair.host.get(CRONTABS, hname, namespace=HOST_NS)
            except errors.NotFound:
                return
            raise AssertionError("host copy still there")

        await eventually(deleted, attempts=300, delay=0.1)
    finally:
        await stop_syncer(pair)


async def test_cluster_scoped_custom_resources_go_down_as_name_x_vc(planes):  # noqa: F811
    vcp, hcp = planes
    values = "sync: {toHost: {customResources: {CronTab.stable.example.com: {}}}}"
    pair = await start_syncer(vcp, hcp, load_values(values))
    cluster_tabs = Resource("stable.example.com", "v1", "crontabs", False, "CronTab")
    try:
        await _established(pair.virtual, crontab_crd(scope="Cluster"))
        await _established(pair.host, crontab_crd(scope="Cluster"))
        obj = crontab("global")
        del obj["metadata"]["namespace"]
        await pair.virtual.create(cluster_tabs, obj)

        async def copied() -> dict:
            try:
                return await pair.host.get(cluster_tabs, "global-x-vc1")
            except errors.NotFound as exc:
                raise AssertionError("not copied yet") from exc

        hobj = await eventually(copied, attempts=300, delay=0.1)
        assert hobj["spec"]["cronSpec"] == "* * * * */5"
        await pair.virtual.delete(cluster_tabs, "global")

        async def deleted() -> None:
            try:
                await pair.host.get(cluster_tabs, "global-x-vc1")
            except errors.NotFound:
                return
            raise AssertionError("host copy still there")

        await eventually(deleted, attempts=300, delay=0.1)
    finally:
        await stop_syncer(pair)


async def test_host_custom_resources_shown_read_only_in_the_virtual_cluster(planes):  # noqa: F811
    vcp, hcp = planes
    values = "sync: {fromHost: {customResources: {CronTab.stable.example.com: {enabled: true}}}}"
    cluster_tabs = Resource("stable.example.com", "v1", "crontabs", False, "CronTab")
    pair = await start_syncer(vcp, hcp, load_values(values))
    try:
        await _established(pair.host, crontab_crd(scope="Cluster"))
        issuer = crontab("shared-issuer", replicas=3)
        del issuer["metadata"]["namespace"]
        hobj = await pair.host.create(cluster_tabs, issuer)
        await pair.host.update(cluster_tabs, {**hobj, "status": {"replicas": 3}}, subresource="status")

        async def shown() -> dict:
            try:
                obj = await pair.virtual.get(cluster_tabs, "shared-issuer")
            except errors.NotFound as exc:
                raise AssertionError("not shown yet") from exc
            assert obj["spec"]["replicas"] == 3 and obj.get("status") == {"replicas": 3}
            return obj

        vobj = await eventually(shown, attempts=300, delay=0.1)
        crd = await pair.virtual.get(CRDS, "crontabs.stable.example.com")
        assert crd["metadata"]["labels"]["vkube.io/synced-from-host"] == "true"
        # a tenant's change is put back; a tenant's own object of the kind is removed
        await pair.virtual.update(cluster_tabs, {**vobj, "spec": {**vobj["spec"], "replicas": 4}})
        mine = crontab("mine")
        del mine["metadata"]["namespace"]
        await pair.virtual.create(cluster_tabs, mine)

        async def reverted() -> None:
            obj = await pair.virtual.get(cluster_tabs, "shared-issuer")
            assert obj["spec"]["replicas"] == 3
            names = [o["metadata"]["name"] for o in (await pair.virtual.list(cluster_tabs))["items"]]
            assert names == ["shared-issuer"]

        await eventually(reverted, attempts=300, delay=0.1)
        # the host deletes it: so does the virtual cluster
        await pair.host.delete(cluster_tabs, "shared-issuer")

        async def gone() -> None:
            assert (await pair.virtual.list(cluster_tabs))["items"] == []

        await eventually(gone, attempts=300, delay=0.1)
    finally:
        await stop_syncer(pair)
