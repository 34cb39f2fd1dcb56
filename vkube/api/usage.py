"""The simulated resource usage of pods on the embedded host (what its kubelets would report
to metrics-server), as data on the pod, KWOK-style.

A pod's usage is set by two annotations, each either one quantity for the whole pod or
per-container ``NAME=QUANTITY`` pairs separated by commas; a percentage is a share of the
container's request::

    vkube.io/cpu-usage: 250m                 # the pod uses 250m, split over its containers
    vkube.io/cpu-usage: "app=200m,log=5m"    # per container
    vkube.io/memory-usage: 80%               # each container at 80 % of its memory request

A pod-wide quantity is split in proportion to the containers' requests (evenly without
requests). Without an annotation a container uses ``DEFAULT_SHARE`` of its request, or the
small floor below when it requests nothing. Only running pods have usage, as only running
containers are measured by cAdvisor.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

from vkube.api.meta import Obj
from vkube.api.quantity import QuantityError, format_quantity, parse_quantity

__all__ = ["CPU_ANNOTATION", "MEMORY_ANNOTATION", "DEFAULT_SHARE", "UsageError", "container_usage",
           "parse_usage", "pod_usage"]

CPU_ANNOTATION = "vkube.io/cpu-usage"
MEMORY_ANNOTATION = "vkube.io/memory-usage"
ANNOTATIONS = {"cpu": CPU_ANNOTATION, "memory": MEMORY_ANNOTATION}
#: a container without an annotation uses this share of its request
DEFAULT_SHARE = Fraction(1, 10)
#: ... or this much when it requests nothing (1m CPU, 4 MiB), so nothing reports zero
FLOOR = {"cpu": Fraction(1, 1000), "memory": Fraction(4 * 1024 * 1024)}


class UsageError(ValueError):
    """An annotation that is not a usage; the message names the annotation."""


def parse_usage(text: str, annotation: str) -> tuple[Any, dict[str, Any]]:
    """``(pod_wide, per_container)``: each value a Fraction (an amount) or a str ending in
    ``%`` (a share of the request)."""

    def one(value: str) -> Any:
        value = value.strip()
        if value.endswith("%"):
            try:
                pct = Fraction(value[:-1])
            except (ValueError, ZeroDivisionError):
                raise UsageError(f"{annotation}: {value!r} is not a percentage") from None
            if pct < 0:
                raise UsageError(f"{annotation}: {value!r} must not be negative")
            return value
        try:
            q = parse_quantity(value)
        except (QuantityError, TypeError, ValueError):
            raise UsageError(f"{annotation}: {value!r} is not a quantity (e.g. 250m, 1Gi, 80%)") from None
        if q.value < 0:
            raise UsageError(f"{annotation}: {value!r} must not be negative")
        return q.value

    if "=" not in text:
        return one(text), {}
    per: dict[str, Any] = {}
    for part in text.split(","):
        name, sep, value = part.partition("=")
        if not sep or not name.strip():
            raise UsageError(f"{annotation}: {part.strip()!r} is not NAME=QUANTITY")
        per[name.strip()] = one(value)
    return None, per


def _request(container: Obj, resource: str) -> Fraction:
    res = container.get("resources") or {}
    value = (res.get("requests") or {}).get(resource) or (res.get("limits") or {}).get(resource)
    if value is None:
        return Fraction(0)
    try:
        return parse_quantity(value).value
    except (QuantityError, TypeError, ValueError):
        return Fraction(0)


def _resolve(value: Any, request: Fraction, resource: str) -> Fraction:
    if isinstance(value, str):  # a percentage of the request
        return request * Fraction(value[:-1]) / 100
    return value


def container_usage(pod: Obj, resource: str) -> dict[str, Fraction]:
    """Usage of ``resource`` ("cpu" or "memory") per container name; raises UsageError for a
    malformed annotation."""
    containers = [c for c in (pod.get("spec") or {}).get("containers") or () if isinstance(c, dict)]
    requests = {c.get("name", ""): _request(c, resource) for c in containers}
    text = ((pod.get("metadata") or {}).get("annotations") or {}).get(ANNOTATIONS[resource])
    pod_wide, per = parse_usage(str(text), ANNOTATIONS[resource]) if text is not None else (None, {})
    out: dict[str, Fraction] = {}
    total_request = sum(requests.values(), Fraction(0))
    for name, request in requests.items():
        if name in per:
            out[name] = _resolve(per[name], request, resource)
        elif isinstance(pod_wide, str):
            out[name] = _resolve(pod_wide, request, resource)
        elif pod_wide is not None:
            share = request / total_request if total_request else Fraction(1, len(requests))
            out[name] = pod_wide * share
        else:
            out[name] = request * DEFAULT_SHARE if request else FLOOR[resource]
    return out


def _fmt(value: Fraction, resource: str) -> str:
    if resource == "cpu":  # metrics-server reports nanocores, kubectl rounds to millicores
        return f"{int(value * 10**9)}n" if value else "0"
    return f"{int(value) // 1024}Ki" if value else "0"


def pod_usage(pod: Obj) -> list[dict[str, Any]]:
    """The ``containers`` list of a PodMetrics object (``name``, ``usage``)."""
    cpu, memory = container_usage(pod, "cpu"), container_usage(pod, "memory")
    return [{"name": name, "usage": {"cpu": _fmt(cpu[name], "cpu"), "memory": _fmt(memory[name], "memory")}}
            for name in cpu]


def total(values: dict[str, Fraction]) -> Fraction:
    return sum(values.values(), Fraction(0))


def format_usage(value: Fraction, resource: str) -> str:
    """A node total in metrics-server's units."""
    return _fmt(value, resource) if value else format_quantity(0)
