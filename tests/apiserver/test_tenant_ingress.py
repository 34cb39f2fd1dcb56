"""The embedded host's admission of namespace tenants' Ingresses
(``vkube.apiserver.admission.tenantingress``): in a namespace labelled
``vkube.io/tenancy: namespace`` the syncer's Ingress rules apply (annotation allow-list, no
catch-all or top-level wildcard, host claims against other namespaces' Ingresses); elsewhere
nothing changes. On a control plane in this process, through its HTTPS API; the ``vkube create
--tenancy namespace`` path is tests/isolation/test_e2e_namespace_tenancy.py."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.conftest import admin_client
from vkube.api import errors
from vkube.apiserver.admission.tenantingress import TenantIngress
from vkube.apiserver.server import ControlPlane
from vkube.client.resources import INGRESSES, NAMESPACES


@pytest.fixture
async def host(tmp_path: Path) -> AsyncIterator:
    cp = ControlPlane(data_dir=tmp_path / "host", extra_admission=[TenantIngress()])
    await cp.start()
    client = admin_client(cp)
    try:
        for name, labels in (("team", {"vkube.io/tenancy": "namespace"}),
                             ("other", {"vkube.io/tenancy": "namespace"}), ("owner", {})):
            await client.create(NAMESPACES, {"apiVersion": "v1", "kind": "Namespace",
                                             "metadata": {"name": name, "labels": labels}})
        yield client
    finally:
        await client.close()
        await cp.stop()


def ingress(name: str, *hosts: str, annotations: dict | None = None, default: bool = False) -> dict:
    backend = {"service": {"name": "web", "port": {"number": 80}}}
    spec: dict = {"rules": [{"host": h, "http": {"paths": [{"path": "/", "pathType": "Prefix",
                                                             "backend": backend}]}} if h else
                            {"http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": backend}]}}
                            for h in hosts]}
    if default:
        spec["defaultBackend"] = backend
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": name, "annotations": annotations or {}}, "spec": spec}


async def refused(client, ns: str, body: dict, *words: str) -> None:
    with pytest.raises(errors.Forbidden) as info:
        await client.create(INGRESSES, body, namespace=ns)
    message = str(info.value)
    assert message.startswith(f'ingresses.networking.k8s.io "{body["metadata"]["name"]}" is forbidden: '), message
    for w in words:
        assert w in message, message


async def test_a_namespace_tenants_ingress_meets_the_syncers_rules(host) -> None:
    c = host
    nginx = "nginx.ingress.kubernetes.io/"
    # outside tenant namespaces nothing changes (the host owner's business)
    await c.create(INGRESSES, ingress("own", "shop.example.com", annotations={
        nginx + "configuration-snippet": "more_set_headers x;"}), namespace="owner")
    await c.create(INGRESSES, ingress("catch", "", default=True), namespace="owner")

    await refused(c, "team", ingress("snip", "a.example.com", annotations={
        nginx + "server-snippet": "location / { }"}), f"metadata.annotations[{nginx}server-snippet]",
        "snippets are not allowed")
    await refused(c, "team", ingress("url", "a.example.com", annotations={
        nginx + "auth-url": "http://127.0.0.1:8080/"}), f"metadata.annotations[{nginx}auth-url]")
    await refused(c, "team", ingress("sec", "a.example.com", annotations={
        nginx + "auth-secret": "owner/creds", nginx + "auth-type": "basic"}), "another namespace")
    await refused(c, "team", ingress("tld", "*.org"), "spec.rules[0].host", "top-level domain")
    await refused(c, "team", ingress("all", ""), "spec.rules[0]", "catches every host")
    await refused(c, "team", ingress("dflt", "a.example.com", default=True), "spec.defaultBackend")
    # another namespace's claims: exact, overlapping wildcard, an alias
    await refused(c, "team", ingress("steal", "shop.example.com"), 'host "shop.example.com" is already claimed')
    await refused(c, "team", ingress("wild", "*.example.com"), "(it overlaps host \"shop.example.com\")")
    await refused(c, "team", ingress("alias", "a.example.com", annotations={
        nginx + "server-alias": "shop.example.com"}), f"metadata.annotations[{nginx}server-alias]")
    assert (await c.list(INGRESSES, namespace="team"))["items"] == []

    # what passes: its own names, its own Secret, the allow-listed keys
    mine = await c.create(INGRESSES, ingress("a", "a.example.com", annotations={
        nginx + "auth-secret": "creds", nginx + "auth-type": "basic", "cert-manager.io/issuer": "x"}),
        namespace="team")
    await c.create(INGRESSES, ingress("a2", "b.a.example.com"), namespace="team")  # its own overlap
    # another tenant cannot take it; the older claim keeps it through its edits
    await refused(c, "other", ingress("a", "a.example.com"), 'host "a.example.com" is already claimed')
    # creationTimestamp has seconds: a claim made in the same second is ordered by namespace/name
    await asyncio.sleep(1.1)
    await c.create(INGRESSES, ingress("later", "a.example.com"), namespace="owner")  # not judged
    mine["metadata"]["labels"] = {"edited": "yes"}
    mine = await c.update(INGRESSES, mine)
    # an edit adding a name someone else holds is refused
    mine["spec"]["rules"].append(ingress("x", "shop.example.com")["spec"]["rules"][0])
    with pytest.raises(errors.Forbidden, match='spec.rules\\[1\\].host: host "shop.example.com"'):
        await c.update(INGRESSES, mine)
