"""A tenant probing this machine's loopback through the control plane, with the real kubectl:
a webhook ``url`` at an open and at a closed port (a port scan), a webhook ``service`` whose
endpoint is a pod carrying an unpublished ``vkube.io/port-forward-PORT`` annotation, and an
APIService behind an ExternalName Service ``127.0.0.1``. Every route must be refused with one
message, and the listener must never see a connection. Shared by the dedicated-cluster test
(tests/webhooks) and the shared-mode one (tests/shared)."""

from __future__ import annotations

import json
import socket
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from tests.cli.conftest import eventually

Kubectl = Callable[..., subprocess.CompletedProcess[str]]
REFUSED = "the control plane does not connect to this address"
VWC = "ValidatingWebhookConfiguration"


@contextmanager
def listener() -> Iterator[socket.socket]:
    """A loopback port that accepts (the kernel completes handshakes into the backlog);
    non-blocking, so ``accept()`` tells afterwards whether anything connected."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(16)
        s.setblocking(False)
        yield s


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _apply(k: Kubectl, doc: dict[str, Any]) -> None:
    k("apply", "-f", "-", input=json.dumps(doc))


def _webhook(k: Kubectl, client_config: dict[str, Any]) -> None:
    _apply(k, {"apiVersion": "admissionregistration.k8s.io/v1", "kind": VWC,
               "metadata": {"name": "probe"}, "webhooks": [{
                   "name": "probe.example.com", "admissionReviewVersions": ["v1"],
                   "sideEffects": "None", "failurePolicy": "Fail", "clientConfig": client_config,
                   "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"],
                              "resources": ["configmaps"]}]}]})


def _refusal(k: Kubectl, name: str) -> str:
    out = k("create", "configmap", name, check=False)
    assert out.returncode == 1 and REFUSED in out.stderr, (out.stdout, out.stderr)
    return out.stderr


def probe_loopback(k: Kubectl) -> None:
    """Run every probe through ``k`` (kubectl bound to the tenant's context)."""
    with listener() as lst:
        port, closed = lst.getsockname()[1], closed_port()
        try:
            # a port scan: an open and a closed port read the same
            answers = []
            for p in (port, closed):
                _webhook(k, {"url": f"https://127.0.0.1:{p}/x"})
                answers.append(_refusal(k, f"scan-{p}").replace(str(p), "PORT"))
            assert answers[0] == answers[1], answers
            # names are resolved first: localhost and ::ffff:127.0.0.1 are loopback too, and
            # so is an IPv6 form carrying 127.0.0.1 (NAT64; the others: test_dial_forms.py)
            for host in ("localhost", "[::ffff:127.0.0.1]", "0.0.0.0", "[64:ff9b::7f00:1]"):
                _webhook(k, {"url": f"https://{host}:{port}/x"})
                _refusal(k, "by-name")
            # the port-forward annotation of a pod behind a selector-less Service
            _apply(k, {"apiVersion": "v1", "kind": "Pod", "metadata": {
                "name": "p2", "annotations": {"vkube.io/port-forward-443": f"127.0.0.1:{port}"}},
                "spec": {"securityContext": {"runAsNonRoot": True, "runAsUser": 1000,
                                             "seccompProfile": {"type": "RuntimeDefault"}},
                         "containers": [{"name": "c", "image": "nginx", "securityContext": {
                             "allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}}]}})
            _apply(k, {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "svc2"},
                       "spec": {"ports": [{"port": 443, "targetPort": 443}]}})
            _apply(k, {"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "svc2"},
                       "subsets": [{"addresses": [{"ip": "10.0.0.5", "targetRef": {
                           "kind": "Pod", "name": "p2", "namespace": "default"}}],
                           "ports": [{"port": 443}]}]})
            _webhook(k, {"service": {"name": "svc2", "namespace": "default", "port": 443}})
            _refusal(k, "by-annotation")
        finally:
            k("delete", "validatingwebhookconfiguration", "probe", "--ignore-not-found")
        # an aggregated API behind an ExternalName Service naming the loopback
        _apply(k, {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "lo"},
                   "spec": {"type": "ExternalName", "externalName": "127.0.0.1"}})
        _apply(k, {"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
                   "metadata": {"name": "v1.evil.io"},
                   "spec": {"group": "evil.io", "version": "v1", "insecureSkipTLSVerify": True,
                            "groupPriorityMinimum": 1000, "versionPriority": 15,
                            "service": {"name": "lo", "namespace": "default", "port": port}}})
        try:
            def condition() -> str:
                out = k("get", "apiservice", "v1.evil.io", "-o",
                        "jsonpath={.status.conditions[?(@.type=='Available')].message}")
                assert REFUSED in out.stdout, out.stdout
                return out.stdout

            eventually(condition, timeout=90, delay=1)
            out = k("get", "--raw", "/apis/evil.io/v1", check=False)
            assert out.returncode != 0 and ("ServiceUnavailable" in out.stderr or "503" in out.stderr), out.stderr
        finally:
            k("delete", "apiservice", "v1.evil.io", "--ignore-not-found")
        try:
            lst.accept()
        except BlockingIOError:
            pass
        else:
            raise AssertionError("the control plane connected to a loopback port it was refused")
