"""Local state of virtual clusters: ``$VKUBE_HOME/clusters/NAME/`` holds the data dir, the
state file and the process log. Every command reads ``VKUBE_HOME`` so tests isolate themselves.

The host keeps a copy of what matters (labels/annotations on the host namespace, see
``hostns``) so ``vkube list`` also works from another machine with the same host."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vkube.cli.output import CLIError

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?\Z")
# The host namespace is "vkube-NAME" (63 max) and host object names fold NAME in: keep it short.
NAME_MAX = 52

RUNNING, PAUSED, FAILED, STARTING = "Running", "Paused", "Failed", "Starting"
SLEEPING = "Sleeping"


def home() -> Path:
    return Path(os.environ.get("VKUBE_HOME") or Path.home() / ".vkube")


def secure_home() -> None:
    """Make ``home()`` reachable by its owner only (0700), creating it if needed. It holds
    every cluster's store (SQLite files the database library creates 0644), logs and audit
    logs: other local users must not read them. An existing home another vkube made 0755 is
    tightened; one owned by another user is left alone (its owner decides)."""
    path = home()
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        st = path.stat()
        if st.st_uid == os.getuid() and st.st_mode & 0o077:
            path.chmod(0o700)
    except OSError:
        pass  # an unwritable home fails later, where the command says what it needed


def clusters_dir() -> Path:
    return home() / "clusters"


def cluster_dir(name: str) -> Path:
    return clusters_dir() / name


def validate_name(name: str) -> str:
    """A virtual cluster name is a DNS label (it becomes part of host names)."""
    if not name or len(name) > NAME_MAX or not _DNS_LABEL.match(name):
        raise CLIError(f"invalid virtual cluster name {name!r}: use at most {NAME_MAX} lowercase "
                       "letters, digits and '-', starting and ending with a letter or digit "
                       "(e.g. my-vcluster)")
    return name


@dataclass
class ClusterState:
    """What ``state.json`` holds for one virtual cluster (camelCase on disk)."""

    name: str
    namespace: str
    host_kubeconfig: str
    host_context: str | None = None
    host_kind: str = "kubeconfig"  # "embedded" | "kubeconfig"
    created: str = ""
    status: str = STARTING  # desired state: Running | Paused (Failed is observed, not stored)
    port: int = 0
    values: dict[str, Any] = field(default_factory=dict)
    created_namespace: bool = True
    in_cluster: bool = False
    context_name: str = ""
    # kubeconfig files vkube wrote this cluster's context into (delete removes it from each)
    context_files: list[str] = field(default_factory=list)
    tenancy: str = "vcluster"  # "vcluster" | "namespace" (vkube create --tenancy)

    @property
    def dir(self) -> Path:
        return cluster_dir(self.name)

    @property
    def shared(self) -> bool:
        """Served by the shared server (``controlPlane.mode: shared``, ``create --shared``),
        not by a process of its own."""
        return ((self.values or {}).get("controlPlane") or {}).get("mode") == "shared"

    @property
    def data_dir(self) -> Path:
        return self.dir / "data"

    @property
    def log_file(self) -> Path:
        return self.dir / "vkube.log"

    @property
    def values_file(self) -> Path:
        return self.dir / "values.yaml"

    @property
    def pid_file(self) -> Path:
        return self.dir / "supervisor.pid"

    def save(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        doc = {_camel(k): v for k, v in dataclasses.asdict(self).items()}
        tmp = self.dir / f"state.json.{os.getpid()}.{threading.get_ident()}.tmp"
        tmp.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
        tmp.replace(self.dir / "state.json")

    @classmethod
    def load(cls, name: str) -> "ClusterState | None":
        try:
            doc = json.loads((cluster_dir(name) / "state.json").read_text())
        except (FileNotFoundError, ValueError):
            return None
        known = {f.name for f in dataclasses.fields(cls)}
        kw = {_snake(k): v for k, v in doc.items() if _snake(k) in known}
        return cls(**kw)

    def remove(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


def require(name: str) -> ClusterState:
    st = ClusterState.load(validate_name(name))
    if st is None:
        raise CLIError(f"virtual cluster {name!r} not found in {clusters_dir()} — "
                       "see `vkube list`, or create it with `vkube create " + name + "`")
    return st


def local_names() -> list[str]:
    try:
        return sorted(p.name for p in clusters_dir().iterdir() if (p / "state.json").exists())
    except FileNotFoundError:
        return []


def _camel(s: str) -> str:
    head, *rest = s.split("_")
    return head + "".join(w.title() for w in rest)


def _snake(s: str) -> str:
    return re.sub(r"([A-Z])", lambda m: "_" + m.group(1).lower(), s)
