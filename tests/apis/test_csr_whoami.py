"""Acceptance (issue 14): ``kubectl certificate approve`` on a CSR yields a certificate that
authenticates as its CN — on a ``vkube create`` cluster, through kubectl only: create the CSR,
approve it, read the certificate back, and ``kubectl auth whoami`` with it."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import yaml
from cryptography import x509

from tests.apis.test_certificates import csr_manifest, make_csr
from tests.cli.conftest import User, eventually
from tests.conftest import kubectl


def _issued(user: User, name: str) -> str:
    def check() -> str:
        cert = user.kubectl("get", "csr", name, "-o", "jsonpath={.status.certificate}").stdout
        assert cert, "not issued yet"
        return cert
    return eventually(check, timeout=60)


def _kubeconfig_as(user: User, cert_b64: str, key_pem: bytes, path: Path) -> Path:
    """The user's kubeconfig (same server and CA) with the new certificate as the credentials."""
    cfg = yaml.safe_load(user.kubeconfig.read_text())
    ctx = next(c for c in cfg["contexts"] if c["name"] == cfg["current-context"])["context"]
    cluster = next(c for c in cfg["clusters"] if c["name"] == ctx["cluster"])
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "csr",
        "clusters": [{"name": "csr", "cluster": cluster["cluster"]}],
        "users": [{"name": "csr", "user": {"client-certificate-data": cert_b64,
                                           "client-key-data": base64.b64encode(key_pem).decode()}}],
        "contexts": [{"name": "csr", "context": {"cluster": "csr", "user": "csr"}}]}))
    return path


def test_approved_csr_authenticates_as_its_cn(vcluster: User, tmp_path: Path) -> None:
    request, key_pem = make_csr("jane", ("dev-team",))
    vcluster.kubectl("apply", "-f", "-", input=csr_manifest("jane", request, seconds=3600))
    assert vcluster.kubectl("certificate", "approve", "jane").stdout.strip() == \
        "certificatesigningrequest.certificates.k8s.io/jane approved"
    cert_b64 = _issued(vcluster, "jane")
    cert = x509.load_pem_x509_certificate(base64.b64decode(cert_b64))
    assert (cert.not_valid_after_utc - cert.not_valid_before_utc).total_seconds() <= 3600 + 300
    kc = _kubeconfig_as(vcluster, cert_b64, key_pem, tmp_path / "jane.kubeconfig")
    who = json.loads(kubectl(kc, "auth", "whoami", "-o", "json").stdout)
    assert who["status"]["userInfo"]["username"] == "jane"
    assert who["status"]["userInfo"]["groups"] == ["dev-team", "system:authenticated"]
    denied = kubectl(kc, "get", "pods", check=False)
    assert denied.returncode != 0
    assert 'User "jane" cannot list resource "pods" in API group "" in the namespace "default"' in denied.stderr


def test_kubelet_client_csr_authenticates_as_the_node(vcluster: User, tmp_path: Path) -> None:
    request, key_pem = make_csr("system:node:edge-1", ("system:nodes",))
    vcluster.kubectl("apply", "-f", "-", input=csr_manifest(
        "edge-1", request, signer="kubernetes.io/kube-apiserver-client-kubelet",
        usages=("digital signature", "client auth")))
    vcluster.kubectl("certificate", "approve", "edge-1")
    kc = _kubeconfig_as(vcluster, _issued(vcluster, "edge-1"), key_pem, tmp_path / "node.kubeconfig")
    who = json.loads(kubectl(kc, "auth", "whoami", "-o", "json").stdout)["status"]["userInfo"]
    assert who["username"] == "system:node:edge-1"
    assert who["groups"] == ["system:nodes", "system:authenticated"]


def test_denied_csr_gives_no_credential(vcluster: User) -> None:
    request, _ = make_csr("mallory")
    vcluster.kubectl("apply", "-f", "-", input=csr_manifest("mallory", request))
    vcluster.kubectl("certificate", "deny", "mallory")
    csr = json.loads(vcluster.kubectl("get", "csr", "mallory", "-o", "json").stdout)
    assert not csr["status"].get("certificate")
    assert "Denied" in vcluster.kubectl("get", "csr", "mallory").stdout
