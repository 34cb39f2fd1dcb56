"""The workload controllers: Deployment, ReplicaSet/ReplicationController, StatefulSet,
DaemonSet, Job and CronJob — level-based, idempotent, talking to the API like any client."""

from vkube.controllers.runtime import Controller
from vkube.controllers.workloads.cronjob import CronJobController
from vkube.controllers.workloads.daemonset import DaemonSetController
from vkube.controllers.workloads.deployment import DeploymentController
from vkube.controllers.workloads.job import JobController
from vkube.controllers.workloads.replicaset import (
    ReplicaSetController,
    ReplicationControllerController,
)
from vkube.controllers.workloads.statefulset import StatefulSetController

WORKLOAD_CONTROLLERS: list[type[Controller]] = [
    DeploymentController, ReplicaSetController, ReplicationControllerController,
    StatefulSetController, DaemonSetController, JobController, CronJobController,
]

__all__ = [
    "WORKLOAD_CONTROLLERS", "CronJobController", "DaemonSetController", "DeploymentController",
    "JobController", "ReplicaSetController", "ReplicationControllerController",
    "StatefulSetController",
]
