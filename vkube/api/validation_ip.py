"""Endpoint addresses as kube-apiserver validates them (``ValidateNonSpecialIP`` of
pkg/apis/core/validation, used by Endpoints and EndpointSlices): an address a Service routes
to is never unspecified, loopback or link-local (the node itself, or its cloud metadata
service at 169.254.169.254)."""

from __future__ import annotations

import ipaddress

from vkube.api.validation import Causes, invalid_value

_LINK_LOCAL_MULTICAST_V4 = ipaddress.ip_network("224.0.0.0/24")


def parse_ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address, read as Go's ``net.ParseIP`` does for our purposes: an IPv4-mapped IPv6
    address is its IPv4 address."""
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def special_ip_problems(ip: ipaddress.IPv4Address | ipaddress.IPv6Address, text: str) -> list[str]:
    """Why ``ip`` may not be an endpoint, in upstream's words (empty: it may)."""
    out = []
    if ip.is_unspecified:
        out.append(f"may not be unspecified ({text})")
    if ip.is_loopback:
        out.append("may not be in the loopback range (127.0.0.0/8, ::1/128)")
    if ip.is_link_local and not ip.is_multicast:
        out.append("may not be in the link-local range (169.254.0.0/16, fe80::/10)")
    if ip in _LINK_LOCAL_MULTICAST_V4 if ip.version == 4 else (
            ip.packed[0] == 0xFF and ip.packed[1] & 0x0F == 0x02):  # Go: ffX2::/16
        out.append("may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)")
    return out


def validate_non_special_ip(text: object, path: str, *, loopback_ok: bool = False) -> Causes:
    """``ValidateNonSpecialIP``: one cause per reason, as upstream lists them."""
    ip = parse_ip(text) if isinstance(text, str) else None
    if ip is None:
        return [invalid_value(path, text, "must be a valid IP address")]
    if loopback_ok and ip.is_loopback:
        return []
    return [invalid_value(path, text, why) for why in special_ip_problems(ip, text)]


#: the Services vkube's control plane keeps itself (vkube.cluster.incluster), by (namespace,
#: name): on the embedded host (one machine) the control plane serves on a loopback address,
#: which their Endpoints name, as do the syncer's host copies of them and the host Endpoints
#: of ``vkube-api`` (vkube.cluster.expose)
CONTROL_PLANE_SERVICES = frozenset({("default", "kubernetes"), ("kube-system", "kube-dns")})
_MANAGED_BY = "vkube.io/managed-by"


def control_plane_endpoints(obj: dict) -> bool:
    """May these Endpoints name a loopback address? Only vkube's own plumbing: a tenant's
    copy of any other Service is translated to another host name and refused there."""
    meta = obj.get("metadata") or {}
    if (meta.get("namespace"), meta.get("name")) in CONTROL_PLANE_SERVICES:
        return True
    labels, ann = meta.get("labels") or {}, meta.get("annotations") or {}
    if not labels.get(_MANAGED_BY):
        return False
    if meta.get("name") == "vkube-api" and labels.get("vkube.io/component") == "api":
        return True
    return (ann.get("vkube.io/object-namespace"), ann.get("vkube.io/object-name")) in \
        CONTROL_PLANE_SERVICES


def validate_slice_address(text: object, address_type: object, path: str) -> Causes:
    """An EndpointSlice address of an IPv4 or IPv6 slice (FQDN slices are not checked here)."""
    if address_type not in ("IPv4", "IPv6"):
        return []
    want = 4 if address_type == "IPv4" else 6
    try:
        ip = ipaddress.ip_address(text) if isinstance(text, str) else None
    except ValueError:
        ip = None
    if ip is None or ip.version != want:
        return [invalid_value(path, text, f"must be a valid IPv{want} address")]
    return validate_non_special_ip(text, path)
