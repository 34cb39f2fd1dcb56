"""``vkube describe``'s Control plane line names where the API server runs: a namespace
tenant has none, an HA cluster's replicas carry their own pids; long-running processes keep
third-party libraries' INFO chatter (celpy's "Transpiled: …") out of ``vkube logs``."""

from __future__ import annotations

import logging

from vkube.cli import inspect_cmds, runproc
from vkube.cli.state import ClusterState


def _st(**kw) -> ClusterState:
    return ClusterState(name="c", namespace="vkube-c", host_kubeconfig="/k", host_context=None,
                        host_kind="embedded", created="2026-01-01T00:00:00Z", **kw)


def test_control_plane_words():
    doc = {"mode": "dedicated", "pid": 42}
    assert inspect_cmds._control_plane(_st(), doc, None) == "dedicated (pid 42)"
    reps = {"members": [{"pid": 1}, {"pid": 2}, {"pid": 3}]}
    ha = inspect_cmds._control_plane(_st(), {"mode": "dedicated", "pid": None}, reps)
    assert ha == "dedicated, 3 replicas (pids below)" and "42" not in ha
    tenant = _st(tenancy="namespace")
    assert inspect_cmds._control_plane(tenant, doc, None).startswith("none — a namespace")
    assert "StatefulSet" in inspect_cmds._control_plane(_st(in_cluster=True), doc, None)


def test_processes_quiet_library_info(monkeypatch):
    celpy, root = logging.getLogger("celpy"), logging.getLogger()
    before, root_before = celpy.level, root.level
    try:
        monkeypatch.setenv("VKUBE_LOG_LEVEL", "INFO")
        root.setLevel(logging.INFO)  # as in a vkube process (pytest's root may already be set)
        assert logging.getLogger("vkube.x").isEnabledFor(logging.INFO)
        runproc.configure_logging()
        assert not logging.getLogger("celpy.CompiledRunner").isEnabledFor(logging.INFO)
        assert logging.getLogger("celpy.CompiledRunner").isEnabledFor(logging.WARNING)
    finally:
        celpy.setLevel(before)
        root.setLevel(root_before)
