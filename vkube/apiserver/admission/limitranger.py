"""LimitRanger (``plugin/pkg/admission/limitranger``): a namespace's LimitRanges default the
requests and limits of containers that set none, and refuse pods and claims outside min, max
and maxLimitRequestRatio — with upstream's messages and its ``kubernetes.io/limit-ranger``
annotation. Pod updates are not re-checked (containers' resources are immutable)."""

from __future__ import annotations

from fractions import Fraction
from typing import Any

from vkube.api.forbidden import forbidden
from vkube.api.meta import Obj
from vkube.api.quantity import Quantity, QuantityError, parse_quantity
from vkube.apiserver.context import AdmissionRequest, Context

ANNOTATION = "kubernetes.io/limit-ranger"
_MAX_MILLI = (2**63 - 1) // 1000  # resource.MaxMilliValue


def _applies(req: AdmissionRequest) -> bool:
    if req.subresource or req.obj is None or req.spec.group != "" or not req.namespace:
        return False
    if req.spec.kind == "Pod":
        return req.operation == "CREATE"
    return req.spec.kind == "PersistentVolumeClaim" and req.operation in ("CREATE", "UPDATE")


async def _limit_ranges(ctx: Context, req: AdmissionRequest) -> list[Obj]:
    cache = ctx.cache_for("", "LimitRange")
    if cache is None:
        return []
    return await cache.list(req.request, req.namespace)


def _q(value: Any) -> Quantity | None:
    try:
        return parse_quantity(value)
    except QuantityError:
        return None


def _values(req: Quantity | None, lim: Quantity | None, enforced: Quantity) -> tuple[int, int, int]:
    """``requestLimitEnforcedValues``: milli-units unless any value is too large for them."""
    vals = [q for q in (req, lim, enforced) if q is not None]
    milli = all(q.int_value() <= _MAX_MILLI for q in vals)
    conv = (lambda q: q.milli_value()) if milli else (lambda q: q.int_value())  # noqa: E731
    return (conv(req) if req else 0, conv(lim) if lim else 0, conv(enforced))


def min_constraint(limit_type: str, name: str, enforced: Quantity, request: dict, limit: dict) -> str | None:
    req, lim = _q(request[name]) if name in request else None, _q(limit[name]) if name in limit else None
    r, li, e = _values(req, lim, enforced)
    if req is None:
        return f"minimum {name} usage per {limit_type} is {enforced}.  No request is specified"
    if r < e:
        return f"minimum {name} usage per {limit_type} is {enforced}, but request is {req}"
    if lim is not None and li < e:
        return f"minimum {name} usage per {limit_type} is {enforced}, but limit is {lim}"
    return None


def max_constraint(limit_type: str, name: str, enforced: Quantity, request: dict, limit: dict) -> str | None:
    req, lim = _q(request[name]) if name in request else None, _q(limit[name]) if name in limit else None
    r, li, e = _values(req, lim, enforced)
    if lim is None:
        return f"maximum {name} usage per {limit_type} is {enforced}.  No limit is specified"
    if li > e:
        return f"maximum {name} usage per {limit_type} is {enforced}, but limit is {lim}"
    if req is not None and r > e:
        return f"maximum {name} usage per {limit_type} is {enforced}, but request is {req}"
    return None


def max_request_constraint(limit_type: str, name: str, enforced: Quantity, request: dict) -> str | None:
    req = _q(request[name]) if name in request else None
    r, _, e = _values(req, None, enforced)
    if req is None:
        return f"maximum {name} usage per {limit_type} is {enforced}.  No request is specified"
    if r > e:
        return f"maximum {name} usage per {limit_type} is {enforced}, but request is {req}"
    return None


def ratio_constraint(limit_type: str, name: str, enforced: Quantity, request: dict, limit: dict) -> str | None:
    req, lim = _q(request[name]) if name in request else None, _q(limit[name]) if name in limit else None
    r, li, _ = _values(req, lim, enforced)
    if req is None or r == 0:
        return (f"{name} max limit to request ratio per {limit_type} is {enforced}, "
                "but no request is specified or request is 0")
    if lim is None or li == 0:
        return (f"{name} max limit to request ratio per {limit_type} is {enforced}, "
                "but no limit is specified or limit is 0")
    observed = Fraction(li, r)
    if observed > enforced.value:
        return (f"{name} max limit to request ratio per {limit_type} is {enforced}, "
                f"but provided ratio is {float(observed):f}")
    return None


def _merge_defaults(container: Obj, default: dict, default_request: dict, prefix: str,
                    notes: list[str]) -> None:
    res = container.setdefault("resources", {})
    limits, requests = res.setdefault("limits", {}), res.setdefault("requests", {})
    set_limits = sorted(k for k in default if k not in limits)
    for k in set_limits:
        limits[k] = default[k]
    set_requests = sorted(k for k in default_request if k not in requests)
    for k in set_requests:
        requests[k] = default_request[k]
    for k in ("limits", "requests"):
        if not res[k]:
            del res[k]
    if set_requests:
        notes.append(", ".join(set_requests) + f" request for {prefix} {container.get('name', '')}")
    if set_limits:
        notes.append(", ".join(set_limits) + f" limit for {prefix} {container.get('name', '')}")


def _pod_totals(spec: Obj, field: str) -> dict[str, Quantity]:
    """The pod's resources: containers summed, the largest init container if larger."""
    total: dict[str, Quantity] = {}
    for c in spec.get("containers") or []:
        for k, v in ((c.get("resources") or {}).get(field) or {}).items():
            q = _q(v)
            if q is not None:
                total[k] = total[k] + q if k in total else q
    for c in spec.get("initContainers") or []:
        for k, v in ((c.get("resources") or {}).get(field) or {}).items():
            q = _q(v)
            if q is not None and (k not in total or total[k] < q):
                total[k] = q
    return total


def _check(limit_type: str, item: Obj, requests: dict, limits: dict, errs: list[str]) -> None:
    for key, fn in (("min", min_constraint), ("max", max_constraint), ("maxLimitRequestRatio", ratio_constraint)):
        for name, value in sorted((item.get(key) or {}).items()):
            enforced = _q(value)
            if enforced is not None and (err := fn(limit_type, name, enforced, requests, limits)):
                errs.append(err)


class LimitRanger:
    async def mutate(self, ctx: Context, req: AdmissionRequest) -> None:
        if not _applies(req) or req.spec.kind != "Pod":
            return
        ranges = await _limit_ranges(ctx, req)
        if not ranges:
            return
        default: dict[str, Any] = {}
        default_request: dict[str, Any] = {}
        for lr in ranges:
            for item in (lr.get("spec") or {}).get("limits") or []:
                if item.get("type") == "Container":
                    default.update(item.get("default") or {})
                    default_request.update(item.get("defaultRequest") or {})
        if not default and not default_request:
            return
        pod = req.obj
        assert pod is not None
        notes: list[str] = []
        spec = pod.setdefault("spec", {})
        for c in spec.get("containers") or []:
            _merge_defaults(c, default, default_request, "container", notes)
        for c in spec.get("initContainers") or []:
            _merge_defaults(c, default, default_request, "init container", notes)
        if notes:
            pod.setdefault("metadata", {}).setdefault("annotations", {})[ANNOTATION] = (
                "LimitRanger plugin set: " + "; ".join(notes))

    async def validate(self, ctx: Context, req: AdmissionRequest) -> None:
        if not _applies(req):
            return
        ranges = await _limit_ranges(ctx, req)
        if not ranges:
            return
        obj = req.obj
        assert obj is not None
        errs: list[str] = []
        spec = obj.get("spec") or {}
        for lr in ranges:
            for item in (lr.get("spec") or {}).get("limits") or []:
                kind = item.get("type")
                if req.spec.kind == "Pod" and kind == "Container":
                    for c in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]:
                        res = c.get("resources") or {}
                        _check("Container", item, res.get("requests") or {}, res.get("limits") or {}, errs)
                elif req.spec.kind == "Pod" and kind == "Pod":
                    reqs = {k: str(v) for k, v in _pod_totals(spec, "requests").items()}
                    lims = {k: str(v) for k, v in _pod_totals(spec, "limits").items()}
                    _check("Pod", item, reqs, lims, errs)
                elif req.spec.kind == "PersistentVolumeClaim" and kind == "PersistentVolumeClaim":
                    requests = (spec.get("resources") or {}).get("requests") or {}
                    for name, value in sorted((item.get("min") or {}).items()):
                        enforced = _q(value)
                        if enforced is not None and (e := min_constraint(kind, name, enforced, requests, {})):
                            errs.append(e)
                    for name, value in sorted((item.get("max") or {}).items()):
                        enforced = _q(value)
                        if enforced is not None and (e := max_request_constraint(kind, name, enforced, requests)):
                            errs.append(e)
        if errs:
            message = errs[0] if len(errs) == 1 else "[" + ", ".join(errs) + "]"
            raise forbidden(req.spec.plural, req.name, message, group=req.spec.group)
