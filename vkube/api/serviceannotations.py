"""Service annotations a tenant may hand the host's shared controllers.

On a host Service, some annotations are read by controllers that serve every tenant and claim
something shared by all of them: a DNS name in the host's zones (external-dns), an address of
the host's pools or sharing another Service's address (MetalLB, Cilium LB IPAM, kube-vip,
PureLB), a Service of another cluster (Cilium's global services), or a resource of the host's
cloud account named by ID (an AWS certificate ARN, security groups, subnets, Elastic IPs; an
Azure public IP or resource group; a GCP reserved address). A tenant writing them would take a
name, an address or a certificate that is another tenant's or the host's. They are not synced
unless the virtual cluster's values allow the key (``sync.services.allowedAnnotations``: the
platform team's decision, e.g. when each tenant has its own DNS zone). Everything else (a
cloud load balancer's own settings, your own keys) passes as written."""

from __future__ import annotations

from dataclasses import dataclass

#: every key under these prefixes claims something shared
SHARED_PREFIXES = (
    "external-dns.alpha.kubernetes.io/",  # hostname, internal-hostname, target, ...
    "metallb.universe.tf/", "metallb.io/",  # loadBalancerIPs, address-pool, allow-shared-ip
    "lbipam.cilium.io/", "service.cilium.io/", "io.cilium/",  # IPAM ips/sharing key, global
    "kube-vip.io/", "purelb.io/",
)
#: single keys naming a host cloud account's resources
SHARED_KEYS = frozenset({
    "service.beta.kubernetes.io/aws-load-balancer-ssl-cert",
    "service.beta.kubernetes.io/aws-load-balancer-security-groups",
    "service.beta.kubernetes.io/aws-load-balancer-extra-security-groups",
    "service.beta.kubernetes.io/aws-load-balancer-subnets",
    "service.beta.kubernetes.io/aws-load-balancer-eip-allocations",
    "service.beta.kubernetes.io/aws-load-balancer-private-ipv4-addresses",
    "service.beta.kubernetes.io/aws-load-balancer-ipv6-addresses",
    "service.beta.kubernetes.io/aws-load-balancer-access-log-s3-bucket-name",
    "service.beta.kubernetes.io/azure-load-balancer-resource-group",
    "service.beta.kubernetes.io/azure-pip-name",
    "service.beta.kubernetes.io/azure-pip-prefix-id",
    "service.beta.kubernetes.io/azure-load-balancer-ipv4",
    "service.beta.kubernetes.io/azure-load-balancer-ipv6",
    "service.beta.kubernetes.io/azure-pls-ip-configuration-subnet",
    "networking.gke.io/load-balancer-ip-addresses",
    "networking.gke.io/internal-load-balancer-subnet",
    "cloud.google.com/neg",
})


def shared(key: str) -> bool:
    """Whether ``key`` claims something every tenant shares (see the module docstring)."""
    return key in SHARED_KEYS or key.startswith(SHARED_PREFIXES)


def allowed_by(key: str, allowed: tuple[str, ...]) -> bool:
    """``allowed`` lists keys, or prefixes ending in ``/`` (every key under them)."""
    return any(key == a or (a.endswith("/") and key.startswith(a)) for a in allowed)


@dataclass(frozen=True)
class Judgement:
    #: what goes to the host
    annotations: dict[str, str]
    #: the keys left out, sorted
    withheld: tuple[str, ...]

    def message(self) -> str:
        keys = ", ".join(self.withheld)
        return (f"metadata.annotations: {keys}: not synced to the host: a controller shared by "
                "every tenant reads it to claim a DNS name, an address or a cloud resource of "
                "the host; allow it in sync.services.allowedAnnotations if this cluster may")


def judge(annotations: dict[str, str], allowed: tuple[str, ...] = ()) -> Judgement:
    kept: dict[str, str] = {}
    withheld: list[str] = []
    for key, value in annotations.items():
        if shared(key) and not allowed_by(key, allowed):
            withheld.append(key)
        else:
            kept[key] = value
    return Judgement(kept, tuple(sorted(withheld)))
