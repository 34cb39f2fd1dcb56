"""The built-in controllers, in the order a control plane adds them. A module of its own at
the top of the package: it imports every controller, and nothing in the package imports it
(the runtime below stays importable alone)."""

from __future__ import annotations

from vkube.controllers.certificates import CSRCleanerController, CSRSigningController
from vkube.controllers.clusterroleaggregation import ClusterRoleAggregationController
from vkube.controllers.endpoints import EndpointsController, EndpointSliceController
from vkube.controllers.flowcontrol import FlowSchemaStatusController
from vkube.controllers.gc import GarbageCollector
from vkube.controllers.hpa import HorizontalPodAutoscalerController
from vkube.controllers.ipaddress import IPAddressController
from vkube.controllers.namespace import NamespaceController
from vkube.controllers.pdb import DisruptionController
from vkube.controllers.pvcprotection import PVCProtectionController
from vkube.controllers.pvprotection import PVProtectionController
from vkube.controllers.resourceclaim import ResourceClaimController
from vkube.controllers.resourcequota import ResourceQuotaController
from vkube.controllers.runtime import Controller
from vkube.controllers.serviceaccount import RootCAConfigMapController, ServiceAccountController
from vkube.controllers.storageversionmigration import StorageVersionMigrationController
from vkube.controllers.tokens import LegacyTokensController, TokenCleaner
from vkube.controllers.workloads import WORKLOAD_CONTROLLERS

__all__ = ["default_controllers"]


def default_controllers() -> list[type[Controller]]:
    """Every built-in controller class (a new list each call: callers may filter it)."""
    return [
        NamespaceController, GarbageCollector, ServiceAccountController,
        RootCAConfigMapController, EndpointsController, EndpointSliceController,
        PVCProtectionController, PVProtectionController, DisruptionController,
        ClusterRoleAggregationController, ResourceQuotaController, TokenCleaner,
        LegacyTokensController, *WORKLOAD_CONTROLLERS, HorizontalPodAutoscalerController,
        CSRSigningController, CSRCleanerController,
        ResourceClaimController,
        StorageVersionMigrationController,
        IPAddressController,
        FlowSchemaStatusController,
    ]
