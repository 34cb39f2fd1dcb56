"""Priority and DefaultTolerationSeconds: the pod-scheduling defaults kube-apiserver admits.

Priority (``plugin/pkg/admission/priority``) resolves ``priorityClassName`` to ``priority`` and
``preemptionPolicy`` (the ``globalDefault`` class when none is named) and refuses unknown
classes; PriorityClasses themselves may have only one ``globalDefault``.
DefaultTolerationSeconds tolerates ``not-ready``/``unreachable`` NoExecute taints for 300 s."""

from __future__ import annotations

from vkube.api.errors import Forbidden
from vkube.api.forbidden import forbidden
from vkube.api.kinds_other import SYSTEM_PRIORITY_CLASSES
from vkube.api.meta import Obj
from vkube.apiserver.context import AdmissionRequest, Context


def _pod_create(req: AdmissionRequest) -> bool:
    return (req.spec.group == "" and req.spec.kind == "Pod" and req.operation == "CREATE"
            and not req.subresource and req.obj is not None)


class Priority:
    async def _classes(self, ctx: Context, req: AdmissionRequest) -> list[Obj]:
        cache = ctx.cache_for("scheduling.k8s.io", "PriorityClass")
        return [] if cache is None else await cache.list(req.request, None)

    async def mutate(self, ctx: Context, req: AdmissionRequest) -> None:
        if not _pod_create(req):
            return
        spec = req.obj.setdefault("spec", {})  # type: ignore[union-attr]
        name = spec.get("priorityClassName") or ""
        classes = await self._classes(ctx, req)
        chosen: Obj | None = None
        if name:
            chosen = next((c for c in classes if c["metadata"]["name"] == name), None)
            if chosen is None and name in SYSTEM_PRIORITY_CLASSES:
                chosen = {"metadata": {"name": name}, "value": SYSTEM_PRIORITY_CLASSES[name],
                          "preemptionPolicy": "PreemptLowerPriority"}
            if chosen is None:
                raise forbidden("pods", req.name, f"no PriorityClass with name {name} was found")
        else:
            defaults = sorted((c for c in classes if c.get("globalDefault")), key=lambda c: c.get("value", 0))
            chosen = defaults[0] if defaults else None
            if chosen is not None:
                spec["priorityClassName"] = chosen["metadata"]["name"]
        value = int(chosen.get("value", 0)) if chosen else 0
        given = spec.get("priority")
        if given not in (None, 0, value):
            raise forbidden("pods", req.name, f"the integer value of priority ({given}) must not be provided "
                            f"in pod spec; priority admission controller computed {value} from the given "
                            "PriorityClass name")
        spec["priority"] = value
        policy = (chosen or {}).get("preemptionPolicy") or "PreemptLowerPriority"
        # pod defaulting already wrote PreemptLowerPriority: only another value is the user's
        if spec.get("preemptionPolicy") not in (None, "PreemptLowerPriority", policy) and chosen is not None:
            raise forbidden("pods", req.name, f"the string value of PreemptionPolicy ({spec['preemptionPolicy']}) "
                            "must not be provided in pod spec; priority admission controller computed "
                            f"{policy} from the given PriorityClass name")
        spec["preemptionPolicy"] = policy

    async def validate(self, ctx: Context, req: AdmissionRequest) -> None:
        if req.spec.group != "scheduling.k8s.io" or req.spec.kind != "PriorityClass":
            return
        if req.operation not in ("CREATE", "UPDATE") or not (req.obj or {}).get("globalDefault"):
            return
        for c in await self._classes(ctx, req):
            if c.get("globalDefault") and c["metadata"]["name"] != req.name:
                raise Forbidden(
                    f'priorityclasses.scheduling.k8s.io "{req.name}" is forbidden: PriorityClass '
                    f'{c["metadata"]["name"]} is already marked as default. Only one default can exist',
                    details={"name": req.name, "group": "scheduling.k8s.io", "kind": "priorityclasses"})


class DefaultTolerationSeconds:
    def __init__(self, *, not_ready_seconds: int = 300, unreachable_seconds: int = 300) -> None:
        self.seconds = {"node.kubernetes.io/not-ready": not_ready_seconds,
                        "node.kubernetes.io/unreachable": unreachable_seconds}

    async def mutate(self, ctx: Context, req: AdmissionRequest) -> None:
        if not _pod_create(req):
            return
        tolerations = req.obj.setdefault("spec", {}).setdefault("tolerations", [])  # type: ignore[union-attr]
        if not isinstance(tolerations, list):
            return
        for key, seconds in self.seconds.items():
            if not any(isinstance(t, dict) and (t.get("key") == key or (not t.get("key") and t.get("operator") == "Exists"))
                       and t.get("effect") in ("NoExecute", None, "") for t in tolerations):
                tolerations.append({"key": key, "operator": "Exists", "effect": "NoExecute",
                                    "tolerationSeconds": seconds})
