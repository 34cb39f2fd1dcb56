"""Table columns of the smaller API groups (rbac, networking, storage, policy, scheduling,
coordination, node, discovery), as kubectl's server-side printers compute them."""

from __future__ import annotations

from typing import Any

from vkube.api.kinds import Column
from vkube.api.meta import Obj
from vkube.api.printers_workloads import selector_text
from vkube.api.tables import NONE, age_column


def _spec(o: Obj) -> Obj:
    return o.get("spec") or {}


def _created_at() -> Column:
    return Column("Created At", lambda o: (o.get("metadata") or {}).get("creationTimestamp", ""),
                  description="Timestamp when this object was created")


ROLE_COLUMNS = (_created_at(),)


def _subjects(o: Obj, kind: str) -> str:
    names = []
    for s in o.get("subjects") or ():
        if s.get("kind") != kind:
            continue
        if kind == "ServiceAccount":
            names.append(f"{s.get('namespace', '')}/{s.get('name', '')}")
        else:
            names.append(s.get("name", ""))
    return ", ".join(names)


BINDING_COLUMNS = (
    Column("Role", lambda o: f"{(o.get('roleRef') or {}).get('kind', '')}/{(o.get('roleRef') or {}).get('name', '')}", description="RoleRef is the reference to the role."),
    age_column(),
    Column("Users", lambda o: _subjects(o, "User"), priority=1, description="Users in the binding."),
    Column("Groups", lambda o: _subjects(o, "Group"), priority=1, description="Groups in the binding."),
    Column("ServiceAccounts", lambda o: _subjects(o, "ServiceAccount"), priority=1, description="ServiceAccounts in the binding."),
)


def _ingress_hosts(o: Obj) -> str:
    hosts = [r.get("host") for r in _spec(o).get("rules") or () if r.get("host")]
    if not hosts:
        return "*"
    shown = ",".join(hosts[:4])
    return f"{shown} + {len(hosts) - 4} more..." if len(hosts) > 4 else shown


def _ingress_address(o: Obj) -> str:
    ingress = (((o.get("status") or {}).get("loadBalancer")) or {}).get("ingress") or []
    return ",".join(i.get("ip") or i.get("hostname") for i in ingress if i.get("ip") or i.get("hostname"))


INGRESS_COLUMNS = (
    Column("Class", lambda o: _spec(o).get("ingressClassName") or NONE, description="The name of the IngressClass resource."),
    Column("Hosts", _ingress_hosts, description="Hosts that incoming requests are matched against before the ingress rule"),
    Column("Address", _ingress_address, description="Address is a list containing ingress points for the load-balancer"),
    Column("Ports", lambda o: "80, 443" if _spec(o).get("tls") else "80", description="Ports of TLS configurations that open"),
    age_column(),
)


def _params(o: Obj) -> str:
    p = _spec(o).get("parameters")
    if not p:
        return NONE
    group = p.get("apiGroup")
    kind = f"{p.get('kind', '')}.{group}" if group else p.get("kind", "")
    return f"{kind}/{p.get('name', '')}"


INGRESSCLASS_COLUMNS = (
    Column("Controller", lambda o: _spec(o).get("controller", ""), description="Controller that is responsible for handling this class"),
    Column("Parameters", _params, description="A reference to a resource with additional parameters"),
    age_column(),
)
NETWORKPOLICY_COLUMNS = (
    Column("Pod-Selector", lambda o: selector_text(_spec(o).get("podSelector")) or NONE, description="Selects the pods to which this NetworkPolicy object applies."),
    age_column(),
)


def _storageclass_name(o: Obj) -> str:
    meta = o.get("metadata") or {}
    ann = meta.get("annotations") or {}
    default = "true" in (ann.get("storageclass.kubernetes.io/is-default-class"),
                         ann.get("storageclass.beta.kubernetes.io/is-default-class"))
    return meta.get("name", "") + (" (default)" if default else "")


STORAGECLASS_COLUMNS = (
    Column("Name", _storageclass_name, format="name", description="Name must be unique within a namespace."),
    Column("Provisioner", lambda o: o.get("provisioner", ""), description="Indicates the type of the provisioner."),
    Column("ReclaimPolicy", lambda o: o.get("reclaimPolicy", "Delete"), description="Indicates the type of the reclaim policy."),
    Column("VolumeBindingMode", lambda o: o.get("volumeBindingMode", "Immediate"), description="Indicates how PersistentVolumeClaims should be provisioned and bound"),
    Column("AllowVolumeExpansion", lambda o: "true" if o.get("allowVolumeExpansion") else "false", description="Indicates whether the storage class allow volume expand"),
    age_column(),
)


def _int_or_na(value: Any) -> str:
    return "N/A" if value is None else str(value)


PDB_COLUMNS = (
    Column("Min Available", lambda o: _int_or_na(_spec(o).get("minAvailable")), description="The minimum number of pods that must be available simultaneously"),
    Column("Max Unavailable", lambda o: _int_or_na(_spec(o).get("maxUnavailable")), description="The maximum number of pods that may be unavailable simultaneously"),
    Column("Allowed Disruptions", lambda o: (o.get("status") or {}).get("disruptionsAllowed", 0), type="integer", description="Calculated number of pods that may be disrupted at this time"),
    age_column(),
)
PRIORITYCLASS_COLUMNS = (
    Column("Value", lambda o: o.get("value", 0), type="integer", description="The value of this priority class."),
    Column("Global-Default", lambda o: bool(o.get("globalDefault")), type="boolean", description="globalDefault specifies whether this PriorityClass should be considered as the default priority."),
    age_column(),
    Column("PreemptionPolicy", lambda o: o.get("preemptionPolicy", ""), description="preemptionPolicy is the Policy for preempting pods with lower priority."),
)
LEASE_COLUMNS = (
    Column("Holder", lambda o: _spec(o).get("holderIdentity") or "", description="The holder of the lease"),
    age_column(),
)
RUNTIMECLASS_COLUMNS = (
    Column("Handler", lambda o: o.get("handler", ""), description="The underlying runtime and configuration that the CRI implementation will use to handle pods of this class."),
    age_column(),
)


def _slice_ports(o: Obj) -> str:
    ports = [str(p.get("port")) for p in o.get("ports") or () if p.get("port") is not None]
    if not o.get("ports"):
        return NONE
    return ",".join(ports) or "<unset>"


def _slice_endpoints(o: Obj) -> str:
    addrs = [a for e in o.get("endpoints") or () for a in e.get("addresses") or ()]
    if not addrs:
        return "<unset>"
    shown = ",".join(addrs[:3])
    return f"{shown} + {len(addrs) - 3} more..." if len(addrs) > 3 else shown


ENDPOINTSLICE_COLUMNS = (
    Column("AddressType", lambda o: o.get("addressType", ""), description="Type of address carried by this EndpointSlice."),
    Column("Ports", _slice_ports, description="Ports advertised by this EndpointSlice."),
    Column("Endpoints", _slice_endpoints, description="Endpoints represented by this EndpointSlice."),
    age_column(),
)
