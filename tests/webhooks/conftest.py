"""One virtual cluster per test module (``vkube create`` on the embedded host) and the test's
HTTPS webhook server; helpers that write webhook configurations with kubectl."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.cli.conftest import User, cleanup, make_user
from tests.webhooks.server import WebhookServer

GROUP = "admissionregistration.k8s.io/v1"


@pytest.fixture(scope="module")
def vc(tmp_path_factory: pytest.TempPathFactory, server: WebhookServer) -> Iterator[User]:
    """The cluster's owner publishes the webhook server as a port-forward target (a pod
    backed by it: ``vkube.io/port-forward-PORT``, README's webhook section)."""
    u = make_user(tmp_path_factory.mktemp("webhooks"))
    values = u.home.parent / "wh-values.yaml"
    values.write_text(f"sync:\n  pods:\n    portForwardTargets: ['127.0.0.1:{server.port}']\n")
    u.vkube("create", "wh", "-f", str(values), timeout=180)
    try:
        yield u
    finally:
        cleanup(u)


@pytest.fixture(scope="module")
def server() -> Iterator[WebhookServer]:
    with WebhookServer(("127.0.0.1", "hooks.webhooks.svc")) as s:
        yield s


def hook(name: str, client_config: dict[str, Any], *, resources: tuple[str, ...] = ("configmaps",),
         operations: tuple[str, ...] = ("CREATE",), **extra: Any) -> dict[str, Any]:
    out = {"name": name, "admissionReviewVersions": ["v1"], "sideEffects": "None",
           "clientConfig": client_config,
           "rules": [{"operations": list(operations), "apiGroups": [""], "apiVersions": ["v1"],
                      "resources": list(resources)}]}
    out.update(extra)
    return out


def url(server: WebhookServer, path: str, *, ca: str | None = None) -> dict[str, Any]:
    return {"url": server.url + path, "caBundle": server.ca_bundle if ca is None else ca}


def configure(u: User, kind: str, name: str, *hooks: dict[str, Any]) -> None:
    """Create or replace one webhook configuration (``apply``, as users do)."""
    doc = {"apiVersion": GROUP, "kind": kind, "metadata": {"name": name}, "webhooks": list(hooks)}
    u.kubectl("apply", "-f", "-", input=json.dumps(doc))


def remove(u: User, resource: str, name: str) -> None:
    u.kubectl("delete", resource, name, "--ignore-not-found")
