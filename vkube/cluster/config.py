"""The one typed configuration a virtual cluster is built from (``ClusterConfig``) and the two
ways to name its host: a kubeconfig now (``HostConnection``), or a file written later
(``HostFromFile``, how ``vkube create`` starts the API before it has resolved the host).

Frozen: a running cluster never has its configuration changed under it; a new configuration
means a new ``VirtualCluster``."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the syncer package costs ~0.3 s of imports; `vkube serve` defers it
    from vkube.syncer.values import Values


class ClusterConfigError(ValueError):
    """A file the configuration names (encryption config, audit policy) cannot be used; the
    message names the file or field."""


def parse_devices(text: str) -> tuple[tuple[str, int], ...]:
    """Simulated DRA devices per node (``vkube host start --node-devices``):
    ``gpu.example.com=2,fpga.example.com=1`` → ``(("gpu.example.com", 2), …)``; ValueError
    naming the bad part."""
    out = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        driver, sep, count = part.partition("=")
        if not sep or not count.isdigit() or int(count) > 128 \
                or not re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*", driver):
            raise ValueError(f"--node-devices: {part!r} is not DRIVER=COUNT (COUNT 0..128)")
        out.append((driver, int(count)))
    return tuple(out)


@dataclass(frozen=True)
class HostConnection:
    """A host cluster named by a kubeconfig file (and optionally one of its contexts)."""

    kubeconfig: str
    context: str | None = None
    #: the host namespace the cluster syncs into; None: ``vkube-NAME``
    namespace: str | None = None
    #: "embedded" (the embedded host: its ClusterIPs are not routable, pods reach the control
    #: plane on loopback) or "kubeconfig" (any other cluster)
    kind: str = "kubeconfig"


@dataclass(frozen=True)
class HostFromFile:
    """A host named later in ``path`` (JSON ``{"kubeconfig", "context", "namespace"}``,
    renamed into place, so an existing file is complete). The API serves meanwhile; only the
    syncer waits. ``namespace`` is used when the file names none."""

    path: Path
    namespace: str | None = None
    poll_seconds: float = 0.02


@dataclass(frozen=True)
class ClusterConfig:
    """Everything one ``VirtualCluster`` needs. ``host=None`` is a standalone control plane
    (the API server allocates Service IPs itself, nothing is synced)."""

    name: str
    #: the datastore (unless ``store_url``), the SA signing key and the kubeconfig live here
    data_dir: Path | None = None
    store_url: str | None = None
    #: options for ``vkube.store.open_store`` (etcd TLS files)
    store_options: dict[str, str] = field(default_factory=dict)
    address: str = "127.0.0.1"
    port: int = 0
    host: HostConnection | HostFromFile | None = None
    #: parsed values (``vkube.syncer.values.Values``); None: the defaults
    values: "Values | None" = None
    controllers: bool = True
    #: campaign for the controller-manager lease (off when only one replica can exist, saving
    #: the lease traffic; on for ``vkube serve``, whose restarts may overlap)
    leader_election: bool = True
    #: the controller-manager's leader-election identity; None: ``HOSTNAME-PID-NAME``
    identity: str | None = None
    #: kubelet log proxy port of the syncer (0: any free port)
    kubelet_port: int = 0
    #: EncryptionConfiguration file (None: DATA_DIR/encryption-config.yaml, made once)
    encryption_config: Path | None = None
    #: audit Policy file (None: every request at Metadata, in DATA_DIR/audit.log)
    audit_policy: Path | None = None
    #: audit log rotation: (max size MB, backups kept, max age days); 0s are kube-apiserver's defaults
    audit_rotation: tuple[int, int, int] = (0, 0, 0)
    #: static bearer tokens (kube-apiserver's --token-auth-file CSV), read at start
    token_auth_file: Path | None = None
    #: --requestheader-allowed-names (None: the aggregator's front-proxy-client; (): any name)
    requestheader_allowed_names: tuple[str, ...] | None = None
    #: kube-apiserver's --max-requests-inflight / --max-mutating-requests-inflight: their sum
    #: is the seats API Priority and Fairness divides between priority levels
    max_requests_inflight: int = 400
    max_mutating_requests_inflight: int = 200
    #: AdmissionConfiguration file (PodSecurity defaults and exemptions)
    admission_config: Path | None = None
    #: where pods reach the control plane (Endpoints of default/kubernetes, kube-dns); None:
    #: ``address`` (loopback when that is every address)
    advertise_address: str | None = None
    #: the cluster DNS's port on ``address`` (UDP and TCP; 0: any free port)
    dns_port: int = 0
    #: ``(ip, port)`` of the resolver for names outside the cluster zone; None: REFUSED
    dns_upstream: tuple[str, int] | None = None
    #: one of several API server replicas on one shared store (``enableHA``): controllers,
    #: syncer and scheduler run only while this replica holds the cluster's leader Lease
    ha: bool = False
    #: extra DNS names / IPs the serving certificate must cover (a host Service's names)
    tls_sans: tuple[str, ...] = ()
    #: the cluster's own components (controllers, syncer's virtual side, DNS, scheduler,
    #: leader election) call its API server in process (``vkube.cluster.inprocess``); False:
    #: over loopback HTTPS with their client certificates, as an out-of-process component
    in_process_components: bool = True

    def __post_init__(self) -> None:
        if self.data_dir is None and self.store_url is None:
            raise ValueError(f"cluster {self.name!r} needs a data_dir or a store_url")
        if self.data_dir is not None and not isinstance(self.data_dir, Path):
            object.__setattr__(self, "data_dir", Path(os.fspath(self.data_dir)))
        if self.ha and not _shared(self.store_url):
            raise ValueError(f"cluster {self.name!r}: HA replicas need a shared store "
                             "(postgres:// or etcd://); SQLite is one process's file")

    @property
    def virtual(self) -> bool:
        """Synced to a host (a virtual cluster) rather than a standalone control plane."""
        return self.host is not None

    @property
    def default_host_namespace(self) -> str:
        return f"vkube-{self.name}"


def _shared(url: str | None) -> bool:
    from vkube.syncer.values import shared_store  # only for HA: serve skips the syncer imports

    return shared_store(url)


def shared_encryption_config(data_dir: Path) -> Path:
    """The encryption config several local replicas of one cluster all name (each replica's
    own default would give each its own key, and none could read another's secrets)."""
    from vkube.apiserver.encryption import default_config_for

    return default_config_for(data_dir)
