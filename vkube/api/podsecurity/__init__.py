"""Pod Security Standards (privileged / baseline / restricted) with Kubernetes' exact checks and
messages: :mod:`.baseline` and :mod:`.restricted` (each check), :mod:`.checks` (which check
applies from which version), :mod:`.policy` (levels, versions, namespace labels, which
checks run), :mod:`.admission` (the admission decision, warnings and audit annotations)."""

from vkube.api.podsecurity.admission import (
    POD_SPEC_RESOURCES, Decision, Exemptions, PodSecurityAdmission, extract_pod_spec)
from vkube.api.podsecurity.checks import CHECKS, Check, CheckResult
from vkube.api.podsecurity.policy import (
    BASELINE, LATEST, LEVELS, PRIVILEGED, RESTRICTED, AggregateResult, Evaluator, LevelVersion,
    Policy, Version, aggregate, compare_levels, parse_level, parse_version, policy_to_evaluate)

__all__ = [
    "POD_SPEC_RESOURCES", "Decision", "Exemptions", "PodSecurityAdmission", "extract_pod_spec",
    "CHECKS", "Check", "CheckResult", "BASELINE", "LATEST", "LEVELS", "PRIVILEGED", "RESTRICTED",
    "AggregateResult", "Evaluator", "LevelVersion", "Policy", "Version", "aggregate",
    "compare_levels", "parse_level", "parse_version", "policy_to_evaluate",
]
