"""The remaining API groups through the official ``kubernetes`` Python client (its generated
models deserialize what vkube serves): CSR create and approval, APF defaults, DRA, CSI and
migration kinds, on a ``vkube create`` cluster and its embedded host."""

from __future__ import annotations

import json

import kubernetes
import pytest
from kubernetes import client as k
from kubernetes.client.rest import ApiException

from tests.apis.test_certificates import make_csr
from tests.cli.conftest import User


def _api(kubeconfig: str) -> k.ApiClient:
    return kubernetes.config.new_client_from_config(config_file=kubeconfig)


def test_csr_approval_and_groups_through_the_official_client(vcluster: User) -> None:
    with _api(str(vcluster.kubeconfig)) as api:
        certs = k.CertificatesV1Api(api)
        request, _ = make_csr("py-user")
        certs.create_certificate_signing_request(k.V1CertificateSigningRequest(
            metadata=k.V1ObjectMeta(name="py-user"),
            spec=k.V1CertificateSigningRequestSpec(request=request, signer_name="kubernetes.io/kube-apiserver-client",
                                                   usages=["client auth"], expiration_seconds=7200)))
        csr = certs.read_certificate_signing_request("py-user")
        assert csr.spec.username and csr.spec.expiration_seconds == 7200
        csr.status = k.V1CertificateSigningRequestStatus(conditions=[k.V1CertificateSigningRequestCondition(
            type="Approved", status="True", reason="PyApprove", message="approved by the python client")])
        # /status is the signer's: Approved there is refused (422), not dropped
        with pytest.raises(ApiException) as refused:
            certs.replace_certificate_signing_request_status("py-user", csr)
        assert refused.value.status == 422
        assert ('status.conditions: Forbidden: updates may not add a condition of type "Approved"'
                in json.loads(refused.value.body)["message"])
        approved = certs.replace_certificate_signing_request_approval("py-user", csr)
        cond = approved.status.conditions[0]
        assert (cond.type, cond.status, cond.reason) == ("Approved", "True", "PyApprove")
        assert cond.last_update_time is not None and cond.last_transition_time is not None
        names = {s.metadata.name for s in k.FlowcontrolApiserverV1Api(api).list_flow_schema().items}
        assert {"exempt", "catch-all", "global-default"} <= names
        levels = k.FlowcontrolApiserverV1Api(api).list_priority_level_configuration().items
        assert {lv.metadata.name: lv.spec.type for lv in levels}["exempt"] == "Exempt"
        migrations = k.StoragemigrationV1Api(api).list_storage_version_migration()
        assert migrations.items is not None
        cidrs = k.NetworkingV1Api(api).list_service_cidr().items
        assert [c.metadata.name for c in cidrs] == ["kubernetes"]


def test_dra_and_csi_kinds_through_the_official_client(vcluster: User) -> None:
    with _api(str(vcluster.home / "host" / "kubeconfig")) as api:
        nodes = {n.metadata.name for n in k.CoreV1Api(api).list_node().items}
        assert {c.metadata.name for c in k.StorageV1Api(api).list_csi_node().items} == nodes
        resource = k.ResourceV1Api(api)
        resource.create_device_class(k.V1DeviceClass(
            metadata=k.V1ObjectMeta(name="py-class"),
            spec=k.V1DeviceClassSpec(selectors=[k.V1DeviceSelector(cel=k.V1CELDeviceSelector(
                expression='device.driver == "py.example.com"'))])))
        claim = resource.create_namespaced_resource_claim("default", k.ResourceV1ResourceClaim(
            metadata=k.V1ObjectMeta(name="py-claim"),
            spec=k.V1ResourceClaimSpec(devices=k.V1DeviceClaim(requests=[k.V1DeviceRequest(
                name="one", exactly=k.V1ExactDeviceRequest(device_class_name="py-class"))]))))
        exact = claim.spec.devices.requests[0].exactly
        assert (exact.allocation_mode, exact.count) == ("ExactCount", 1)  # defaulted by the server
        resource.delete_namespaced_resource_claim("py-claim", "default")
        resource.delete_device_class("py-class")
