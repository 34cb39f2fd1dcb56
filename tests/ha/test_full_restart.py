"""Stop everything, the store too, then start it all again (issue 17: "HA on an external
database does not recover after a full restart"). Three local replicas (``vkube create`` with
``enableHA``) on a PostgreSQL or etcd of the test's own; ``vkube pause`` stops them, then the
database server stops; both start again (``vkube resume``). Every object comes back with its
uid and resourceVersion, secrets still decrypt (the replicas share one key), the Deployment
runs again on the host, and a watch from a resourceVersion taken before the restart sees
exactly what was written after it — no 410, no relist."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes
import pytest

from tests.cli.conftest import User
from tests.store.servers import EtcdServer, PostgresServer

DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: default}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, image: nginx}]}
"""


class Store:
    """A database server the test stops and starts: its URL for ``controlPlane.store``."""

    def __init__(self, kind: str, tmp_path: Path) -> None:
        self.server: PostgresServer | EtcdServer
        if kind == "postgres":
            self.server = PostgresServer()
            self.url = self.server.url
        else:
            (tmp_path / "etcd").mkdir()
            self.server = EtcdServer(str(tmp_path / "etcd"))
            self.url = self.server.url + "/full-restart"

    def start(self) -> None:
        self.server.start()

    def stop(self) -> None:
        self.server.stop()


@pytest.fixture(params=["postgres", "etcd"])
def own_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    try:
        store = Store(request.param, tmp_path)
    except FileNotFoundError as exc:
        pytest.skip(f"needs a {request.param} server: {exc}")
    store.start()
    try:
        yield store
    finally:
        if isinstance(store.server, PostgresServer):
            store.server.remove()
        else:
            store.stop()


def wait(check, *, timeout: float, what: str, delay: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        assert time.monotonic() < deadline, f"{what}: not within {timeout:.0f} s"
        time.sleep(delay)


def objects(u: User) -> dict[str, tuple[str, str]]:
    """kind/name → (uid, resourceVersion) of what the test made."""
    out = {}
    for kind in ("configmaps", "secrets", "deployments", "services"):
        for o in json.loads(u.kubectl("get", kind, "-o", "json").stdout)["items"]:
            if o["metadata"]["name"].startswith(("keep", "web")):
                out[f"{kind}/{o['metadata']['name']}"] = (o["metadata"]["uid"],
                                                         o["metadata"]["resourceVersion"])
    return out


def available(u: User) -> bool:
    d = json.loads(u.kubectl("get", "deploy", "web", "-o", "json").stdout)
    return (d.get("status") or {}).get("availableReplicas") == 3


def host_pods(u: User) -> int:
    host = u.home / "host" / "kubeconfig"
    from tests.conftest import kubectl

    out = kubectl(host, "get", "pods", "-n", "vkube-ha", "-o", "json", check=False)
    return len(json.loads(out.stdout)["items"]) if out.returncode == 0 else -1


@pytest.mark.timeout(1200)
def test_everything_stops_store_included_and_comes_back(user: User, own_store: Store,
                                                        tmp_path: Path):
    values = tmp_path / "values.yaml"
    values.write_text(f"enableHA: true\nreplicas: 3\ncontrolPlane: {{store: '{own_store.url}'}}\n")
    user.vkube("create", "ha", "-f", str(values), timeout=300)
    user.kubectl("apply", "-f", "-", input=DEPLOYMENT)
    user.kubectl("create", "configmap", "keep", "--from-literal=color=blue")
    user.kubectl("create", "secret", "generic", "keep-secret", "--from-literal=pw=s3cret")
    user.kubectl("expose", "deployment", "web", "--port=80")
    wait(lambda: available(user), timeout=300, what="web available")
    wait(lambda: host_pods(user) == 3, timeout=120, what="3 pods on the host")
    before = objects(user)
    assert len(before) == 4
    rv = json.loads(user.kubectl("get", "--raw", "/api/v1/namespaces/default/configmaps").stdout)[
        "metadata"]["resourceVersion"]  # (`get -o json` prints a List without one)
    assert int(rv) > 0

    user.vkube("pause", "ha", timeout=180)
    own_store.stop()
    time.sleep(1)
    own_store.start()
    user.vkube("resume", "ha", timeout=300)

    after = objects(user)
    assert {k: uid for k, (uid, _) in after.items()} == {k: uid for k, (uid, _) in before.items()}
    # what no controller writes keeps its resourceVersion (the Deployment's status may move)
    assert {k: v for k, v in after.items() if not k.startswith("deployments/")} == \
        {k: v for k, v in before.items() if not k.startswith("deployments/")}
    assert user.kubectl("get", "secret", "keep-secret", "-o",
                        "jsonpath={.data.pw}").stdout == "czNjcmV0"  # base64 of s3cret
    wait(lambda: available(user), timeout=300, what="web available after the restart")
    wait(lambda: host_pods(user) == 3, timeout=300, what="3 pods on the host again")
    wait(lambda: (r := user.describe("ha").get("replicas") or {}).get("ready") == 3
         and r.get("leader") is not None, timeout=120, what="3 replicas and a leader")

    # a watch from before the restart: exactly what came after it
    user.kubectl("create", "configmap", "keep-after", "--from-literal=k=v")
    api = kubernetes.config.new_client_from_config(config_file=str(user.kubeconfig))
    try:
        core = kubernetes.client.CoreV1Api(api)
        seen = []
        for ev in kubernetes.watch.Watch().stream(core.list_namespaced_config_map, "default",
                                                  resource_version=rv, timeout_seconds=10):
            if ev["object"].metadata.name.startswith("keep"):  # the test's own
                seen.append((ev["type"], ev["object"].metadata.name))
            if ev["object"].metadata.name == "keep-after":
                break
        assert seen == [("ADDED", "keep-after")], seen
    finally:
        api.close()
    user.vkube("delete", "ha", timeout=180)
