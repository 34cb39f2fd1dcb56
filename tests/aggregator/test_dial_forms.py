"""Every spelling of this machine and of a cloud metadata service, on every route a tenant
chooses an address by (``vkube.netio.addresses`` behind ``vkube.apiserver.dialpolicy``): a
webhook ``clientConfig.url`` (by literal and by a name resolving to the form), an APIService
behind an ExternalName Service, a Node's address for ``logs``. One control plane with a
restricted policy; objects are created with the real kubectl, requests made over HTTPS. Names
resolve through an injected resolver, so no test needs DNS."""

from __future__ import annotations

import asyncio
import ipaddress
import json

import pytest

from tests.webhooks.probes import REFUSED, listener
from vkube.apiserver.dialpolicy import DialPolicy, Refused
from vkube.netio.addresses import embedded_ipv4, forbidden, parse_ip

#: (what it is, the address): each must be refused
REFUSED_FORMS = [
    ("loopback", "127.0.0.1"),
    ("loopback v6", "::1"),
    ("unspecified", "0.0.0.0"),
    ("unspecified v6", "::"),
    ("IPv4-mapped", "::ffff:127.0.0.1"),
    ("IPv4-compatible", "::127.0.0.1"),
    ("IPv4-translated", "::ffff:0:127.0.0.1"),
    ("NAT64 well-known", "64:ff9b::127.0.0.1"),
    ("NAT64 local-use /96", "64:ff9b:1::7f00:1"),
    ("NAT64 local-use /48 layout", "64:ff9b:1:7f00:0:100::"),
    ("6to4", "2002:7f00:1::1"),
    ("Teredo (obfuscated client)", "2001:0:4136:e378:8000:63bf:80ff:fffe"),
    ("ISATAP", "2001:db8::5efe:7f00:1"),
    ("ISATAP global", "2001:db8::200:5efe:a9fe:a9fe"),
    ("NAT64 of metadata", "64:ff9b::a9fe:a9fe"),
    ("6to4 of metadata", "2002:a9fe:a9fe::1"),
    ("link-local metadata", "169.254.169.254"),
    ("OpenStack IPv6 metadata", "fe80::a9fe:a9fe"),
    ("AWS IPv6 metadata", "fd00:ec2::254"),
    ("EKS Pod Identity IPv6", "fd00:ec2::23"),
    ("GCP IPv6 metadata", "fd20:ce::254"),
    ("Scaleway IPv6 metadata", "fd00:42::42"),
    ("Alibaba metadata", "100.100.100.200"),
    ("Oracle metadata", "192.0.0.192"),
    ("Azure WireServer", "168.63.129.16"),
    ("IPv4-mapped metadata", "::ffff:100.100.100.200"),
]
#: public addresses in the same spellings: dialled
ALLOWED_FORMS = ["203.0.113.7", "10.0.0.5", "2001:db8::7", "64:ff9b::cb00:7107", "2002:cb00:7107::1",
                 "2001:0:4136:e378:8000:63bf:3fff:fdd2", "::ffff:203.0.113.7", "100.100.100.201"]


def _name(i: int) -> str:
    return f"f{i}.probe.test"


async def _lookup(host: str) -> list:
    """The resolver the test injects: ``fN.probe.test`` answers form N, ``mixed.probe.test``
    a public and a loopback address, anything else does not exist."""
    if host == "mixed.probe.test":
        return [ipaddress.ip_address("203.0.113.7"), ipaddress.ip_address("64:ff9b::7f00:1")]
    for i, (_, form) in enumerate(REFUSED_FORMS):
        if host == _name(i):
            return [ipaddress.ip_address(form)]
    raise OSError(f"lookup {host}: no such host")


def test_the_address_rule_unwraps_every_ipv4_carrier() -> None:
    for what, form in REFUSED_FORMS:
        ip = parse_ip(form)
        assert ip is not None and forbidden(ip), (what, form)
    for form in ALLOWED_FORMS:
        ip = parse_ip(form)
        assert ip is not None and not forbidden(ip), form
    # the carried address is the one judged (de-obfuscated for Teredo)
    assert ipaddress.ip_address("127.0.0.1") in embedded_ipv4(parse_ip("2001:0:4136:e378:8000:63bf:80ff:fffe"))
    assert embedded_ipv4(parse_ip("64:ff9b::cb00:7107")) == [ipaddress.ip_address("203.0.113.7")]
    assert embedded_ipv4(parse_ip("2001:db8::7")) == []


async def test_the_policy_refuses_every_form_by_literal_and_by_name() -> None:
    policy = DialPolicy(restricted=True, lookup=_lookup)
    for i, (what, form) in enumerate(REFUSED_FORMS):
        for host in (form, f"[{form}]", _name(i)):
            with pytest.raises(Refused, match=REFUSED):
                await policy.resolve(host, 443)
    for host in ("mixed.probe.test", "metadata.google.internal", "METADATA.goog."):
        with pytest.raises(Refused, match=REFUSED):
            await policy.resolve(host, 443)
    for form in ALLOWED_FORMS:
        assert await policy.resolve(form, 443) == str(ipaddress.ip_address(form))


def _docs(port: int) -> list[dict]:
    """A webhook per form (by literal and by name, each matching one ConfigMap label), an
    ExternalName Service and an APIService per form, a Node at each form with a pod on it."""
    hooks, docs = [], []
    for i, (_, form) in enumerate(REFUSED_FORMS):
        host = f"[{form}]" if ":" in form else form
        for tag, url_host in (("ip", host), ("name", _name(i))):
            hooks.append({"name": f"{tag}{i}.probe.test", "admissionReviewVersions": ["v1"],
                          "sideEffects": "None", "failurePolicy": "Fail",
                          "clientConfig": {"url": f"https://{url_host}:{port}/x"},
                          "objectSelector": {"matchLabels": {"probe": f"{tag}{i}"}},
                          "rules": [{"operations": ["CREATE"], "apiGroups": [""],
                                     "apiVersions": ["v1"], "resources": ["configmaps"]}]})
        docs.append({"apiVersion": "v1", "kind": "Service", "metadata": {"name": f"ext{i}", "namespace": "default"},
                     "spec": {"type": "ExternalName", "externalName": _name(i), "ports": [{"port": port}]}})
        docs.append({"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
                     "metadata": {"name": f"v1.g{i}.probe.io"},
                     "spec": {"group": f"g{i}.probe.io", "version": "v1", "insecureSkipTLSVerify": True,
                              "groupPriorityMinimum": 1000, "versionPriority": 15,
                              "service": {"name": f"ext{i}", "namespace": "default", "port": port}}})
        docs.append({"apiVersion": "v1", "kind": "Node", "metadata": {"name": f"n{i}"},
                     "status": {"addresses": [{"type": "InternalIP", "address": form}],
                                "daemonEndpoints": {"kubeletEndpoint": {"Port": port}}}})
        docs.append({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"p{i}", "namespace": "default"},
                     "spec": {"nodeName": f"n{i}", "containers": [{"name": "c", "image": "x"}]}})
    docs.append({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
                 "metadata": {"name": "probe"}, "webhooks": hooks})
    return docs


async def test_every_form_is_refused_on_every_route(control_plane) -> None:
    cp = control_plane
    cp.cp.ctx.dial_policy = DialPolicy(restricted=True, lookup=_lookup)
    with listener() as lst:
        port = lst.getsockname()[1]
        manifest = "\n---\n".join(json.dumps(d) for d in _docs(port))
        await asyncio.to_thread(cp.kubectl, "apply", "-f", "-", input=manifest)
        async with cp.session() as http:
            # webhooks: each ConfigMap calls one webhook, which must not be dialled
            for i, (what, _) in enumerate(REFUSED_FORMS):
                for tag in ("ip", "name"):
                    cm = {"apiVersion": "v1", "kind": "ConfigMap",
                          "metadata": {"name": f"{tag}{i}", "labels": {"probe": f"{tag}{i}"}}}
                    async with http.post(f"{cp.url}/api/v1/namespaces/default/configmaps", json=cm) as r:
                        body = await r.json()
                    assert r.status == 500 and REFUSED in body["message"], (what, tag, body)
            # a Node's address for logs
            for i, (what, _) in enumerate(REFUSED_FORMS):
                async with http.get(f"{cp.url}/api/v1/namespaces/default/pods/p{i}/log") as r:
                    body = await r.json()
                assert r.status == 503 and REFUSED in body["message"], (what, body)

        # APIServices behind ExternalName names resolving to each form
        async def all_refused() -> None:
            out = await asyncio.to_thread(cp.kubectl, "get", "apiservices", "-o", "json")
            conds = {o["metadata"]["name"]: next((c for c in (o.get("status") or {}).get("conditions") or []
                                                  if c["type"] == "Available"), {})
                     for o in json.loads(out.stdout)["items"]}
            for i, (what, _) in enumerate(REFUSED_FORMS):
                cond = conds[f"v1.g{i}.probe.io"]
                assert cond.get("status") == "False" and REFUSED in cond.get("message", ""), (what, cond)

        deadline = asyncio.get_running_loop().time() + 90
        while True:
            try:
                await all_refused()
                break
            except AssertionError:
                if asyncio.get_running_loop().time() > deadline:
                    raise
                await asyncio.sleep(0.5)
        with pytest.raises(BlockingIOError):
            lst.accept()
