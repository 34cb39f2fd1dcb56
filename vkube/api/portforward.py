"""``vkube.io/port-forward-PORT: HOST:PORT``: the annotation that backs a pod's port with a real
address of this machine on the embedded host. One parser for every reader — the kubelet that
dials it, the syncer that decides whether it may go down, the values that list the targets a
cluster's owner published — so what is checked is exactly what is dialled."""

from __future__ import annotations

import re

ANN_PREFIX = "vkube.io/port-forward-"
#: the annotations that mean something (a container port number); others are dropped
ANN_RE = re.compile(r"^vkube\.io/port-forward-\d{1,5}\Z")


def parse_target(value: object) -> tuple[str, int] | None:
    """``HOST:PORT`` (``[::1]:PORT`` for IPv6; an empty host is 127.0.0.1) as the kubelet
    dials it; None when it names no port."""
    if not isinstance(value, str):
        return None
    host, _, port = value.strip().rpartition(":")
    try:
        number = int(port)
    except ValueError:
        return None
    return (host.strip("[]").lower() or "127.0.0.1"), number


def forwards(annotations: dict[str, str] | None) -> dict[str, str]:
    """The pod's port-forward annotations, by key."""
    return {k: v for k, v in (annotations or {}).items() if ANN_RE.match(k)}
