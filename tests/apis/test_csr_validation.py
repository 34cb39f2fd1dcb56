"""CertificateSigningRequest validation worded as upstream's
``pkg/apis/certificates/validation`` (checked against its source): usages, signer name,
conditions and ``status.certificate``, and the compatibility an update gets for problems the
stored object already had (``getValidationOptions``)."""

from __future__ import annotations

import base64
import copy

import pytest

from tests.apis.test_certificates import make_csr
from vkube.api.kinds_certificates import CSRStrategy
from vkube.pki.signing import ALL_USAGES

REQUEST, _ = make_csr("alice")


def csr(**spec: object) -> dict:
    body = {"request": REQUEST, "signerName": "kubernetes.io/kube-apiserver-client", "usages": ["client auth"]}
    body.update(spec)
    return {"apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
            "metadata": {"name": "x"}, "spec": body}


def with_status(obj: dict, **status: object) -> dict:
    return {**obj, "status": status}


def messages(obj: dict, old: dict | None = None) -> list[str]:
    strategy = CSRStrategy()
    causes = strategy.validate(obj) if old is None else strategy.validate_with_old(obj, old)
    return [f"{c['field']}: {c['message']}" for c in causes]


SUPPORTED = ", ".join(f'"{u}"' for u in sorted(ALL_USAGES))
PEM_KEY = base64.b64encode(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n").decode()


@pytest.mark.parametrize("obj, expected", [
    (csr(), []),
    (csr(usages=[]), ["spec.usages: Required value"]),
    (csr(usages=["bogus", "bogus"]), [f'spec.usages[0]: Unsupported value: "bogus": supported values: {SUPPORTED}',
                                      f'spec.usages[1]: Unsupported value: "bogus": supported values: {SUPPORTED}',
                                      'spec.usages[1]: Duplicate value: "bogus"']),
    (csr(signerName="kubernetes.io/legacy-unknown"),
     ['spec.signerName: Invalid value: "kubernetes.io/legacy-unknown": the legacy signerName is not allowed via '
      "this API version"]),
    (with_status(csr(), conditions=[{"type": "Approved", "status": "False"}]),
     ['status.conditions[0].status: Unsupported value: "False": supported values: "True"']),
    (with_status(csr(), conditions=[{"type": "Ready"}]), ["status.conditions[0].status: Required value"]),
    (with_status(csr(), conditions=[{"type": "Approved", "status": "True"}, {"type": "Denied", "status": "True"}]),
     ['status.conditions[1].type: Invalid value: "Denied": Approved and Denied conditions are mutually exclusive']),
    (with_status(csr(), conditions=[{"type": "Ready", "status": "True"}, {"type": "Ready", "status": "False"}]),
     ['status.conditions[1].type: Duplicate value: "Ready"']),
    (with_status(csr(), certificate=PEM_KEY),
     ['status.certificate: Invalid value: "<certificate data>": only CERTIFICATE PEM blocks are allowed, '
      'found "PRIVATE KEY"']),
    (with_status(csr(), certificate=base64.b64encode(b"no pem here").decode()),
     ['status.certificate: Invalid value: "<certificate data>": must contain at least one CERTIFICATE PEM block']),
])
def test_messages_as_upstream(obj: dict, expected: list[str]):
    assert messages(obj) == expected


def test_an_update_tolerates_what_the_stored_object_already_had():
    old = with_status(csr(signerName="kubernetes.io/legacy-unknown", usages=["bogus", "bogus"]),
                      conditions=[{"type": "Approved", "status": "True"}, {"type": "Denied", "status": "True"}],
                      certificate=PEM_KEY)
    new = copy.deepcopy(old)
    new["metadata"]["labels"] = {"a": "b"}
    assert messages(new, old) == []
    assert messages(new) != []  # the same object is refused on create
    # a certificate the update changes is checked, whatever the stored one was
    bad = with_status(csr(), certificate=base64.b64encode(b"still no pem").decode())
    assert messages(bad, csr()) == [
        'status.certificate: Invalid value: "<certificate data>": must contain at least one CERTIFICATE PEM block']
    assert messages(bad, bad) == []  # unchanged: tolerated


APPROVED = {"type": "Approved", "status": "True", "reason": "R"}
CERT_A = base64.b64encode(b"a").decode()


def update_messages(new: dict, old: dict, subresource: str) -> list[str]:
    return [f"{c['field']}: {c['message']}" for c in CSRStrategy().validate_subresource_update(new, old, subresource)]


@pytest.mark.parametrize("old_status, new_status, subresource, expected", [
    ({}, {"conditions": [APPROVED]}, "status",
     ['status.conditions: Forbidden: updates may not add a condition of type "Approved"']),
    ({}, {"conditions": [dict(APPROVED, type="Denied")]}, "",
     ['status.conditions: Forbidden: updates may not add a condition of type "Denied"']),
    ({}, {"conditions": [APPROVED]}, "approval", []),
    ({"conditions": [APPROVED]}, {"conditions": [dict(APPROVED, reason="Other")]}, "status",
     ['status.conditions: Forbidden: updates may not modify a condition of type "Approved"']),
    ({"conditions": [APPROVED]}, {"conditions": [dict(APPROVED, reason="Other")]}, "approval", []),
    ({"conditions": [APPROVED]}, {}, "approval",
     ['status.conditions: Forbidden: updates may not remove a condition of type "Approved"']),
    ({"conditions": [{"type": "Failed", "status": "True"}]}, {}, "status",
     ['status.conditions: Forbidden: updates may not remove a condition of type "Failed"']),
    ({}, {"conditions": [{"type": "Failed", "status": "True"}]}, "status", []),
    ({}, {"certificate": CERT_A}, "status", []),
    ({}, {"certificate": CERT_A}, "approval", ["status.certificate: Forbidden: updates may not set certificate content"]),
    ({"certificate": CERT_A}, {}, "status",
     ["status.certificate: Forbidden: updates may not modify existing certificate content"]),
    ({"certificate": CERT_A}, {"certificate": CERT_A}, "status", []),
])
def test_update_rules_per_subresource(old_status: dict, new_status: dict, subresource: str, expected: list[str]):
    """``validateCertificateSigningRequestUpdate`` with the options of the main resource,
    ``/status`` (may set the certificate once) and ``/approval`` (may set Approved/Denied)."""
    assert update_messages(with_status(csr(), **new_status), with_status(csr(), **old_status), subresource) == expected


def test_status_keeps_stored_approval_conditions_when_their_count_is_unchanged():
    """``preserveConditionInstances``: a rewritten Approved condition is put back as stored, so
    the update validates; an added one stays, so validation refuses it."""
    old = with_status(csr(), conditions=[dict(APPROVED, lastUpdateTime="2026-01-01T00:00:00Z",
                                              lastTransitionTime="2026-01-01T00:00:00Z")])
    new = with_status(csr(), conditions=[dict(APPROVED, reason="Rewritten"), {"type": "Checked", "status": "False"}])
    CSRStrategy().prepare_for_status_update(new, old)
    assert new["status"]["conditions"][0] == old["status"]["conditions"][0]
    assert new["status"]["conditions"][1]["lastTransitionTime"]  # stamped by the server
    assert update_messages(new, old, "status") == []
    added = with_status(csr(), conditions=[dict(APPROVED, reason="Rewritten"), dict(APPROVED, reason="Again")])
    CSRStrategy().prepare_for_status_update(added, old)
    assert update_messages(added, old, "status") == [
        'status.conditions: Forbidden: updates may not add a condition of type "Approved"']
