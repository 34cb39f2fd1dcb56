"""certificates.k8s.io/v1 through the real kubectl: CSR validation, ``kubectl certificate
approve|deny`` on the ``/approval`` subresource, the signing controller (kube-apiserver-client
and -kubelet signers, expirationSeconds, refusals as Failed conditions) and the cleaner."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.admission.conftest import eventually, kubectl
from tests.conftest import RunningControlPlane
from vkube.api import errors
from vkube.client.resources import CSRS
from vkube.controllers.certificates import CSRCleanerController, CSRSigningController, expired
from vkube.controllers.runtime import ControllerManager
from vkube.pki import CertificateAuthority


def make_csr(cn: str, orgs: tuple[str, ...] = (), *, dns: tuple[str, ...] = ()) -> tuple[str, bytes]:
    """A PEM CSR (base64, as spec.request holds it) and its private key."""
    key = ec.generate_private_key(ec.SECP256R1())
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in orgs]
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
    builder = x509.CertificateSigningRequestBuilder().subject_name(x509.Name(attrs))
    if dns:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(d) for d in dns]), critical=False)
    pem = builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return base64.b64encode(pem).decode(), key_pem


def csr_manifest(name: str, request: str, *, signer: str = "kubernetes.io/kube-apiserver-client",
                 usages: tuple[str, ...] = ("client auth",), seconds: int | None = None) -> str:
    spec: dict[str, Any] = {"request": request, "signerName": signer, "usages": list(usages)}
    if seconds is not None:
        spec["expirationSeconds"] = seconds
    return yaml.safe_dump({"apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
                           "metadata": {"name": name}, "spec": spec})


@pytest.fixture
async def signing(control_plane: RunningControlPlane) -> AsyncIterator[tuple[RunningControlPlane, CertificateAuthority]]:
    """A control plane with the CSR signing and cleaning controllers and a CA for them."""
    ca = CertificateAuthority.create("vkube-ca-test")
    client = control_plane.client()
    mgr = ControllerManager(client, identity="test-cm", leader_election=False,
                            options={"csrsigning": {"ca": ca}})
    mgr.add(CSRSigningController)
    mgr.add(CSRCleanerController)
    task = asyncio.create_task(mgr.run())
    try:
        await asyncio.wait_for(mgr.started.wait(), 60)
        yield control_plane, ca
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await client.close()


async def get_csr(cp: RunningControlPlane, name: str) -> dict[str, Any]:
    return json.loads((await kubectl(cp, "get", "csr", name, "-o", "json")).stdout)


async def issued(cp: RunningControlPlane, name: str) -> x509.Certificate:
    async def check() -> Any:
        return (await get_csr(cp, name)).get("status", {}).get("certificate")
    cert = await eventually(check)
    return x509.load_pem_x509_certificate(base64.b64decode(cert))


async def test_approve_signs_with_the_cluster_ca(signing: tuple[RunningControlPlane, CertificateAuthority]) -> None:
    cp, ca = signing
    request, _ = make_csr("alice", ("team-a",))
    await kubectl(cp, "apply", "-f", "-", input=csr_manifest("alice", request, seconds=3600))
    csr = await get_csr(cp, "alice")
    assert csr["spec"]["username"] == "kubernetes-admin"  # the requester, as the server saw it
    assert "status" not in csr or not csr["status"].get("certificate")
    table = (await kubectl(cp, "get", "csr", "alice")).stdout
    assert "Pending" in table and "kubernetes.io/kube-apiserver-client" in table and "60m" in table
    out = await kubectl(cp, "certificate", "approve", "alice")
    assert "approved" in out.stdout
    cert = await issued(cp, "alice")
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "alice"
    assert cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "team-a"
    assert cert.issuer == ca.cert.subject
    ca.cert.public_key().verify(cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(cert.signature_hash_algorithm))
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert dt.timedelta(minutes=60) <= lifetime <= dt.timedelta(minutes=66)  # 1h + 5 min backdate
    assert cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value == x509.ExtendedKeyUsage(
        [ExtendedKeyUsageOID.CLIENT_AUTH])
    table = (await kubectl(cp, "get", "csr", "alice")).stdout
    assert "Approved,Issued" in table
    # the certificate can be read back as kubectl users do
    got = (await kubectl(cp, "get", "csr", "alice", "-o", "jsonpath={.status.certificate}")).stdout
    assert base64.b64decode(got).startswith(b"-----BEGIN CERTIFICATE-----")


async def test_deny_is_final_and_never_signed(signing: tuple[RunningControlPlane, CertificateAuthority]) -> None:
    cp, _ = signing
    request, _ = make_csr("bob")
    await kubectl(cp, "create", "-f", "-", input=csr_manifest("bob", request))
    await kubectl(cp, "certificate", "deny", "bob")
    csr = await get_csr(cp, "bob")
    assert [c["type"] for c in csr["status"]["conditions"]] == ["Denied"]
    assert "Denied" in (await kubectl(cp, "get", "csr", "bob")).stdout
    # kubectl refuses to approve a denied request; the server refuses it too (exclusive)
    proc = await kubectl(cp, "certificate", "approve", "bob", check=False)
    assert proc.returncode != 0 and 'certificate signing request "bob" is already Denied' in proc.stderr
    client = cp.client()
    try:
        csr["status"]["conditions"].append({"type": "Approved", "status": "True", "reason": "Sneaky"})
        with pytest.raises(errors.Invalid) as refused:
            await client.update(CSRS, csr, subresource="approval")
        assert "Approved and Denied conditions are mutually exclusive" in str(refused.value)
        del csr["status"]["conditions"][0]  # dropping the Denied condition is refused as well
        with pytest.raises(errors.Invalid) as refused:
            await client.update(CSRS, csr, subresource="approval")
        assert 'updates may not remove a condition of type "Denied"' in str(refused.value)
    finally:
        await client.close()
    await asyncio.sleep(1)
    assert not (await get_csr(cp, "bob"))["status"].get("certificate")


async def test_status_refuses_approval_and_certificate_changes(
        signing: tuple[RunningControlPlane, CertificateAuthority]) -> None:
    """``/status`` is the signer's: adding or removing Approved/Denied there is refused with
    upstream's words (never silently dropped), other conditions are its to set, and an issued
    certificate is final; ``/approval`` is where approval goes."""
    cp, ca = signing
    request, _ = make_csr("mallory")
    await kubectl(cp, "create", "-f", "-", input=csr_manifest("mallory", request))

    async def patch_status(status: dict[str, Any]) -> Any:
        return await kubectl(cp, "patch", "csr", "mallory", "--subresource=status", "--type=merge",
                             "-p", json.dumps({"status": status}), check=False)

    for ctype in ("Approved", "Denied"):
        proc = await patch_status({"conditions": [{"type": ctype, "status": "True", "reason": "Sneaky"}]})
        assert proc.returncode != 0
        assert (f'status.conditions: Forbidden: updates may not add a condition of type "{ctype}"'
                in proc.stderr), proc.stderr
    assert "Pending" in (await kubectl(cp, "get", "csr", "mallory")).stdout
    proc = await patch_status({"conditions": [{"type": "Checked", "status": "True", "reason": "Signer"}]})
    assert proc.returncode == 0, proc.stderr
    assert [c["type"] for c in (await get_csr(cp, "mallory"))["status"]["conditions"]] == ["Checked"]

    await kubectl(cp, "certificate", "approve", "mallory")
    first = await issued(cp, "mallory")
    csr = await get_csr(cp, "mallory")
    approved = next(c for c in csr["status"]["conditions"] if c["type"] == "Approved")
    # the same number of Approved conditions: /status keeps the stored one (upstream's
    # preserveConditionInstances), whatever the request wrote into it
    edited = [dict(c, reason="Rewritten") if c["type"] == "Approved" else c for c in csr["status"]["conditions"]]
    proc = await patch_status({"conditions": edited})
    assert proc.returncode == 0, proc.stderr
    after = await get_csr(cp, "mallory")
    assert next(c for c in after["status"]["conditions"] if c["type"] == "Approved") == approved
    proc = await patch_status({"conditions": [c for c in edited if c["type"] != "Approved"]})
    assert proc.returncode != 0
    assert 'status.conditions: Forbidden: updates may not remove a condition of type "Approved"' in proc.stderr
    other = ca.issue_client("someone-else", ())
    proc = await patch_status({"certificate": base64.b64encode(other.cert_pem).decode()})
    assert proc.returncode != 0
    assert "status.certificate: Forbidden: updates may not modify existing certificate content" in proc.stderr
    # through /approval and the main resource, a certificate in the body is not taken
    client = cp.client()
    try:
        body = await client.get(CSRS, "mallory")
        body["status"]["certificate"] = base64.b64encode(other.cert_pem).decode()
        await client.update(CSRS, body, subresource="approval")
        await client.update(CSRS, dict(body, metadata={**body["metadata"], "labels": {"a": "b"}}))
    finally:
        await client.close()
    assert (await issued(cp, "mallory")) == first


async def test_kubelet_client_signer_checks_the_subject(signing: tuple[RunningControlPlane, CertificateAuthority]) -> None:
    cp, _ = signing
    good, _ = make_csr("system:node:n1", ("system:nodes",))
    bad, _ = make_csr("n2", ("system:nodes",))
    signer = "kubernetes.io/kube-apiserver-client-kubelet"
    usages = ("digital signature", "client auth")
    await kubectl(cp, "create", "-f", "-", input=csr_manifest("node-good", good, signer=signer, usages=usages))
    await kubectl(cp, "create", "-f", "-", input=csr_manifest("node-bad", bad, signer=signer, usages=usages))
    await kubectl(cp, "certificate", "approve", "node-good", "node-bad")
    cert = await issued(cp, "node-good")
    assert cert.subject.rfc4514_string() == "CN=system:node:n1,O=system:nodes"

    async def failed() -> Any:
        conds = (await get_csr(cp, "node-bad")).get("status", {}).get("conditions") or []
        return next((c for c in conds if c["type"] == "Failed"), None)
    cond = await eventually(failed)
    assert cond["reason"] == "SignerValidationFailure"
    assert cond["message"] == "subject common name does not begin with system:node:"
    assert "Approved,Failed" in (await kubectl(cp, "get", "csr", "node-bad")).stdout


async def test_server_usage_on_client_signer_fails(signing: tuple[RunningControlPlane, CertificateAuthority]) -> None:
    cp, _ = signing
    request, _ = make_csr("carol")
    await kubectl(cp, "create", "-f", "-", input=csr_manifest("carol", request, usages=("server auth",)))
    await kubectl(cp, "certificate", "approve", "carol")

    async def failed() -> Any:
        conds = (await get_csr(cp, "carol")).get("status", {}).get("conditions") or []
        return next((c for c in conds if c["type"] == "Failed"), None)
    assert (await eventually(failed))["message"] == "invalid usage for client certificate: server auth"


async def test_other_signers_are_left_alone(signing: tuple[RunningControlPlane, CertificateAuthority]) -> None:
    cp, _ = signing
    request, _ = make_csr("dave")
    await kubectl(cp, "create", "-f", "-", input=csr_manifest("dave", request, signer="example.com/my-signer"))
    await kubectl(cp, "certificate", "approve", "dave")
    await asyncio.sleep(1.5)
    csr = await get_csr(cp, "dave")
    assert [c["type"] for c in csr["status"]["conditions"]] == ["Approved"]
    assert not csr["status"].get("certificate")


@pytest.mark.parametrize(("manifest", "message"), [
    (lambda r: csr_manifest("x", r, signer="kubernetes.io/legacy-unknown"),
     'spec.signerName: Invalid value: "kubernetes.io/legacy-unknown": the legacy signerName is not allowed via this API version'),
    (lambda r: csr_manifest("x", r, seconds=599),
     "spec.expirationSeconds: Invalid value: 599: may not specify a duration less than 600 seconds (10 minutes)"),
    (lambda r: csr_manifest("x", r, usages=("client auth", "bogus")),
     'spec.usages[1]: Unsupported value: "bogus"'),
    (lambda r: csr_manifest("x", r, usages=()), "spec.usages: Required value"),
    (lambda r: csr_manifest("x", base64.b64encode(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n").decode()),
     "PEM block type must be CERTIFICATE REQUEST"),
    (lambda r: csr_manifest("x", r, signer="no-slash"), "spec.signerName: Invalid value"),
])
async def test_invalid_csrs_are_refused(control_plane: RunningControlPlane, manifest: Any, message: str) -> None:
    request, _ = make_csr("x")
    proc = await kubectl(control_plane, "create", "-f", "-", input=manifest(request), check=False)
    assert proc.returncode != 0
    assert message in proc.stderr
    assert "is invalid" in proc.stderr
    assert (await kubectl(control_plane, "get", "csr", "-o", "name")).stdout == ""


async def test_system_masters_on_client_signer_is_forbidden(control_plane: RunningControlPlane) -> None:
    request, _ = make_csr("root", ("system:masters",))
    proc = await kubectl(control_plane, "create", "-f", "-", input=csr_manifest("root", request), check=False)
    assert proc.returncode != 0
    assert ('certificatesigningrequests.certificates.k8s.io "root" is forbidden: use of '
            "kubernetes.io/kube-apiserver-client signer with system:masters group is not allowed") in proc.stderr


async def test_requester_and_spec_come_from_the_server(control_plane: RunningControlPlane) -> None:
    request, _ = make_csr("eve")
    body = yaml.safe_load(csr_manifest("eve", request))
    body["spec"]["username"] = "someone-else"
    body["spec"]["groups"] = ["system:masters"]
    body["status"] = {"conditions": [{"type": "Approved", "status": "True"}]}
    await kubectl(control_plane, "create", "-f", "-", input=yaml.safe_dump(body))
    csr = await get_csr(control_plane, "eve")
    assert csr["spec"]["username"] != "someone-else"
    assert "system:masters" in csr["spec"]["groups"]  # the admin's own groups, not the body's claim
    assert not csr.get("status", {}).get("conditions")
    # the main resource never changes spec; /status never changes approval
    csr["spec"]["usages"] = ["client auth", "digital signature"]
    await kubectl(control_plane, "replace", "-f", "-", input=json.dumps(csr))
    assert (await get_csr(control_plane, "eve"))["spec"]["usages"] == ["client auth"]


def test_cleaner_durations() -> None:
    now = dt.datetime(2026, 1, 1, 12, tzinfo=dt.timezone.utc)

    def stamp(delta: dt.timedelta) -> str:
        return (now - delta).strftime("%Y-%m-%dT%H:%M:%SZ")
    pending = {"metadata": {"creationTimestamp": stamp(dt.timedelta(hours=23))}}
    assert not expired(pending, now)
    pending["metadata"]["creationTimestamp"] = stamp(dt.timedelta(hours=25))
    assert expired(pending, now)
    denied = {"metadata": {"creationTimestamp": stamp(dt.timedelta(hours=2))},
              "status": {"conditions": [{"type": "Denied", "status": "True", "lastUpdateTime": stamp(dt.timedelta(minutes=50))}]}}
    assert not expired(denied, now)
    denied["status"]["conditions"][0]["lastUpdateTime"] = stamp(dt.timedelta(minutes=61))
    assert expired(denied, now)
    approved_unissued = {"metadata": {"creationTimestamp": stamp(dt.timedelta(hours=2))},
                         "status": {"conditions": [{"type": "Approved", "status": "True",
                                                    "lastUpdateTime": stamp(dt.timedelta(hours=2))}]}}
    assert not expired(approved_unissued, now)  # upstream removes approved ones only once issued


async def test_cleaner_deletes_old_requests(control_plane: RunningControlPlane) -> None:
    """The cleaner against the API, with the controller manager's clock 25 hours ahead."""
    request, _ = make_csr("old")
    await kubectl(control_plane, "create", "-f", "-", input=csr_manifest("old", request))
    client = control_plane.client()
    later = dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=25)
    mgr = ControllerManager(client, identity="t", leader_election=False, clock=lambda: later,
                            options={"csrcleaner": {"interval": 0.2}})
    mgr.add(CSRCleanerController)
    task = asyncio.create_task(mgr.run())
    try:
        async def gone() -> bool:
            return (await kubectl(control_plane, "get", "csr", "-o", "name")).stdout == ""
        await eventually(gone)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await client.close()
    assert CSRS.plural == "certificatesigningrequests"


async def _failure(cp: RunningControlPlane, name: str) -> dict[str, Any]:
    async def failed() -> Any:
        conds = (await get_csr(cp, name)).get("status", {}).get("conditions") or []
        return next((c for c in conds if c["type"] == "Failed"), None)
    return await eventually(failed)


async def test_kubelet_serving_and_usage_rules(signing: tuple[RunningControlPlane, CertificateAuthority]) -> None:
    cp, _ = signing
    serving = "kubernetes.io/kubelet-serving"
    ok, _ = make_csr("system:node:n1", ("system:nodes",), dns=("n1.example",))
    no_san, _ = make_csr("system:node:n1", ("system:nodes",))
    client_only, _ = make_csr("system:node:n1", ("system:nodes",))
    await kubectl(cp, "create", "-f", "-", input=csr_manifest(
        "serve-ok", ok, signer=serving, usages=("digital signature", "key encipherment", "server auth")))
    await kubectl(cp, "create", "-f", "-", input=csr_manifest(
        "serve-nosan", no_san, signer=serving, usages=("digital signature", "server auth")))
    await kubectl(cp, "create", "-f", "-", input=csr_manifest(
        "client-usages", client_only, signer="kubernetes.io/kube-apiserver-client-kubelet", usages=("client auth",)))
    await kubectl(cp, "certificate", "approve", "serve-ok", "serve-nosan", "client-usages")
    cert = await issued(cp, "serve-ok")
    assert cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
        x509.DNSName) == ["n1.example"]
    assert cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value == x509.ExtendedKeyUsage(
        [ExtendedKeyUsageOID.SERVER_AUTH])
    assert (await _failure(cp, "serve-nosan"))["message"] == "DNS or IP subjectAltName is required"
    assert (await _failure(cp, "client-usages"))["message"] == \
        "usages did not match [client auth digital signature key encipherment]"


async def test_approving_needs_approve_on_the_signer(control_plane: RunningControlPlane) -> None:
    """CertificateApproval: update on ``/approval`` is not enough; the approver needs
    ``approve`` on ``signers`` for the CSR's signer name (or its ``DOMAIN/*``)."""
    cp = control_plane
    request, _ = make_csr("frank")
    await kubectl(cp, "create", "-f", "-", input=csr_manifest("frank", request, signer="example.com/team-signer"))
    await kubectl(cp, "apply", "-f", "-", input="""
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: csr-approver}
rules:
- {apiGroups: [certificates.k8s.io], resources: [certificatesigningrequests], verbs: [get, list]}
- {apiGroups: [certificates.k8s.io], resources: [certificatesigningrequests/approval], verbs: [update]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: csr-approver}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: csr-approver}
subjects: [{kind: User, name: bob, apiGroup: rbac.authorization.k8s.io}]
""")

    async def refused() -> bool:
        out = await kubectl(cp, "certificate", "approve", "frank", "--as=bob", check=False)
        assert out.returncode != 0
        assert ('certificatesigningrequests.certificates.k8s.io "frank" is forbidden: user not permitted to '
                'approve requests with signerName "example.com/team-signer"') in out.stderr, out.stderr
        return True
    await eventually(refused)
    await kubectl(cp, "apply", "-f", "-", input="""
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: team-signer-approver}
rules:
- {apiGroups: [certificates.k8s.io], resources: [signers], resourceNames: ["example.com/*"], verbs: [approve]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: team-signer-approver}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: team-signer-approver}
subjects: [{kind: User, name: bob, apiGroup: rbac.authorization.k8s.io}]
""")

    async def approved() -> bool:
        out = await kubectl(cp, "certificate", "approve", "frank", "--as=bob", check=False)
        assert out.returncode == 0, out.stderr
        return True
    await eventually(approved)
    assert [c["type"] for c in (await get_csr(cp, "frank"))["status"]["conditions"]] == ["Approved"]
