"""Table columns of core/v1 kinds, computed as kubectl's server-side printers compute them
(``pkg/printers/internalversion/printers.go``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from vkube.api.kinds import Column
from vkube.api.meta import Obj
from vkube.api.tables import NONE, age_column, parse_time, relative, since


def _meta(o: Obj) -> Obj:
    return o.get("metadata") or {}


def _spec(o: Obj) -> Obj:
    return o.get("spec") or {}


def _status(o: Obj) -> Obj:
    return o.get("status") or {}


def format_labels(labels: Any) -> str:
    """``labels.FormatLabels``: sorted ``k=v`` pairs, ``<none>`` when empty."""
    if not labels:
        return NONE
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


# --- pods ----------------------------------------------------------------------------------


def _restartable_init(container: Obj | None) -> bool:
    return bool(container) and container.get("restartPolicy") == "Always"


def _terminated_reason(term: Obj, prefix: str = "") -> str:
    if term.get("reason"):
        return prefix + term["reason"]
    if term.get("signal"):
        return f"{prefix}Signal:{term['signal']}"
    return f"{prefix}ExitCode:{term.get('exitCode', 0)}"


def pod_summary(pod: Obj) -> tuple[str, str, int, str | None]:
    """(READY, STATUS, restarts, last restart time) as kubectl's ``printPod`` computes them."""
    spec, status = _spec(pod), _status(pod)
    init_specs = {c.get("name"): c for c in spec.get("initContainers") or ()}
    total = len(spec.get("containers") or ()) + sum(_restartable_init(c) for c in init_specs.values())
    ready = restarts = sidecar_restarts = 0
    last_restart: datetime | None = None
    last_sidecar: datetime | None = None
    reason = status.get("reason") or status.get("phase") or ""
    for cond in status.get("conditions") or ():
        if cond.get("type") == "PodScheduled" and cond.get("reason") == "SchedulingGated":
            reason = "SchedulingGated"

    def later(current: datetime | None, cs: Obj) -> datetime | None:
        finished = parse_time(((cs.get("lastState") or {}).get("terminated") or {}).get("finishedAt"))
        if finished and (current is None or finished > current):
            return finished
        return current

    initializing = False
    init_statuses = status.get("initContainerStatuses") or ()
    for i, cs in enumerate(init_statuses):
        restarts += int(cs.get("restartCount") or 0)
        last_restart = later(last_restart, cs)
        sidecar = _restartable_init(init_specs.get(cs.get("name")))
        if sidecar:
            sidecar_restarts += int(cs.get("restartCount") or 0)
            last_sidecar = later(last_sidecar, cs)
        state = cs.get("state") or {}
        term, waiting = state.get("terminated"), state.get("waiting")
        if term is not None and term.get("exitCode", 0) == 0:
            continue
        if sidecar and cs.get("started"):
            ready += bool(cs.get("ready"))
            continue
        if term is not None:
            reason = _terminated_reason(term, "Init:")
        elif waiting and waiting.get("reason") and waiting["reason"] != "PodInitializing":
            reason = "Init:" + waiting["reason"]
        else:
            reason = f"Init:{i}/{len(init_specs)}"
        initializing = True
        break
    initialized = any(c.get("type") == "Initialized" and c.get("status") == "True"
                      for c in status.get("conditions") or ())
    if not initializing or initialized:
        restarts, last_restart = sidecar_restarts, last_sidecar
        has_running = False
        for cs in reversed(status.get("containerStatuses") or ()):
            restarts += int(cs.get("restartCount") or 0)
            last_restart = later(last_restart, cs)
            state = cs.get("state") or {}
            waiting, term = state.get("waiting"), state.get("terminated")
            if waiting and waiting.get("reason"):
                reason = waiting["reason"]
            elif term is not None:
                reason = _terminated_reason(term)
            elif cs.get("ready") and state.get("running") is not None:
                has_running = True
                ready += 1
        if reason == "Completed" and has_running:
            pod_ready = any(c.get("type") == "Ready" and c.get("status") == "True"
                            for c in status.get("conditions") or ())
            reason = "Running" if pod_ready else "NotReady"
    if _meta(pod).get("deletionTimestamp"):
        if status.get("reason") == "NodeLost":
            reason = "Unknown"
        elif status.get("phase") not in ("Succeeded", "Failed"):
            reason = "Terminating"
    last = last_restart.isoformat().replace("+00:00", "Z") if last_restart else None
    return f"{ready}/{total}", reason, restarts, last


def _pod_restarts(pod: Obj) -> Any:
    _, _, restarts, last = pod_summary(pod)
    if restarts and last:
        return relative(lambda now: f"{restarts} ({since(last, now)} ago)")
    return str(restarts)


def _pod_ip(pod: Obj) -> str:
    ips = _status(pod).get("podIPs") or []
    ip = (ips[0].get("ip") if ips else "") or _status(pod).get("podIP") or ""
    return ip or NONE


def _readiness_gates(pod: Obj) -> str:
    gates = _spec(pod).get("readinessGates") or []
    if not gates:
        return NONE
    conds = {c.get("type"): c.get("status") for c in _status(pod).get("conditions") or ()}
    true = sum(1 for g in gates if conds.get(g.get("conditionType")) == "True")
    return f"{true}/{len(gates)}"


POD_COLUMNS = (
    Column("Ready", lambda o: pod_summary(o)[0], description="The aggregate readiness state of this pod for accepting traffic."),
    Column("Status", lambda o: pod_summary(o)[1], description="The aggregate status of the containers in this pod."),
    Column("Restarts", _pod_restarts, description="The number of times the containers in this pod have been restarted and when the last container in this pod has restarted."),
    age_column(),
    Column("IP", _pod_ip, priority=1, description="IP address allocated to the pod. Routable at least within the cluster."),
    Column("Node", lambda o: _spec(o).get("nodeName") or NONE, priority=1, description="Name of the Node the Pod is scheduled on."),
    Column("Nominated Node", lambda o: _status(o).get("nominatedNodeName") or NONE, priority=1, description="Name of the node the pod is nominated for preemption."),
    Column("Readiness Gates", _readiness_gates, priority=1, description="If specified, all readiness gates will be evaluated for pod readiness."),
)


def pod_row_conditions(pod: Obj) -> list[Obj]:
    """Succeeded/Failed pods carry a ``Completed`` row condition, as in Kubernetes."""
    phase = _status(pod).get("phase")
    if phase == "Succeeded":
        return [{"type": "Completed", "status": "True", "reason": "Succeeded",
                 "message": "The pod has completed successfully."}]
    if phase == "Failed":
        return [{"type": "Completed", "status": "True", "reason": "Failed",
                 "message": "The pod has failed."}]
    return []


# --- services, endpoints -------------------------------------------------------------------


def _lb_ips(o: Obj) -> list[str]:
    ingress = (_status(o).get("loadBalancer") or {}).get("ingress") or []
    return [i.get("ip") or i.get("hostname") for i in ingress if i.get("ip") or i.get("hostname")]


def service_external_ip(o: Obj) -> str:
    spec = _spec(o)
    stype, external = spec.get("type", "ClusterIP"), list(spec.get("externalIPs") or ())
    if stype in ("ClusterIP", "NodePort"):
        return ",".join(external) if external else NONE
    if stype == "LoadBalancer":
        ips = _lb_ips(o) + external
        return ",".join(ips) if ips else "<pending>"
    if stype == "ExternalName":
        return spec.get("externalName") or ""
    return "<unknown>"


def service_ports(o: Obj) -> str:
    pieces = []
    for p in _spec(o).get("ports") or ():
        proto = p.get("protocol", "TCP")
        if p.get("nodePort"):
            pieces.append(f"{p.get('port')}:{p['nodePort']}/{proto}")
        else:
            pieces.append(f"{p.get('port')}/{proto}")
    return ",".join(pieces) or NONE


SERVICE_COLUMNS = (
    Column("Type", lambda o: _spec(o).get("type", "ClusterIP"), description="The type of the service."),
    Column("Cluster-IP", lambda o: _spec(o).get("clusterIP") or NONE, description="The IP address of the service."),
    Column("External-IP", service_external_ip, description="The external IP address of the service."),
    Column("Port(s)", service_ports, description="The ports of the service."),
    age_column(),
    Column("Selector", lambda o: format_labels(_spec(o).get("selector")), priority=1, description="The label selector of the service."),
)


def format_endpoints(o: Obj, limit: int = 3) -> str:
    subsets = o.get("subsets") or []
    if not subsets:
        return NONE
    items: list[str] = []
    count = 0
    for ss in subsets:
        addresses = [a.get("ip", "") for a in ss.get("addresses") or ()]
        ports = ss.get("ports") or []
        if not ports:
            count += len(addresses)
            items += addresses
        for port in ports:
            count += len(addresses)
            for ip in addresses:
                host = f"[{ip}]" if ":" in ip else ip
                items.append(f"{host}:{port.get('port')}")
    shown = ",".join(items[:limit])
    if count > limit:
        return f"{shown} + {count - limit} more..."
    return shown


ENDPOINTS_COLUMNS = (
    Column("Endpoints", format_endpoints, description="Endpoints of the service"),
    age_column(),
)


# --- config, namespaces, accounts ----------------------------------------------------------

CONFIGMAP_COLUMNS = (
    Column("Data", lambda o: len(o.get("data") or {}) + len(o.get("binaryData") or {}), type="integer",
           description="Data contains the configuration data."),
    age_column(),
)
SECRET_COLUMNS = (
    Column("Type", lambda o: o.get("type", ""), description="The type of the secret"),
    Column("Data", lambda o: len(o.get("data") or {}), type="integer", description="The number of data entries"),
    age_column(),
)
NAMESPACE_COLUMNS = (
    Column("Status", lambda o: _status(o).get("phase", ""), description="The status of the namespace"),
    age_column(),
)
SERVICEACCOUNT_COLUMNS = (
    Column("Secrets", lambda o: len(o.get("secrets") or ()), type="integer", description="Secrets is a list of the secrets in the same namespace that pods running using this ServiceAccount are allowed to use."),
    age_column(),
)


def _quota_pairs(o: Obj, prefix: str | None) -> str:
    hard, used = _status(o).get("hard") or _spec(o).get("hard") or {}, _status(o).get("used") or {}
    pairs = []
    for name in sorted(hard):
        is_limit = name.startswith("limits.")
        if (prefix == "limits." and not is_limit) or (prefix is None and is_limit):
            continue
        pairs.append(f"{name}: {used.get(name, '0')}/{hard[name]}")
    return ", ".join(pairs)


RESOURCEQUOTA_COLUMNS = (
    age_column(),
    Column("Request", lambda o: _quota_pairs(o, None), description="Request represents a minimum amount of cpu/memory that a container may consume."),
    Column("Limit", lambda o: _quota_pairs(o, "limits."), description="Limits control the maximum amount of cpu/memory that a container may use independent of contention on the node."),
)
LIMITRANGE_COLUMNS = (
    Column("Created At", lambda o: _meta(o).get("creationTimestamp", ""),
           description="Timestamp when this object was created"),
)


def _containers(o: Obj, template_path: tuple[str, ...]) -> list[Obj]:
    cur: Any = o
    for key in template_path:
        cur = (cur or {}).get(key) if isinstance(cur, dict) else None
    return list(((cur or {}).get("spec") or {}).get("containers") or ()) if isinstance(cur, dict) else []


def container_names(o: Obj, path: tuple[str, ...] = ("spec", "template")) -> str:
    return ",".join(c.get("name", "") for c in _containers(o, path))


def container_images(o: Obj, path: tuple[str, ...] = ("spec", "template")) -> str:
    return ",".join(c.get("image", "") for c in _containers(o, path))


RC_COLUMNS = (
    Column("Desired", lambda o: _spec(o).get("replicas", 0), type="integer", description="Number of desired pods."),
    Column("Current", lambda o: _status(o).get("replicas", 0), type="integer", description="Number of actual pods."),
    Column("Ready", lambda o: _status(o).get("readyReplicas", 0), type="integer", description="Number of pods ready."),
    age_column(),
    Column("Containers", container_names, priority=1, description="Names of each container in the template."),
    Column("Images", container_images, priority=1, description="Images referenced by each container in the template."),
    Column("Selector", lambda o: format_labels(_spec(o).get("selector")), priority=1, description="The label selector of the replication controller."),
)
PODTEMPLATE_COLUMNS = (
    Column("Containers", lambda o: container_names(o, ("template",)), description="Names of each container in the template."),
    Column("Images", lambda o: container_images(o, ("template",)), description="Images referenced by each container in the template."),
    Column("Pod Labels", lambda o: format_labels(((o.get("template") or {}).get("metadata") or {}).get("labels")), description="The labels for the pod template."),
)


# --- nodes, volumes, events ----------------------------------------------------------------


def node_status(o: Obj) -> str:
    conds = {c.get("type"): c.get("status") for c in _status(o).get("conditions") or ()}
    parts = []
    if "Ready" in conds:
        parts.append("Ready" if conds["Ready"] == "True" else "NotReady")
    else:
        parts.append("Unknown")
    if _spec(o).get("unschedulable"):
        parts.append("SchedulingDisabled")
    return ",".join(parts)


def node_roles(o: Obj) -> str:
    roles = set()
    for key, value in (_meta(o).get("labels") or {}).items():
        if key.startswith("node-role.kubernetes.io/") and key != "node-role.kubernetes.io/":
            roles.add(key.split("/", 1)[1])
        elif key == "kubernetes.io/role" and value:
            roles.add(value)
    return ",".join(sorted(roles)) or NONE


def _node_address(o: Obj, kind: str) -> str:
    for addr in _status(o).get("addresses") or ():
        if addr.get("type") == kind:
            return addr.get("address") or NONE
    return NONE


def _node_info(o: Obj, key: str) -> str:
    return (_status(o).get("nodeInfo") or {}).get(key) or "<unknown>"


NODE_COLUMNS = (
    Column("Status", node_status, description="The status of the node"),
    Column("Roles", node_roles, description="The roles of the node"),
    age_column(),
    Column("Version", lambda o: (_status(o).get("nodeInfo") or {}).get("kubeletVersion", ""), description="Kubelet Version reported by the node."),
    Column("Internal-IP", lambda o: _node_address(o, "InternalIP"), priority=1, description="List of addresses reachable to the node. Queried from cloud provider, if available."),
    Column("External-IP", lambda o: _node_address(o, "ExternalIP"), priority=1, description="List of addresses reachable to the node. Queried from cloud provider, if available."),
    Column("OS-Image", lambda o: _node_info(o, "osImage"), priority=1, description="OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy))."),
    Column("Kernel-Version", lambda o: _node_info(o, "kernelVersion"), priority=1, description="Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64)."),
    Column("Container-Runtime", lambda o: _node_info(o, "containerRuntimeVersion"), priority=1, description="ContainerRuntime Version reported by the node through runtime remote API (e.g. containerd://1.4.2)."),
)

_MODES = (("ReadWriteOnce", "RWO"), ("ReadOnlyMany", "ROX"), ("ReadWriteMany", "RWX"),
          ("ReadWriteOncePod", "RWOP"))


def access_modes(modes: Any) -> str:
    modes = modes or ()
    return ",".join(short for long, short in _MODES if long in modes)


def _storage_class(o: Obj) -> str:
    return (_spec(o).get("storageClassName")
            or (_meta(o).get("annotations") or {}).get("volume.beta.kubernetes.io/storage-class") or "")


def _pvc_phase(o: Obj) -> str:
    return "Terminating" if _meta(o).get("deletionTimestamp") else _status(o).get("phase", "")


def _pvc_capacity(o: Obj) -> str:
    if not _spec(o).get("volumeName"):
        return ""
    return (_status(o).get("capacity") or {}).get("storage", "")


def _pvc_modes(o: Obj) -> str:
    return access_modes(_status(o).get("accessModes")) if _spec(o).get("volumeName") else ""


PVC_COLUMNS = (
    Column("Status", _pvc_phase, description="Phase represents the current phase of PersistentVolumeClaim."),
    Column("Volume", lambda o: _spec(o).get("volumeName", ""), description="VolumeName is the binding reference to the PersistentVolume backing this claim."),
    Column("Capacity", _pvc_capacity, description="Capacity represents the actual resources of the underlying volume."),
    Column("Access Modes", _pvc_modes, description="AccessModes contains the desired access modes the volume should have."),
    Column("StorageClass", _storage_class, description="StorageClassName is the name of the StorageClass required by the claim."),
    Column("VolumeAttributesClass", lambda o: _spec(o).get("volumeAttributesClassName") or "<unset>", description="VolumeAttributesClassName may be used to set the VolumeAttributesClass used by this claim."),
    age_column(),
    Column("VolumeMode", lambda o: _spec(o).get("volumeMode", ""), priority=1, description="VolumeMode defines what type of volume is required by the claim."),
)


def _pv_claim(o: Obj) -> str:
    ref = _spec(o).get("claimRef") or {}
    return f"{ref.get('namespace', '')}/{ref.get('name', '')}" if ref else ""


PV_COLUMNS = (
    Column("Capacity", lambda o: (_spec(o).get("capacity") or {}).get("storage", ""), description="capacity is the description of the persistent volume's resources and capacity."),
    Column("Access Modes", lambda o: access_modes(_spec(o).get("accessModes")), description="accessModes contains all ways the volume can be mounted."),
    Column("Reclaim Policy", lambda o: _spec(o).get("persistentVolumeReclaimPolicy", ""), description="persistentVolumeReclaimPolicy defines what happens to a persistent volume when released from its claim."),
    Column("Status", lambda o: "Terminating" if _meta(o).get("deletionTimestamp") else _status(o).get("phase", ""), description="phase indicates if a volume is available, bound to a claim, or released by a claim."),
    Column("Claim", _pv_claim, description="claimRef is part of a bi-directional binding between PersistentVolume and PersistentVolumeClaim."),
    Column("StorageClass", _storage_class, description="storageClassName is the name of StorageClass to which this persistent volume belongs."),
    Column("VolumeAttributesClass", lambda o: _spec(o).get("volumeAttributesClassName") or "<unset>", description="Name of VolumeAttributesClass to which this persistent volume belongs."),
    Column("Reason", lambda o: _status(o).get("reason", ""), description="reason is a brief CamelCase string that describes any failure."),
    age_column(),
    Column("VolumeMode", lambda o: _spec(o).get("volumeMode", ""), priority=1, description="volumeMode defines if a volume is intended to be used with a formatted filesystem or to remain in raw block state."),
)


def _event_times(o: Obj, now: datetime) -> tuple[str, str]:
    first = since(o.get("firstTimestamp") or o.get("deprecatedFirstTimestamp"), now, unknown="")
    if not first:
        first = since(o.get("eventTime"), now)
    last = since(o.get("lastTimestamp") or o.get("deprecatedLastTimestamp"), now, unknown="") or first
    series = o.get("series")
    if series:
        last = since(series.get("lastObservedTime"), now)
    return first, last


def _event_count(o: Obj) -> int:
    series = o.get("series")
    if series:
        return int(series.get("count") or 0)
    return int(o.get("count") or o.get("deprecatedCount") or 0) or 1


def _event_object(o: Obj) -> str:
    inv = o.get("involvedObject") or o.get("regarding") or {}
    kind = str(inv.get("kind", "")).lower()
    return f"{kind}/{inv['name']}" if inv.get("name") else kind


def _event_source(o: Obj) -> str:
    source = o.get("source") or o.get("deprecatedSource") or {}
    component = source.get("component") or o.get("reportingController") or ""
    host = source.get("host") or o.get("reportingInstance") or ""
    return f"{component}, {host}" if host else component


EVENT_COLUMNS = (
    Column("Last Seen", lambda o: relative(lambda now: _event_times(o, now)[1]), description="Time when this Event was last seen"),
    Column("Type", lambda o: o.get("type", ""), description="Type of this event (Normal, Warning), new types could be added in the future."),
    Column("Reason", lambda o: o.get("reason", ""), description="This should be a short, machine understandable string that gives the reason for this event being generated."),
    Column("Object", _event_object, description="The object that this event is about."),
    Column("Subobject", lambda o: (o.get("involvedObject") or o.get("regarding") or {}).get("fieldPath", ""), priority=1, description="The subobject this event is about"),
    Column("Source", _event_source, priority=1, description="The component reporting this event."),
    Column("Message", lambda o: str(o.get("message") or o.get("note") or "").strip(), description="A human-readable description of the status of this operation."),
    Column("First Seen", lambda o: relative(lambda now: _event_times(o, now)[0]), priority=1, description="The time at which the event was first recorded."),
    Column("Count", _event_count, type="integer", priority=1, description="The number of times this event has occurred."),
    Column("Name", lambda o: _meta(o).get("name", ""), format="name", priority=1, description="Name must be unique within a namespace."),
)
