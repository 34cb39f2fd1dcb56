"""Ephemeral containers (``kubectl debug``): upstream's ``validateEphemeralContainers`` for a pod
spec, the create rule, and ``ValidatePodEphemeralContainersUpdate`` for the
``pods/ephemeralcontainers`` subresource, worded as kube-apiserver words them."""

from __future__ import annotations

import json
from typing import Any

from vkube.api.meta import Obj
from vkube.api.validation import Causes, forbidden
from vkube.api.validation_pod import _validate_containers, field_not_found

__all__ = ["validate_ephemeral_containers", "validate_ephemeral_on_create",
           "validate_ephemeral_update", "keep_only_ephemeral_changes"]

PATH = "spec.ephemeralContainers"
_CANNOT = "cannot be set for an Ephemeral Container"
#: EphemeralContainerCommon's fields that are not in upstream's allowedEphemeralContainerFields,
#: in the struct's order (the order validateFieldAllowList reports them in)
_NOT_ALLOWED = ("ports", "resources", "resizePolicy", "restartPolicy", "restartPolicyRules",
                "livenessProbe", "readinessProbe", "startupProbe", "lifecycle")
MIRROR_ANNOTATION = "kubernetes.io/config.mirror"


def _is_set(value: Any) -> bool:
    """Differs from Go's zero value: absent, null, an empty list/object, "" and false are unset
    (``resources: {}``, which kubectl debug sends, is the zero ResourceRequirements)."""
    if isinstance(value, dict):
        return any(_is_set(v) for v in value.values())
    return value not in (None, "", [], False, 0)


def validate_ephemeral_containers(spec: Obj, path: str = PATH) -> Causes:
    """Per container: what every container is checked for (name, image, mounts, ...), a name
    unique among every container of the pod, a target that is a regular or init container,
    none of the fields an ephemeral container may not have, no subPath(Expr)."""
    items = spec.get("ephemeralContainers") or ()
    if not isinstance(items, list) or not items:
        return []
    other = {c.get("name") for key in ("containers", "initContainers")
             for c in spec.get(key) or () if isinstance(c, dict)}
    volumes = {v.get("name") for v in spec.get("volumes") or () if isinstance(v, dict)}
    causes = _validate_containers(items, path, volumes, set(other))  # duplicates: across all
    for i, ec in enumerate(items):
        if not isinstance(ec, dict):
            continue
        p = f"{path}[{i}]"
        target = ec.get("targetContainerName")
        if target and target not in other:
            causes.append(field_not_found(f"{p}.targetContainerName", target))
        causes += [forbidden(f"{p}.{f}", _CANNOT) for f in _NOT_ALLOWED if _is_set(ec.get(f))]
        for j, vm in enumerate(ec.get("volumeMounts") or ()):
            for key in ("subPath", "subPathExpr"):
                if isinstance(vm, dict) and vm.get(key):
                    causes.append(forbidden(f"{p}.volumeMounts[{j}].{key}", _CANNOT))
    return causes


def validate_ephemeral_on_create(pod: Obj) -> Causes:
    """ValidatePodCreate: ephemeral containers are only ever added through the subresource."""
    if (pod.get("spec") or {}).get("ephemeralContainers"):
        return [forbidden(PATH, "cannot be set on create")]
    return []


def keep_only_ephemeral_changes(new: Obj, old: Obj) -> None:
    """podEphemeralContainersStrategy.PrepareForUpdate (dropNonEphemeralContainerUpdates): the
    old pod with the new ephemeral containers; name, namespace, resourceVersion and uid come
    from the request (so a stale resourceVersion or another uid still fails)."""
    import copy

    want = (new.get("spec") or {}).get("ephemeralContainers") if isinstance(new.get("spec"), dict) else None
    nm = new.get("metadata") or {}
    keep = copy.deepcopy(old)
    for k in ("name", "namespace", "resourceVersion", "uid"):
        if k in nm:
            keep["metadata"][k] = nm[k]
    spec = keep.setdefault("spec", {})
    if want:
        spec["ephemeralContainers"] = want
    else:
        spec.pop("ephemeralContainers", None)
    new.clear()
    new.update(keep)


def validate_ephemeral_update(new: Obj, old: Obj) -> Causes:
    """ValidatePodEphemeralContainersUpdate, part 2: existing ephemeral containers stay exactly
    as they are (order may change: a patch does not keep it); static pods take none."""
    if MIRROR_ANNOTATION in ((old.get("metadata") or {}).get("annotations") or {}):
        return [forbidden("", "static pods do not support ephemeral containers")]
    current = {c.get("name"): c for c in (new.get("spec") or {}).get("ephemeralContainers") or ()
               if isinstance(c, dict)}
    causes: Causes = []
    for was in (old.get("spec") or {}).get("ephemeralContainers") or ():
        name = was.get("name")
        now = current.get(name)
        if now is None:
            causes.append(forbidden(PATH, f"existing ephemeral containers {json.dumps(name)} "
                                          "may not be removed\n"))
        elif now != was:
            causes.append(forbidden(PATH, f"existing ephemeral containers {json.dumps(name)} "
                                          f"may not be changed\n{_diff(was, now)}"))
    return causes


def _diff(was: Obj, now: Obj) -> str:
    """The fields that differ, one ``-``/``+`` pair each (upstream prints a cmp.Diff here)."""
    lines = []
    for key in sorted(was.keys() | now.keys()):
        if was.get(key) != now.get(key):
            if key in was:
                lines.append(f"- \t{key}: {json.dumps(was[key], separators=(',', ':'))},")
            if key in now:
                lines.append(f"+ \t{key}: {json.dumps(now[key], separators=(',', ':'))},")
    return "\n".join(lines)
