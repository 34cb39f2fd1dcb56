"""``ValidatingAdmissionPolicy.status``: ``observedGeneration`` and ``typeChecking``, as the
policy status controller writes them — each validation's ``expression`` and
``messageExpression`` checked against the schema of every kind the policy's resourceRules name
explicitly (wildcards are not expanded), a field the kind cannot have becoming an
``expressionWarnings`` entry. celpy has no type checker: the check is the static one CRD rules
get (``cel_static.undefined_field``) on ``object``/``oldObject`` paths. Runs inside the API
server on the admission configuration's watch, like the CRD controller."""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any

from vkube.api import errors
from vkube.api.cel_static import undefined_field
from vkube.apiserver.context import Context
from vkube.apiserver.request import internal_context

__all__ = ["PolicyStatus", "type_warnings"]

log = logging.getLogger("vkube.apiserver.admission.policystatus")

_OBJECT = re.compile(r"\b(?:object|oldObject)\.")
_PARAMS = re.compile(r"\bparams\.")


def _gvk(group: str, version: str, kind: str) -> str:
    return f"{group}/{version}, Kind={kind}" if group else f"/{version}, Kind={kind}"


def _issue(text: str, field: str, root: str = "object") -> str:
    """CEL's error text, its column at the ``.field`` after the variable the path starts at."""
    at = text.find("." + field, max(text.find(root + "."), 0))
    at = max(at, 0)
    return f"ERROR: <input>:1:{at + 1}: undefined field '{field}'\n | {text}\n | {'.' * at}^"


def type_warnings(ctx: Context, policy: dict[str, Any]) -> list[dict[str, str]]:
    spec = policy.get("spec") or {}
    kinds = []
    for rule in (spec.get("matchConstraints") or {}).get("resourceRules") or ():
        for group in sorted(g for g in rule.get("apiGroups") or () if g != "*"):
            for version in sorted(v for v in rule.get("apiVersions") or () if v != "*"):
                for resource in sorted(r for r in rule.get("resources") or () if "*" not in r and "/" not in r):
                    rs = ctx.registry.get(group, version, resource)
                    if rs is not None and rs not in kinds:
                        kinds.append(rs)
    param_kind = spec.get("paramKind") if isinstance(spec.get("paramKind"), dict) else {}
    param_spec = ctx.registry.by_api_version_kind(str(param_kind.get("apiVersion", "")), str(param_kind.get("kind", "")))
    param_schema = ctx.schema_for(param_spec) if param_spec is not None else None
    out: list[dict[str, str]] = []
    for i, v in enumerate(spec.get("validations") or ()):
        for key in ("expression", "messageExpression"):
            text = v.get(key) if isinstance(v, dict) else None
            if not isinstance(text, str):
                continue
            found = []
            if param_schema and _PARAMS.search(text):  # params: checked against the paramKind
                field = undefined_field(_PARAMS.sub("self.", _OBJECT.sub("x.", text)), param_schema)
                if field:
                    pk = f"{param_kind.get('apiVersion')}, Kind={param_kind.get('kind')}"
                    found.append(f"{pk if '/' in pk else '/' + pk}: {_issue(text, field, 'params')}\n")
            probe = _OBJECT.sub("self.", _PARAMS.sub("x.", text))
            for rs in kinds if _OBJECT.search(text) else ():
                schema = ctx.schema_for(rs)
                field = undefined_field(probe, schema) if schema else None
                if field:
                    found.append(f"{_gvk(rs.group, rs.version, rs.kind)}: {_issue(text, field)}\n")
            if found:
                out.append({"fieldRef": f"spec.validations[{i}].{key}", "warning": "\n".join(found)})
    return out


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
