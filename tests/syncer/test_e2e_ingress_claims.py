"""Host claims through a running syncer: with isolation an Ingress that catches every host (a
rule without host, or ``spec.defaultBackend``) is refused naming the field; an old Ingress
edited to name a host another tenant serves does not take it."""

from __future__ import annotations

from vkube.client import Client
from vkube.client.resources import EVENTS, INGRESSES, NAMESPACES
from vkube.syncer import load_values

from tests.syncer.conftest import (HOST_NS, VC, eventually, getter, planes,  # noqa: F401
                                   start_syncer, stop_syncer)

BACKEND = {"service": {"name": "web", "port": {"number": 80}}}
PATHS = {"paths": [{"path": "/", "pathType": "Prefix", "backend": BACKEND}]}


async def test_isolated_catch_all_is_refused_named_hosts_are_synced(planes):  # noqa: F811
    vcp, hcp = planes
    async with Client(hcp.url, ssl=hcp.client_ssl()) as h:
        await h.create(NAMESPACES, {"metadata": {"name": HOST_NS}})
    pair = await start_syncer(vcp, hcp, load_values("isolation: {enabled: true}"))
    v, h = pair.virtual, pair.host
    try:
        bodies = {
            "default-only": {"defaultBackend": BACKEND},
            "no-host": {"rules": [{"host": "a.example.com", "http": PATHS}, {"http": PATHS}]},
            "named": {"rules": [{"host": "b.example.com", "http": PATHS}]},
        }
        for name, spec in bodies.items():
            await v.create(INGRESSES, {"metadata": {"name": name}, "spec": spec},
                           namespace="default")
        await eventually(getter(h, INGRESSES, f"named-x-default-x-{VC}"), attempts=600)

        async def said() -> dict[str, str]:
            events = (await v.list(EVENTS, namespace="default"))["items"]
            got = {e["involvedObject"]["name"]: e["message"] for e in events
                   if e["reason"] == "SyncRejected"}
            assert {"default-only", "no-host"} <= set(got), got
            return got
        got = await eventually(said, attempts=400)
        assert got["default-only"].startswith(
            "spec.defaultBackend: an Ingress that catches every host (a rule without host, or "
            "spec.defaultBackend) is not allowed in an isolated virtual cluster"), got
        assert got["no-host"].startswith("spec.rules[1]: an Ingress that catches every host")
        names = {i["metadata"]["name"] for i in (await h.list(INGRESSES, namespace=HOST_NS))["items"]}
        assert names == {f"named-x-default-x-{VC}"}, names
    finally:
        await stop_syncer(pair)


async def test_an_old_ingress_edited_to_a_younger_ones_host_is_refused(planes):  # noqa: F811
    """Age protects only names a copy already serves: a tenant's old Ingress edited to name
    a host another tenant's (younger) Ingress serves does not take it, and the older claim
    keeps what it served."""
    vcp, hcp = planes
    async with Client(hcp.url, ssl=hcp.client_ssl()) as h:
        await h.create(NAMESPACES, {"metadata": {"name": HOST_NS}})
        await h.create(NAMESPACES, {"metadata": {"name": "vkube-other"}})
    pair = await start_syncer(vcp, hcp, load_values(""))
    v, h = pair.virtual, pair.host
    hname = f"old-x-default-x-{VC}"
    try:
        await v.create(INGRESSES, {"metadata": {"name": "old"}, "spec": {"rules": [
            {"host": "mine.example.com", "http": PATHS}]}}, namespace="default")
        await eventually(getter(h, INGRESSES, hname), attempts=600)
        # another tenant's Ingress, younger than ours, serves shop.example.com
        await h.create(INGRESSES, {"metadata": {
            "name": "shop-x-team-x-other", "labels": {"vkube.io/managed-by": "other"}},
            "spec": {"rules": [{"host": "shop.example.com", "http": PATHS}]}},
            namespace="vkube-other")
        old = await v.get(INGRESSES, "old", namespace="default")
        old["spec"]["rules"].append({"host": "*.example.com", "http": PATHS})
        await v.update(INGRESSES, old)

        async def gone() -> None:
            names = {i["metadata"]["name"]
                     for i in (await h.list(INGRESSES, namespace=HOST_NS))["items"]}
            assert hname not in names, names
        await eventually(gone, attempts=600)

        async def said() -> str:
            events = (await v.list(EVENTS, namespace="default"))["items"]
            got = [e["message"] for e in events if e["reason"] == "HostRefused"
                   and e["involvedObject"]["name"] == "old"]
            assert got, events
            return got[-1]
        assert 'spec.rules[1].host: host "*.example.com" is already claimed by another Ingress' \
            ' on the host (it overlaps host "shop.example.com")' in await eventually(said)
    finally:
        await stop_syncer(pair)
