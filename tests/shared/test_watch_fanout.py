"""A shared-mode cluster's watches come from one store subscription (``vkube.store.fanout``) and
its controllers' informers are lazy, yet every watch keeps its own semantics — through the
official Python client and kubectl, with the cluster's own kubeconfig and a ServiceAccount's
token: its own resourceVersion (history replayed from it), label selector (an object leaving
the selection is DELETED for that watcher only), namespace, RBAC (403 outside its Role) and 410
below the compacted revision."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import kubectl
from vkube.client.resources import CRONJOBS, JOBS, PODS
from vkube.cluster.config import ClusterConfig
from vkube.cluster.shared import SharedServer


async def kc(path: Path, *args: str, check: bool = True, input: str | None = None) -> str:
    proc = await asyncio.to_thread(kubectl, path, *args, check=check, input=input, timeout=120)
    return proc.stdout + (proc.stderr if not check else "")


@pytest.fixture
async def shared(tmp_path: Path):  # noqa: ANN201
    server = SharedServer(tmp_path / "shared")
    await server.start()
    # a full control plane (controllers in process, no host)
    await server.add(ClusterConfig(name="f", data_dir=tmp_path / "f", controllers=True))
    try:
        yield server, tmp_path
    finally:
        await server.stop()


def _api(kubeconfig: Path) -> Any:
    from kubernetes import client as k8s, config as k8s_config

    return k8s.CoreV1Api(k8s_config.new_client_from_config(str(kubeconfig)))


class Watcher:
    """One official-client watch in a thread of its own, recording (type, namespace/name)."""

    def __init__(self, api: Any, **kw: Any) -> None:
        from kubernetes import watch

        self.events: list[tuple[str, str]] = []
        self.error: BaseException | None = None
        self._w = watch.Watch()
        self._api, self._kw = api, kw
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            fn = self._api.list_namespaced_config_map if "namespace" in self._kw \
                else self._api.list_config_map_for_all_namespaces
            for ev in self._w.stream(fn, timeout_seconds=120, **self._kw):
                meta = ev["object"].metadata
                if meta.name == "kube-root-ca.crt":  # the controller's, made at any moment
                    continue
                self.events.append((ev["type"], f"{meta.namespace}/{meta.name}"))
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.error = exc

    async def until(self, n: int) -> list[tuple[str, str]]:
        for _ in range(1200):
            if len(self.events) >= n or self.error is not None:
                break
            await asyncio.sleep(0.1)
        assert self.error is None, self.error
        return self.events

    async def failure(self) -> Any:
        """The exception its stream ended with (it must end within the deadline)."""
        await asyncio.to_thread(self._thread.join, 120)
        assert not self._thread.is_alive()
        return self.error

    def stop(self) -> None:
        self._w.stop()


async def _token_kubeconfig(admin_kc: Path, out: Path) -> Path:
    """A kubeconfig for ServiceAccount ``a/reader``, which may read and watch ConfigMaps of
    namespace ``a`` only."""
    await kc(admin_kc, "create", "serviceaccount", "reader", "-n", "a")
    await kc(admin_kc, "create", "role", "cm-reader", "-n", "a", "--verb=get,list,watch",
             "--resource=configmaps")
    await kc(admin_kc, "create", "rolebinding", "cm-reader", "-n", "a", "--role=cm-reader",
             "--serviceaccount=a:reader")
    token = (await kc(admin_kc, "create", "token", "reader", "-n", "a")).strip()
    doc = json.loads(admin_kc.read_text())
    doc["users"] = [{"name": "reader", "user": {"token": token}}]
    for c in doc["contexts"]:
        c["context"]["user"] = "reader"
    out.write_text(json.dumps(doc))
    return out


async def _rv(admin_kc: Path) -> str:
    """The list's resourceVersion (kubectl prints none for a list of several)."""
    api = _api(admin_kc)
    rv = (await asyncio.to_thread(api.list_config_map_for_all_namespaces)).metadata.resource_version
    assert rv
    return rv


async def test_watchers_on_one_stream_keep_their_own_version_selector_namespace_and_rights(shared) -> None:  # noqa: ANN001
    server, root = shared
    admin_kc = root / "f" / "kubeconfig"
    for ns in ("a", "b"):
        await kc(admin_kc, "create", "namespace", ns)
    reader_kc = await _token_kubeconfig(admin_kc, root / "reader.kubeconfig")
    r0 = await _rv(admin_kc)
    await kc(admin_kc, "create", "configmap", "x1", "-n", "a")
    await kc(admin_kc, "label", "configmap", "x1", "-n", "a", "app=1")
    await kc(admin_kc, "create", "configmap", "y1", "-n", "b")
    await kc(admin_kc, "label", "configmap", "y1", "-n", "b", "app=1")
    await kc(admin_kc, "create", "configmap", "z1", "-n", "a")
    r1 = await _rv(admin_kc)

    member = server.members["f"]
    assert member.vc is not None and member.vc.control_plane.ctx is not None
    fanout = member.vc.control_plane.ctx.watch_fanout()
    before = len(fanout)
    admin_api, reader_api = _api(admin_kc), _api(reader_kc)
    # everywhere, selected by label, from before the objects: history first
    selected = Watcher(admin_api, label_selector="app=1", resource_version=r0)
    # one namespace, everything, from now, as a ServiceAccount its Role lets watch there only
    in_a = Watcher(reader_api, namespace="a", resource_version=r1)
    try:
        assert await selected.until(2) == [("ADDED", "a/x1"), ("ADDED", "b/y1")]
        for _ in range(600):  # both streams open
            if len(fanout) >= before + 2:
                break
            await asyncio.sleep(0.1)
        assert len(fanout) >= before + 2
        await kc(admin_kc, "label", "configmap", "x1", "-n", "a", "app=2", "--overwrite")
        await kc(admin_kc, "create", "configmap", "y2", "-n", "b")
        await kc(admin_kc, "label", "configmap", "y2", "-n", "b", "app=1")
        await kc(admin_kc, "create", "configmap", "w1", "-n", "a")
        await kc(admin_kc, "label", "configmap", "w1", "-n", "a", "app=1")
        await kc(admin_kc, "delete", "configmap", "z1", "-n", "a")
        # x1 left the selection: DELETED for the selecting watcher, MODIFIED for the other
        assert await selected.until(5) == [("ADDED", "a/x1"), ("ADDED", "b/y1"), ("DELETED", "a/x1"),
                                           ("ADDED", "b/y2"), ("ADDED", "a/w1")]
        assert await in_a.until(4) == [("MODIFIED", "a/x1"), ("ADDED", "a/w1"), ("MODIFIED", "a/w1"),
                                       ("DELETED", "a/z1")]
    finally:
        selected.stop()
        in_a.stop()
    # one listener in the shared store for this cluster, however many watches it serves
    assert server.store is not None
    mine = [s for s in server.store._broadcaster._subs if s.prefix.startswith("/clusters/f/")]  # type: ignore[attr-defined]
    assert len(mine) == 1
    # its rights: not namespace b, not every namespace
    for kw in ({"namespace": "b"}, {}):
        denied = Watcher(reader_api, resource_version=r1, **kw)
        assert getattr(await denied.failure(), "status", None) == 403, denied.error
        assert denied.events == []
    # below the compacted revision: 410, as a store watch answered it
    await server.store.compact(await server.store.current_revision())
    expired = Watcher(admin_api, namespace="a", resource_version=r1)
    assert getattr(await expired.failure(), "status", None) == 410, (expired.error, expired.events)


async def test_informers_with_nothing_to_watch_park_and_wake_at_their_first_object(shared, monkeypatch) -> None:  # noqa: ANN001
    """Parking is off in the product (``Informer.PARKING``: a woken pods informer lost
    updates); this keeps its mechanism tested for when it is on again."""
    from vkube.controllers.informer import Informer

    monkeypatch.setattr(Informer, "PARKING", True)
    server, root = shared
    admin_kc = root / "f" / "kubeconfig"
    vc = server.members["f"].vc
    assert vc is not None and vc.controller_manager is not None
    mgr = vc.controller_manager
    await asyncio.wait_for(mgr.started.wait(), 120)
    jobs, cronjobs, pods = mgr.informer(JOBS), mgr.informer(CRONJOBS), mgr.informer(PODS)
    for _ in range(600):
        if jobs.parked and cronjobs.parked:
            break
        await asyncio.sleep(0.1)
    assert jobs.parked and cronjobs.parked  # no Job, no CronJob: no stream, no task
    parked = sum(inf.parked for inf in mgr._informers.values())
    assert parked >= 10, parked
    # the first Job wakes the Job controller's informer: it makes the Job's pod
    await kc(admin_kc, "create", "job", "j", "--image=busybox")
    for _ in range(1200):
        if pods.list("default", {"job-name": "j"}):
            break
        await asyncio.sleep(0.1)
    out = await kc(admin_kc, "get", "pods", "-l", "job-name=j", "-o", "name")
    assert out.strip().startswith("pod/j-"), out
    assert not jobs.parked and jobs.get("j", "default") is not None
    assert cronjobs.parked  # still nothing of its own
