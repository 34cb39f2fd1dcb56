"""With isolation an Ingress that catches every host (a rule without host, or
``spec.defaultBackend``) is refused by the syncer, naming the field; one that names its hosts
is synced."""

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
