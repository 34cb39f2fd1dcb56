"""``ValidatingAdmissionPolicy.status``: ``observedGeneration`` and ``typeChecking``, as the
policy status controller writes them — each validation's ``expression`` and
``messageExpression`` checked against the schema of every kind the policy's resourceRules name
explicitly (wildcards are not expanded), a field the kind cannot have becoming an
``expressionWarnings`` entry, with the CEL type checker CRD rules use (``cel_check``). Runs
inside the API server on the admission configuration's watch, like the CRD controller."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from vkube.api import errors
from vkube.api.admission_cel import POLICY_VARIABLES
from vkube.apiserver.context import Context
from vkube.apiserver.request import internal_context

__all__ = ["PolicyStatus", "type_warnings"]

log = logging.getLogger("vkube.apiserver.admission.policystatus")



def _gvk(group: str, version: str, kind: str) -> str:
    return f"{group}/{version}, Kind={kind}" if group else f"/{version}, Kind={kind}"


def _issues(text: str, env_types: dict[str, Any]) -> str | None:
    """CEL's type-check errors of ``text`` with these variable types (None: it checks)."""
    import celpy

    from vkube.api.cel_ast import desugar_map, to_ast
    from vkube.api.cel_check import check_ast, format_issues

    source, origin = desugar_map(text)
    try:
        ast = to_ast(celpy.Environment().compile(source), source)
        checked = check_ast(ast, env_types)
    except (ValueError, TypeError, RecursionError, Exception):  # noqa: BLE001 - not checkable: no warning
        return None
    if checked.type is not None:
        return None
    return format_issues(text, [(origin(pos), message) for pos, message in checked.issues])


def type_warnings(ctx: Context, policy: dict[str, Any]) -> list[dict[str, str]]:
    """``typeChecking.expressionWarnings``: each validation expression type-checked with
    ``object``/``oldObject`` typed as each kind the resourceRules name (and ``params`` as the
    paramKind), the rest ``dyn``."""
    spec = policy.get("spec") or {}
    kinds = []
    for rule in (spec.get("matchConstraints") or {}).get("resourceRules") or ():
        for group in sorted(g for g in rule.get("apiGroups") or () if g != "*"):
            for version in sorted(v for v in rule.get("apiVersions") or () if v != "*"):
                for resource in sorted(r for r in rule.get("resources") or () if "*" not in r and "/" not in r):
                    rs = ctx.registry.get(group, version, resource)
                    if rs is not None and rs not in kinds:
                        kinds.append(rs)
    if not kinds:
        return []
    from vkube.api.cel_types import primitive  # the CEL modules load with the first policy

    dyn = primitive("dyn")
    param_kind = spec.get("paramKind") if isinstance(spec.get("paramKind"), dict) else {}
    param_spec = ctx.registry.by_api_version_kind(str(param_kind.get("apiVersion", "")), str(param_kind.get("kind", "")))
    params = _declared(ctx.schema_for(param_spec)) if param_spec is not None else None
    base = {name: dyn for name in POLICY_VARIABLES}
    base["params"] = params or dyn
    out: list[dict[str, str]] = []
    for i, v in enumerate(spec.get("validations") or ()):
        for key in ("expression", "messageExpression"):
            text = v.get(key) if isinstance(v, dict) else None
            if not isinstance(text, str) or not text.strip():
                continue
            found = []
            for rs in kinds:
                object_type = _declared(ctx.schema_for(rs))
                if object_type is None:
                    continue
                issues = _issues(text, {**base, "object": object_type, "oldObject": object_type})
                if issues:
                    found.append(f"{_gvk(rs.group, rs.version, rs.kind)}: {issues}\n")
            if found:
                out.append({"fieldRef": f"spec.validations[{i}].{key}", "warning": "\n".join(found)})
    return out


def _declared(schema: Any) -> Any:
    from vkube.api.cel_types import decl_type

    try:
        return decl_type(schema, root=True) if schema else None
    except RecursionError:  # a self-referencing schema: left unchecked
        return None


class PolicyStatus:
    """Writes the status of each policy whose generation it has not observed yet."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())
        self.ctx.watch_tasks.add(self._task)
        self._task.add_done_callback(self.ctx.watch_tasks.discard)

    def changed(self, plural: str, obj: dict[str, Any]) -> None:
        """Called by the configuration source for every object it sees."""
        if plural != "validatingadmissionpolicies":
            return
        m = obj.get("metadata") or {}
        if (obj.get("status") or {}).get("observedGeneration") != m.get("generation"):
            self._queue.put_nowait(str(m.get("name", "")))

    async def _run(self) -> None:
        while True:
            name = await self._queue.get()
            try:
                await self._write(name)
            except errors.StatusError as exc:  # gone meanwhile, or a conflict: the next event retries
                log.debug("policy status of %s not written: %s", name, exc.message)
            except Exception:
                log.exception("policy status of %s not written", name)

    async def _write(self, name: str) -> None:
        storage = self.ctx.storage_for("admissionregistration.k8s.io", "ValidatingAdmissionPolicy")
        if storage is None:
            return
        rc = internal_context("update", resource="validatingadmissionpolicies", group="admissionregistration.k8s.io",
                              version="v1", name=name, subresource="status",
                              field_manager="validatingadmissionpolicy-status-controller")

        def update(current: dict[str, Any]) -> dict[str, Any]:
            generation = (current.get("metadata") or {}).get("generation")
            status: dict[str, Any] = {"observedGeneration": generation,
                                      "typeChecking": {"expressionWarnings": type_warnings(self.ctx, current)}}
            if not status["typeChecking"]["expressionWarnings"]:
                status["typeChecking"] = {}
            current["status"] = {**(current.get("status") or {}), **status}
            return current

        await storage.update_with(rc, None, name, update, subresource="status")
