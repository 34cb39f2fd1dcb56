"""The controller runtime and the built-in controllers (they use the API like any client)."""

from vkube.controllers.runtime import (
    Controller,
    ControllerManager,
    EventRecorder,
    Informer,
    WorkQueue,
    default_controllers,
)

__all__ = ["Controller", "ControllerManager", "EventRecorder", "Informer", "WorkQueue",
           "default_controllers"]
