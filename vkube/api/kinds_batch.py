"""Strategies for batch/v1 Job and CronJob (``pkg/registry/batch/*``)."""

from __future__ import annotations

from vkube.api import cron
from vkube.api import printers_workloads as P
from vkube.api.defaults import default_pod_template
from vkube.api.strategy import Obj, Strategy
from vkube.api.validation import (
    Causes, invalid_value, not_supported, required, validate_immutable, validate_nonnegative,
    validate_object_meta, validate_object_meta_update,
)
from vkube.api.validation_pod import validate_pod_template
from vkube.api.workloads import validate_selector_and_template

__all__ = ["STRATEGIES", "generate_job_selector"]

_JOB_RESTART = ("OnFailure", "Never")


def generate_job_selector(job: Obj) -> None:
    """Without ``manualSelector: true`` a Job selects its pods by its own uid, and its template
    carries the matching labels. Needs ``metadata.uid``: the API server sets it before calling
    ``prepare_for_create``."""
    spec = job.get("spec")
    meta = job.get("metadata") or {}
    uid, name = meta.get("uid"), meta.get("name")
    if not isinstance(spec, dict) or spec.get("manualSelector") is True or not uid:
        return
    template = spec.setdefault("template", {})
    labels = template.setdefault("metadata", {}).setdefault("labels", {})
    labels.setdefault("batch.kubernetes.io/controller-uid", uid)
    labels.setdefault("controller-uid", uid)
    if name:
        labels.setdefault("batch.kubernetes.io/job-name", name)
        labels.setdefault("job-name", name)
    if spec.get("selector") is None:
        spec["selector"] = {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}


class JobStrategy(Strategy):
    columns = P.JOB_COLUMNS
    field_selector_keys = ("status.successful",)

    def default(self, obj: Obj) -> None:
        spec = obj.setdefault("spec", {})
        if not isinstance(spec, dict):
            return
        if spec.get("completions") is None and spec.get("parallelism") is None:
            spec["completions"] = 1
            spec["parallelism"] = 1
        spec.setdefault("parallelism", 1)
        if spec.get("backoffLimit") is None:
            spec["backoffLimit"] = 2147483647 if spec.get("backoffLimitPerIndex") is not None else 6
        spec.setdefault("completionMode", "NonIndexed")
        spec.setdefault("suspend", False)
        if spec.get("podFailurePolicy") is None:
            spec.setdefault("podReplacementPolicy", "TerminatingOrFailed")
        else:
            spec.setdefault("podReplacementPolicy", "Failed")
        default_pod_template(spec.get("template"))

    def prepare_for_create(self, obj: Obj) -> None:
        obj.pop("status", None)
        generate_job_selector(obj)

    def validate(self, obj: Obj) -> Causes:
        causes = validate_object_meta(obj, namespaced=True)
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return causes + [required("spec")]
        for key in ("parallelism", "completions", "backoffLimit", "activeDeadlineSeconds",
                    "ttlSecondsAfterFinished"):
            causes += validate_nonnegative(spec.get(key), f"spec.{key}")
        mode = spec.get("completionMode")
        if mode not in ("NonIndexed", "Indexed"):
            causes.append(not_supported("spec.completionMode", mode, ("NonIndexed", "Indexed")))
        elif mode == "Indexed" and spec.get("completions") is None:
            causes.append(required("spec.completions", "when completion mode is Indexed"))
        causes += validate_selector_and_template(spec, what="job", allowed_restart=_JOB_RESTART)
        return causes

    def validate_update(self, new: Obj, old: Obj) -> Causes:
        causes = validate_object_meta_update(new, old)
        ns, os_ = new.get("spec") or {}, old.get("spec") or {}
        causes += validate_immutable(ns.get("selector"), os_.get("selector"), "spec.selector")
        if ns.get("completionMode", "NonIndexed") == "NonIndexed":
            causes += validate_immutable(ns.get("completions"), os_.get("completions"), "spec.completions")
        causes += validate_immutable(ns.get("completionMode"), os_.get("completionMode"), "spec.completionMode")
        # the template may change only while the job is suspended and has not started
        started = (old.get("status") or {}).get("startTime")
        if not (os_.get("suspend") and not started):
            causes += validate_immutable(ns.get("template"), os_.get("template"), "spec.template")
        return causes

    def field_attrs(self, obj: Obj) -> dict[str, str]:
        attrs = super().field_attrs(obj)
        attrs["status.successful"] = str((obj.get("status") or {}).get("succeeded", 0))
        return attrs


class CronJobStrategy(Strategy):
    columns = P.CRONJOB_COLUMNS

    def default(self, obj: Obj) -> None:
        spec = obj.setdefault("spec", {})
        if not isinstance(spec, dict):
            return
        spec.setdefault("concurrencyPolicy", "Allow")
        spec.setdefault("suspend", False)
        spec.setdefault("successfulJobsHistoryLimit", 3)
        spec.setdefault("failedJobsHistoryLimit", 1)
        job_spec = (spec.get("jobTemplate") or {}).get("spec")
        if isinstance(job_spec, dict):
            default_pod_template(job_spec.get("template"))

    def prepare_for_create(self, obj: Obj) -> None:
        obj.pop("status", None)

    def validate(self, obj: Obj) -> Causes:
        causes = validate_object_meta(obj, namespaced=True)
        name = (obj.get("metadata") or {}).get("name") or ""
        if len(name) > 52:  # job names get an 11-char suffix and must stay a 63-char label
            causes.append(invalid_value("metadata.name", name, "must be no more than 52 characters"))
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return causes + [required("spec")]
        schedule = spec.get("schedule")
        if not schedule or not isinstance(schedule, str):
            causes.append(required("spec.schedule"))
        else:
            causes += [invalid_value("spec.schedule", schedule, m) for m in cron.validate(schedule)]
        tz_problem = cron.validate_time_zone(spec.get("timeZone"))
        if tz_problem:
            causes.append(invalid_value("spec.timeZone", spec.get("timeZone"), tz_problem))
        policy = spec.get("concurrencyPolicy")
        if policy not in ("Allow", "Forbid", "Replace"):
            causes.append(not_supported("spec.concurrencyPolicy", policy, ("Allow", "Forbid", "Replace")))
        for key in ("startingDeadlineSeconds", "successfulJobsHistoryLimit", "failedJobsHistoryLimit"):
            causes += validate_nonnegative(spec.get(key), f"spec.{key}")
        job_template = spec.get("jobTemplate")
        if not isinstance(job_template, dict) or not isinstance(job_template.get("spec"), dict):
            causes.append(required("spec.jobTemplate"))
        else:
            job_spec = job_template["spec"]
            if job_spec.get("selector") is not None and not job_spec.get("manualSelector"):
                causes.append(invalid_value("spec.jobTemplate.spec.selector", job_spec["selector"],
                                            "`selector` will be auto-generated"))
            causes += validate_pod_template(job_spec.get("template"), "spec.jobTemplate.spec.template",
                                            allowed_restart=_JOB_RESTART)
        return causes

    def validate_update(self, new: Obj, old: Obj) -> Causes:
        return validate_object_meta_update(new, old)


STRATEGIES: dict[tuple[str, str], type[Strategy]] = {
    ("batch", "CronJob"): CronJobStrategy,
    ("batch", "Job"): JobStrategy,
}
