"""Validation shared by the controllers' kinds (Deployment, ReplicaSet, StatefulSet, DaemonSet,
Job): a selector that is required, non-empty and matches the template's labels."""

from __future__ import annotations

from vkube.api.errors import BadRequest
from vkube.api.meta import Obj
from vkube.api.selectors import label_selector_from_dict
from vkube.api.validation import (
    Causes, invalid_value, required, validate_immutable, validate_label_selector,
)
from vkube.api.validation_pod import validate_pod_template


__all__ = ["validate_selector_and_template", "validate_selector_immutable"]


def validate_selector_and_template(spec: Obj, *, what: str, allowed_restart: tuple[str, ...],
                                   path: str = "spec", template_required: bool = True) -> Causes:
    """``spec.selector`` required and non-empty, valid, and matching ``spec.template`` labels."""
    causes: Causes = []
    selector = spec.get("selector")
    if selector is None:
        causes.append(required(f"{path}.selector"))
    else:
        causes += validate_label_selector(selector, f"{path}.selector")
        if not selector.get("matchLabels") and not selector.get("matchExpressions"):
            causes.append(invalid_value(f"{path}.selector", selector,
                                        f"empty selector is invalid for {what}"))
    template = spec.get("template")
    if template is None:
        if template_required:
            causes.append(required(f"{path}.template"))
        return causes
    labels = ((template or {}).get("metadata") or {}).get("labels") or {}
    if selector and not causes:
        try:
            matches = label_selector_from_dict(selector).matches(labels)
        except BadRequest:
            matches = True  # already reported by validate_label_selector
        if not matches:
            causes.append(invalid_value(f"{path}.template.metadata.labels", labels,
                                        "`selector` does not match template `labels`"))
    claims = frozenset(str(((c or {}).get("metadata") or {}).get("name") or "")
                       for c in spec.get("volumeClaimTemplates") or () if isinstance(c, dict))
    causes += validate_pod_template(template, f"{path}.template", allowed_restart=allowed_restart,
                                    extra_volumes=claims)
    return causes


def validate_selector_immutable(new: Obj, old: Obj, path: str = "spec.selector") -> Causes:
    return validate_immutable((new.get("spec") or {}).get("selector"),
                              (old.get("spec") or {}).get("selector"), path)
