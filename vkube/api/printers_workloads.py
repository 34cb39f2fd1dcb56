"""Table columns of apps/v1 and batch/v1 kinds, as kubectl's server-side printers compute them."""

from __future__ import annotations

from typing import Any

from vkube.api.errors import BadRequest
from vkube.api.kinds import Column
from vkube.api.meta import Obj
from vkube.api.printers_core import container_images, container_names, format_labels
from vkube.api.selectors import label_selector_from_dict
from vkube.api.tables import NONE, age_column, parse_time, human_duration, relative, since


def _spec(o: Obj) -> Obj:
    return o.get("spec") or {}


def _status(o: Obj) -> Obj:
    return o.get("status") or {}


def selector_text(sel: Any) -> str:
    """``metav1.LabelSelectorAsSelector(sel).String()``; nil prints ``<none>``."""
    if sel is None:
        return NONE
    try:
        return str(label_selector_from_dict(sel))
    except BadRequest:
        return "<error>"


_TEMPLATE = ("spec", "template")
_CONTAINERS = Column("Containers", container_names, priority=1, description="Names of each container in the template.")
_IMAGES = Column("Images", container_images, priority=1, description="Images referenced by each container in the template.")
_SELECTOR = Column("Selector", lambda o: selector_text(_spec(o).get("selector")), priority=1, description="The label selector.")

DEPLOYMENT_COLUMNS = (
    Column("Ready", lambda o: f"{_status(o).get('readyReplicas', 0)}/{_spec(o).get('replicas', 0)}", description="Number of the pod with ready state"),
    Column("Up-to-date", lambda o: _status(o).get("updatedReplicas", 0), type="integer", description="Total number of non-terminated pods targeted by this deployment that have the desired template spec."),
    Column("Available", lambda o: _status(o).get("availableReplicas", 0), type="integer", description="Total number of available pods (ready for at least minReadySeconds) targeted by this deployment."),
    age_column(), _CONTAINERS, _IMAGES, _SELECTOR,
)
REPLICASET_COLUMNS = (
    Column("Desired", lambda o: _spec(o).get("replicas", 0), type="integer", description="Number of desired pods."),
    Column("Current", lambda o: _status(o).get("replicas", 0), type="integer", description="Number of actual pods."),
    Column("Ready", lambda o: _status(o).get("readyReplicas", 0), type="integer", description="Number of pods ready."),
    age_column(), _CONTAINERS, _IMAGES, _SELECTOR,
)
STATEFULSET_COLUMNS = (
    Column("Ready", lambda o: f"{_status(o).get('readyReplicas', 0)}/{_spec(o).get('replicas', 0)}", description="Number of the pod with ready state"),
    age_column(), _CONTAINERS, _IMAGES,
)
DAEMONSET_COLUMNS = (
    Column("Desired", lambda o: _status(o).get("desiredNumberScheduled", 0), type="integer", description="The total number of nodes that should be running the daemon pod."),
    Column("Current", lambda o: _status(o).get("currentNumberScheduled", 0), type="integer", description="The number of nodes that are running at least 1 daemon pod and are supposed to run the daemon pod."),
    Column("Ready", lambda o: _status(o).get("numberReady", 0), type="integer", description="The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and ready."),
    Column("Up-to-date", lambda o: _status(o).get("updatedNumberScheduled", 0), type="integer", description="The total number of nodes that are running updated daemon pod"),
    Column("Available", lambda o: _status(o).get("numberAvailable", 0), type="integer", description="The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and available."),
    Column("Node Selector", lambda o: format_labels(((_spec(o).get("template") or {}).get("spec") or {}).get("nodeSelector")), description="NodeSelector is a selector which must be true for the pod to fit on a node."),
    age_column(), _CONTAINERS, _IMAGES, _SELECTOR,
)


def controller_of(o: Obj) -> str:
    for ref in (o.get("metadata") or {}).get("ownerReferences") or ():
        if ref.get("controller"):
            group = ref.get("apiVersion", "").rpartition("/")[0]
            kind = ref.get("kind", "") + (f".{group}" if group else "")
            return f"{kind}/{ref.get('name', '')}"
    return NONE


CONTROLLERREVISION_COLUMNS = (
    Column("Controller", controller_of, description="Controller of the object"),
    Column("Revision", lambda o: o.get("revision", 0), type="integer", description="Revision indicates the revision of the state represented by Data."),
    age_column(),
)


def _has_condition(o: Obj, ctype: str) -> bool:
    return any(c.get("type") == ctype and c.get("status") == "True"
               for c in _status(o).get("conditions") or ())


def job_status(o: Obj) -> str:
    if _has_condition(o, "Complete"):
        return "Complete"
    if _has_condition(o, "Failed"):
        return "Failed"
    if (o.get("metadata") or {}).get("deletionTimestamp"):
        return "Terminating"
    for ctype in ("Suspended", "FailureTarget", "SuccessCriteriaMet"):
        if _has_condition(o, ctype):
            return ctype
    return "Running"


def job_completions(o: Obj) -> str:
    spec, succeeded = _spec(o), _status(o).get("succeeded", 0)
    if spec.get("completions") is not None:
        return f"{succeeded}/{spec['completions']}"
    parallelism = spec.get("parallelism")
    if parallelism is not None and parallelism > 1:
        return f"{succeeded}/1 of {parallelism}"
    return f"{succeeded}/1"


def _job_duration(o: Obj) -> Any:
    start, end = parse_time(_status(o).get("startTime")), parse_time(_status(o).get("completionTime"))
    if start is None:
        return ""
    if end is None:
        return relative(lambda now: since(_status(o).get("startTime"), now))
    return human_duration((end - start).total_seconds())


JOB_COLUMNS = (
    Column("Status", job_status, description="Status of the job."),
    Column("Completions", job_completions, description="The desired number of successfully finished pods the job should be run with."),
    Column("Duration", _job_duration, description="Time required to complete the job."),
    age_column(), _CONTAINERS, _IMAGES, _SELECTOR,
)

_JT = ("spec", "jobTemplate", "spec", "template")


def _last_schedule(o: Obj) -> Any:
    last = _status(o).get("lastScheduleTime")
    if not last:
        return NONE
    return relative(lambda now: since(last, now))


CRONJOB_COLUMNS = (
    Column("Schedule", lambda o: _spec(o).get("schedule", ""), description="The schedule in Cron format."),
    Column("Timezone", lambda o: _spec(o).get("timeZone") or NONE, description="The time zone name for the given schedule."),
    Column("Suspend", lambda o: "<unset>" if _spec(o).get("suspend") is None else ("True" if _spec(o)["suspend"] else "False"), description="This flag tells the controller to suspend subsequent executions."),
    Column("Active", lambda o: len(_status(o).get("active") or ()), type="integer", description="A list of pointers to currently running jobs."),
    Column("Last Schedule", _last_schedule, description="Information when was the last time the job was successfully scheduled."),
    age_column(),
    Column("Containers", lambda o: container_names(o, _JT), priority=1, description="Names of each container in the template."),
    Column("Images", lambda o: container_images(o, _JT), priority=1, description="Images referenced by each container in the template."),
    Column("Selector", lambda o: selector_text(((_spec(o).get("jobTemplate") or {}).get("spec") or {}).get("selector")), priority=1, description="The label selector."),
)
