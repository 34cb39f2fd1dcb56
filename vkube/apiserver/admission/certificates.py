"""CertificateSigningRequest admission, as kube-apiserver does it:

- who asks: ``spec.username``/``uid``/``groups``/``extra`` are the requesting user's, whatever
  the body says (``csrStrategy.PrepareForCreate``), and no CSR is created pre-approved;
- ``CertificateApproval``: writing ``/approval`` needs ``approve`` on ``signers`` named by the
  CSR's signer (or ``DOMAIN/*``);
- ``CertificateSigning``: changing ``status.certificate`` needs ``sign`` on that signer;
- ``CertificateSubjectRestriction``: no ``kube-apiserver-client`` CSR for ``system:masters``.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from typing import Any

from cryptography.x509.oid import NameOID

from vkube.api.forbidden import forbidden
from vkube.api.rbac import Attributes
from vkube.api.user import UserInfo
from vkube.apiserver.context import AdmissionRequest, Context
from vkube.pki.certs import CertificateError
from vkube.pki.signing import parse_csr

__all__ = ["CertificateAdmission"]

GROUP = "certificates.k8s.io"
KUBE_APISERVER_CLIENT = "kubernetes.io/kube-apiserver-client"


class CertificateAdmission:
    """The CSR steps above; ``authorize(user, attributes)`` is the cluster's authorizer."""

    def __init__(self, authorization: Any) -> None:
        self.authorization = authorization

    def _authorized(self, user: UserInfo, verb: str, signer: str) -> bool:
        """``IsAuthorizedForSignerName``: the exact signer name, then ``DOMAIN/*``."""
        authorize: Callable[[UserInfo, Attributes], Any] = self.authorization.authorize
        names = [signer]
        if "/" in signer:
            names.append(signer.split("/", 1)[0] + "/*")
        return any(authorize(user, Attributes(verb, api_group=GROUP, api_version="*", resource="signers",
                                              name=n)).allowed for n in names)

    async def mutate(self, ctx: Context, req: AdmissionRequest) -> None:
        if not _is_csr(req) or req.operation != "CREATE" or req.subresource or req.obj is None:
            return
        spec = req.obj.setdefault("spec", {})
        if not isinstance(spec, dict):
            return
        for key in ("username", "uid", "groups", "extra"):
            spec.pop(key, None)
        user = req.user
        spec["username"] = user.name
        if user.uid:
            spec["uid"] = user.uid
        if user.groups:
            spec["groups"] = list(user.groups)
        if user.extra:
            spec["extra"] = {k: list(v) for k, v in user.extra.items()}
        req.obj.pop("status", None)

    async def validate(self, ctx: Context, req: AdmissionRequest) -> None:
        if not _is_csr(req) or req.obj is None:
            return
        spec = req.obj.get("spec") or {}
        signer = str(spec.get("signerName") or "")
        if req.operation == "CREATE" and not req.subresource and signer == KUBE_APISERVER_CLIENT:
            if "system:masters" in _organizations(spec.get("request")):
                raise forbidden(req.spec.plural, req.name,
                                f"use of {signer} signer with system:masters group is not allowed", group=GROUP)
        if req.operation != "UPDATE" or req.old is None:
            return
        if req.subresource == "approval" and not self._authorized(req.user, "approve", signer):
            raise forbidden(req.spec.plural, req.name,
                            f'user not permitted to approve requests with signerName "{signer}"', group=GROUP)
        if req.subresource == "status":
            new_cert = (req.obj.get("status") or {}).get("certificate")
            if new_cert != (req.old.get("status") or {}).get("certificate") \
                    and not self._authorized(req.user, "sign", signer):
                raise forbidden(req.spec.plural, req.name,
                                f'user not permitted to sign requests with signerName "{signer}"', group=GROUP)


def _is_csr(req: AdmissionRequest) -> bool:
    return req.spec.group == GROUP and req.spec.kind == "CertificateSigningRequest"


def _organizations(request: Any) -> list[str]:
    try:
        csr = parse_csr(base64.b64decode(str(request or ""), validate=True))
    except (binascii.Error, ValueError, CertificateError):
        return []  # validation refuses it with its own message
    return [str(a.value) for a in csr.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
