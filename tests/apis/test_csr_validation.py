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
