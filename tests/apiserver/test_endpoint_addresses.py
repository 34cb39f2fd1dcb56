"""Endpoints and EndpointSlices never name the node itself, as kube-apiserver validates them
(``ValidateNonSpecialIP``): the real kubectl sees upstream's messages."""

from __future__ import annotations

import asyncio
import json

from tests.conftest import RunningControlPlane

SPECIAL = {
    "0.0.0.0": "may not be unspecified (0.0.0.0)",
    "127.0.0.1": "may not be in the loopback range (127.0.0.0/8, ::1/128)",
    "169.254.169.254": "may not be in the link-local range (169.254.0.0/16, fe80::/10)",
    "224.0.0.1": "may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)",
}


def _endpoints(name: str, ns: str, ips: list[str]) -> dict:
    return {"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": name, "namespace": ns},
            "subsets": [{"addresses": [{"ip": ip} for ip in ips], "ports": [{"port": 80}]}]}


def _slice(name: str, ips: list[str], atype: str = "IPv4") -> dict:
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": atype,
            "metadata": {"name": name, "namespace": "default",
                         "labels": {"kubernetes.io/service-name": "svc"}},
            "endpoints": [{"addresses": [ip]} for ip in ips]}


async def test_special_endpoint_addresses_are_refused(control_plane: RunningControlPlane):
    async def apply(obj: dict):
        return await asyncio.to_thread(control_plane.kubectl, "apply", "-f", "-",
                                       input=json.dumps(obj), check=False)

    out = await apply(_endpoints("svc", "default", [*SPECIAL, "::1"]))
    assert out.returncode != 0
    assert 'The Endpoints "svc" is invalid' in out.stderr, out.stderr
    for i, (ip, why) in enumerate(SPECIAL.items()):
        assert f'subsets[0].addresses[{i}].ip: Invalid value: "{ip}": {why}' in out.stderr
    assert ('subsets[0].addresses[4].ip: Invalid value: "::1": may not be in the loopback '
            'range (127.0.0.0/8, ::1/128)') in out.stderr

    out = await apply(_slice("svc-a", list(SPECIAL)))
    assert out.returncode != 0 and 'The EndpointSlice "svc-a" is invalid' in out.stderr
    for i, (ip, why) in enumerate(SPECIAL.items()):
        assert f'endpoints[{i}].addresses[0]: Invalid value: "{ip}": {why}' in out.stderr
    out = await apply(_slice("svc-b", ["fe80::1"], "IPv6"))
    assert 'endpoints[0].addresses[0]: Invalid value: "fe80::1": may not be in the link-local' \
        in out.stderr
    out = await apply(_slice("svc-c", ["::1"]))
    assert 'endpoints[0].addresses[0]: Invalid value: "::1": must be a valid IPv4 address' \
        in out.stderr

    for obj in (_endpoints("svc", "default", ["10.1.2.3", "8.8.8.8"]),
                _slice("svc-a", ["10.1.2.3"]),
                # the control plane's own Service names the (loopback) address it serves on
                _endpoints("kubernetes", "default", ["127.0.0.1"])):
        out = await apply(obj)
        assert out.returncode == 0, out.stderr
