"""One generic storage per resource, configured by its ResourceSpec and Strategy — like
k8s.io/apiserver's ``registry/generic/registry.Store``. The HTTP layer parses requests; this
module owns the pipeline (defaulting → admission → validation → store) and its invariants:
server-owned metadata, optimistic concurrency, generation, finalizers and graceful deletion.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import orjson

from vkube.api import errors
from vkube.api.canonical import QuantityIndex, canonicalize_quantities
from vkube.api.jsonvalue import clone
from vkube.api.kinds import ResourceSpec
from vkube.api.meta import Obj, new_uid, rfc3339
from vkube.api.typecheck import TypeIndex, describe, type_errors
from vkube.apiserver.context import AdmissionRequest, Context
from vkube.apiserver.objects import decode, encode, meta, random_suffix
from vkube.apiserver.request import RequestContext
from vkube.apiserver.scale import SCALE, scale_replicas, set_path, to_scale
from vkube.apiserver.storeerrors import (interpret_create_error, interpret_delete_error, interpret_get_error,
                                         interpret_list_error, interpret_update_error, interpret_watch_error)
from vkube.store.base import KeyValue, RevisionMismatch, StoreError

#: the largest stored object: the request body limit (etcd's own limit is 1.5 MiB of protobuf),
#: so no decoded YAML alias, patch or unknown field can make an object bigger than a request
MAX_OBJECT_BYTES = 3 * 1024 * 1024

#: metadata fields the server owns: a client's value is replaced by the stored one on update.
_SERVER_META = ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds",
                "generation", "selfLink")
#: watch events whose decoded object and JSON are kept for the other watchers
_WATCH_SHARED = 256
_UPDATE_RETRIES = 100  # each lost race means another write landed: progress, not livelock


class _StaleWrite(errors.Conflict):
    """The object changed between read and write (the store's revision check failed): a 409
    for a client's PUT, a re-read and re-apply for PATCH and apply."""

    def __init__(self, conflict: errors.Conflict) -> None:
        super().__init__(conflict.message, details=conflict.details)


@dataclass(slots=True)
class ListResult:
    items: list[Obj]
    resource_version: int
    continue_key: str | None  # last key returned, when more remain
    remaining: int | None


class ResourceStorage:
    """Every verb takes the request's ``RequestContext`` first: dryRun and fieldManager come
    from it, admission sees its user, and store errors are interpreted per verb
    (``storeerrors``)."""

    def __init__(self, spec: ResourceSpec, ctx: Context) -> None:
        self.spec = spec
        self.ctx = ctx
        self.strategy = spec.strategy
        enc = ctx.encryption
        self.transformer = enc.for_resource(spec.group, spec.plural) if enc is not None else None
        # the latest events' objects and JSON, shared by every watcher of this resource (as
        # kube-apiserver's watch cache decodes an event once and caches its serialization):
        # each open watch decoding and encoding each event itself was a tenth of a host's
        # CPU in a rollout. Read-only once here.
        self._watch_objs: dict[tuple[str, int], Obj] = {}
        self._watch_json: dict[tuple[str, str, str], bytes] = {}
        #: where this kind's schema has quantities (canonicalization walks only there)
        self._quantities = QuantityIndex(None)
        self._types = TypeIndex(None)  # and its fields' types (the type check's lookups)

    async def _stale_at_rest(self, key: str) -> bool:
        """Stored by an older encryption provider: an unchanged update still re-writes it."""
        if self.transformer is None:
            return False
        kv = await self.ctx.store.get(key)
        return kv is not None and self.transformer.stale(kv.value)

    # ------------------------------------------------------------------ helpers
    def _decode(self, kv: Any) -> Obj:
        """Stored bytes → object of this spec's version (decrypted when encrypted at rest;
        CRDs: conversion + read defaults)."""
        if self.transformer is not None:
            kv = dataclasses.replace(kv, value=self.transformer.from_storage(kv.value, kv.key))
        obj = decode(kv)
        convert = getattr(self.strategy, "from_storage", None)
        return convert(obj) if convert is not None else obj

    def _encode(self, key: str, obj: Obj) -> bytes:
        """Object → stored bytes under ``key`` (the authenticated data when encrypted)."""
        convert = getattr(self.strategy, "to_storage", None)
        data = encode(convert(obj) if convert is not None else obj)
        if len(data) > MAX_OBJECT_BYTES:  # etcd refuses big values too: an object never outgrows a request
            raise errors.request_entity_too_large(f"limit is {MAX_OBJECT_BYTES}")
        return self.transformer.to_storage(data, key) if self.transformer is not None else data

    @property
    def _webhook_conversion(self) -> bool:
        return getattr(self.strategy, "conversion_webhook", None) is not None

    async def _converted(self, objs: list[Obj]) -> list[Obj]:
        """Objects stored in another version of a CRD with a conversion webhook, converted to
        the served version in one ConversionReview (a no-op for every other kind)."""
        if not self._webhook_conversion:
            return objs
        todo = [i for i, o in enumerate(objs) if o.get("apiVersion") != self.spec.api_version]
        if todo:
            if self.ctx.convert is None:
                raise errors.internal_error("conversion webhooks are not available on this server")
            out = await self.ctx.convert(self.strategy, [objs[i] for i in todo], self.spec.api_version)
            for i, obj in zip(todo, out):
                objs[i] = self.strategy.after_conversion(obj)
        return objs

    async def _stored_form(self, obj: Obj) -> Obj:
        """What is written: the object in the storage version (through the webhook if the CRD
        converts by webhook and the request is in another version)."""
        storage_version = getattr(self.strategy, "storage_api_version", None)
        if not self._webhook_conversion or obj.get("apiVersion") == storage_version:
            return obj
        if self.ctx.convert is None:
            raise errors.internal_error("conversion webhooks are not available on this server")
        return (await self.ctx.convert(self.strategy, [obj], storage_version))[0]

    def _watch_decode(self, kv: Any) -> Obj:
        """The object of a watch event, decoded once for all watchers (read-only)."""
        k = (kv.key, kv.mod_revision)
        obj = self._watch_objs.get(k)
        if obj is None:
            obj = self._watch_objs[k] = self._decode(kv)
            if len(self._watch_objs) > _WATCH_SHARED:
                del self._watch_objs[next(iter(self._watch_objs))]
        return obj

    def watch_object(self, kv: Any) -> Obj:
        """A store event's object, decoded once for every in-process follower of this
        resource (watchers, the node graph): read-only."""
        return self._watch_decode(kv)

    def plain_at_rest(self) -> bool:
        """Whether stored values are this kind's JSON as it is (not encrypted)."""
        return self.transformer is None

    def watch_json(self, obj: Obj) -> bytes:
        """``obj`` (a watch event's) as JSON, encoded once for all watchers: one revision of
        one key has one value."""
        m = obj["metadata"]
        k = (m.get("namespace") or "", m.get("name") or "", m.get("resourceVersion") or "")
        data = self._watch_json.get(k)
        if data is None:
            data = self._watch_json[k] = orjson.dumps(obj)
            if len(self._watch_json) > _WATCH_SHARED:
                del self._watch_json[next(iter(self._watch_json))]
        return data

    def _name_ref(self, name: str) -> str:
        return f'{self.spec.group_resource} "{name}"'

    def not_found(self, name: str) -> errors.NotFound:
        return errors.not_found(self.spec.plural, name, group=self.spec.group)

    def _check_namespace(self, namespace: str | None) -> str | None:
        if self.spec.namespaced:
            if not namespace:
                raise errors.BadRequest("the server could not find the requested resource: a namespace is required")
            return namespace
        return None

    async def get(self, rc: RequestContext, namespace: str | None, name: str, *, revision: int = 0) -> Obj:
        obj = await self._read(namespace, name, revision=revision)
        if obj is None:
            raise self.not_found(name)
        return obj

    async def get_or_none(self, rc: RequestContext, namespace: str | None, name: str) -> Obj | None:
        return await self._read(namespace, name)

    async def _read(self, namespace: str | None, name: str, *, revision: int = 0) -> Obj | None:
        try:
            kv = await self.ctx.store.get(self.spec.key(namespace, name), revision=revision)
        except StoreError as exc:
            raise interpret_get_error(exc, self.spec, name) from exc
        if not kv:
            return None
        obj = self._decode(kv)
        return (await self._converted([obj]))[0] if self._webhook_conversion else obj

    async def _admit(self, rc: RequestContext, op: str, obj: Obj | None, old: Obj | None, *,
                     namespace: str | None, name: str, subresource: str = "",
                     phase: str = "") -> None:
        """Admission as kube-apiserver orders it around the strategy: the mutating phase
        (``mutate``, or a plain ``admit``) before validation, the validating phase (``validate``)
        after it — so quota is charged only for valid objects. No phase: both."""
        if subresource == "scale" and self.spec.scale is not None and obj is not None and old is not None:
            await self._admit_scale(rc, op, obj, old, namespace=namespace, name=name, phase=phase)
            return
        req = AdmissionRequest(op, self.spec, namespace, name, obj, old, subresource, rc.dry_run,
                               user=rc.user, request=rc)
        if phase in ("", "mutate"):
            for plugin in self.ctx.admission:
                step = getattr(plugin, "mutate", None) or getattr(plugin, "admit", None)
                if step is not None:
                    await step(self.ctx, req)
        if phase in ("", "validate"):
            for plugin in self.ctx.admission:
                step = getattr(plugin, "validate", None)
                if step is not None:
                    await step(self.ctx, req)

    async def _admit_scale(self, rc: RequestContext, op: str, obj: Obj, old: Obj, *,
                           namespace: str | None, name: str, phase: str) -> None:
        """A ``*/scale`` write: the chain sees ``autoscaling/v1`` Scales made from the new and
        old objects; a mutated ``spec.replicas`` (checked as ``ValidateScale``) goes back into
        the object, as upstream's ``scaleUpdatedObjectInfo``."""
        scale = to_scale(self.spec, obj)
        req = AdmissionRequest(op, self.spec, namespace, name, scale, to_scale(self.spec, old), "scale",
                               rc.dry_run, user=rc.user, request=rc, kind=SCALE)
        for each in (phase,) if phase else ("mutate", "validate"):
            for plugin in self.ctx.admission:
                step = (getattr(plugin, "mutate", None) or getattr(plugin, "admit", None)) if each == "mutate" \
                    else getattr(plugin, "validate", None)
                if step is not None:
                    await step(self.ctx, req)
            if each == "mutate" and self.spec.scale is not None:
                set_path(obj, self.spec.scale.spec_replicas_path, scale_replicas(req.obj, name))

    def _raise_invalid(self, obj: Obj, causes: list[dict[str, str]]) -> None:
        if causes:
            name = str((obj.get("metadata") or {}).get("name") or (obj.get("metadata") or {}).get("generateName") or "")
            raise errors.invalid(self.spec.kind, name, causes, group=self.spec.group)

    def _check_type(self, obj: Any, *, typed: bool = False) -> Obj:
        """The body as its kind's Go type would decode it (400 otherwise); ``typed``: its
        values' types were checked already (a patch's decode check), so the walk is skipped."""
        if not isinstance(obj, dict):
            raise errors.BadRequest(f"the body of the request must be a {self.spec.kind} object")
        api_version, kind = obj.get("apiVersion"), obj.get("kind")
        if kind and kind != self.spec.kind:
            raise errors.BadRequest(
                f"the kind in the data ({kind}) does not match the expected kind ({self.spec.kind})"
            )
        if api_version and api_version != self.spec.api_version:
            raise errors.BadRequest(
                f"the API version in the data ({api_version}) does not match the expected API "
                f"version ({self.spec.api_version})"
            )
        obj["apiVersion"], obj["kind"] = self.spec.api_version, self.spec.kind
        if "metadata" in obj and not isinstance(obj["metadata"], dict):
            raise errors.BadRequest("metadata: must be an object")
        _drop_nulls(obj)
        if getattr(self.strategy, "custom", False):  # custom resources: schema errors are 422s
            return obj
        schema = self.ctx.schema_for(self.spec)
        if self._types.schema is not schema:
            self._types = TypeIndex.shared(schema)
        problems = [] if typed else type_errors(obj, schema, self._types)
        if problems:
            raise errors.BadRequest(
                f'{self.spec.kind} in version "{self.spec.version}" cannot be handled as a {self.spec.kind}: '
                + describe(problems),
                causes=[errors.field_error(p, m, reason="FieldValueTypeInvalid") for p, m in problems],
            )
        # quantities are stored as Kubernetes' Go type writes them back (canonical form)
        if self._quantities.schema is not schema:
            self._quantities = QuantityIndex.shared(schema)
        self._raise_invalid(obj, canonicalize_quantities(obj, schema, self._quantities))
        return obj

    def _track(self, old: Obj | None, new: Obj, manager: str | None, operation: str,
               subresource: str) -> None:
        if self.ctx.track_fields is not None:
            self.ctx.track_fields(self.spec, old, new, manager=manager or "unknown",
                                  operation=operation, subresource=subresource,
                                  now=rfc3339(self.ctx.clock()))

    # ------------------------------------------------------------------ create
    async def create(self, rc: RequestContext, namespace: str | None, body: Any, *,
                     skip_track: bool = False, checked: bool = False) -> Obj:
        """``checked``: the body is one of the server's own constant objects (the bootstrap
        RBAC policy, ~150 objects at every start of a new cluster), whose type and validation
        checks a test runs on every one of them: skipped here, the rest (defaults, admission,
        managedFields, the store's commit and watch events) as for any create."""
        obj = self._check_type(body, typed=checked)
        namespace = self._check_namespace(namespace)
        m = meta(obj)
        if self.spec.namespaced:
            if m.get("namespace") not in (None, "", namespace):
                raise errors.BadRequest(
                    "the namespace of the provided object does not match the namespace sent on the request"
                )
            m["namespace"] = namespace
        elif "namespace" in m and m["namespace"] in ("",):
            del m["namespace"]
        if m.get("resourceVersion"):
            raise errors.BadRequest("resourceVersion should not be set on objects to be created")
        if not m.get("name") and m.get("generateName") and isinstance(m["generateName"], str):
            m["name"] = m["generateName"] + random_suffix()
        for k in _SERVER_META:
            m.pop(k, None)
        m["uid"] = new_uid()
        m["creationTimestamp"] = rfc3339(self.ctx.clock())
        if self.strategy.has_generation:
            m["generation"] = 1
        self.strategy.default(obj)
        self.strategy.prepare_for_create(obj)
        await self._admit(rc, "CREATE", obj, None, namespace=namespace, name=str(m.get("name", "")), phase="mutate")
        on_create = getattr(self.strategy, "validate_create", None)  # pods: no ephemeral containers
        if not checked:
            self._raise_invalid(obj, self.strategy.validate(obj) + (on_create(obj) if on_create else []))
        await self._admit(rc, "CREATE", obj, None, namespace=namespace, name=str(m.get("name", "")), phase="validate")
        if not skip_track:
            self._track(None, obj, rc.field_manager, "Update", "")
        name = m["name"]
        key = self.spec.key(namespace, name)
        if rc.dry_run:
            if await self._read(namespace, name) is not None:
                raise errors.already_exists(self.spec.plural, name, group=self.spec.group)
            return obj
        try:
            kv = await self.ctx.store.create(key, self._encode(key, await self._stored_form(obj)))
        except StoreError as exc:
            raise interpret_create_error(exc, self.spec, name) from exc
        obj["metadata"]["resourceVersion"] = str(kv.mod_revision)
        return obj

    # ------------------------------------------------------------------ update
    async def update(self, rc: RequestContext, namespace: str | None, name: str, body: Any, *,
                     subresource: str = "") -> Obj:
        """PUT: optimistic concurrency on the body's resourceVersion (empty: unconditional)."""
        new = self._check_type(body)
        namespace = self._check_namespace(namespace)
        m = meta(new)
        if m.get("name") not in (None, name):
            raise errors.BadRequest(
                f'the name of the object ({m.get("name")}) does not match the name on the URL ({name})'
            )
        if self.spec.namespaced and m.get("namespace") not in (None, "", namespace):
            raise errors.BadRequest(
                "the namespace of the provided object does not match the namespace sent on the request"
            )
        want_rv = str(m.get("resourceVersion") or "")
        old = await self.get(rc, namespace, name)
        if want_rv and want_rv != old["metadata"]["resourceVersion"]:
            raise errors.conflict(self.spec.plural, name, group=self.spec.group)
        return await self._write_update(rc, old, new, subresource=subresource, operation="Update")

    async def update_with(self, rc: RequestContext, namespace: str | None, name: str,
                          fn: Callable[[Obj], Obj], *, subresource: str = "", operation: str = "Update",
                          create_if_missing: bool = False, fn_copies: bool = False,
                          typed: bool = False) -> tuple[Obj, bool]:
        """Read-modify-write with retries on conflict (PATCH and server-side apply).
        ``fn`` gets a deep copy of the current object (``{}`` when absent and
        ``create_if_missing``) and returns the desired one; with ``fn_copies`` it gets the
        current object itself, which it promises to leave alone (every patch function works
        on its own copy). ``typed``: ``fn`` type-checked what it returns against the kind's
        schema (or only set values of known types on a stored object), so that walk is not
        repeated. Returns (object, created)."""
        namespace = self._check_namespace(namespace)
        for _ in range(_UPDATE_RETRIES):
            current = await self.get_or_none(rc, namespace, name)
            if current is None:
                if not create_if_missing:
                    raise self.not_found(name)
                desired = fn({})
                desired = self._check_type(desired)
                dm = meta(desired)
                if dm.get("name") not in (None, name):
                    raise errors.BadRequest(
                        f'the name of the object ({dm.get("name")}) does not match the name on the URL ({name})'
                    )
                dm["name"] = name
                try:
                    return await self.create(rc, namespace, desired, skip_track=True), True
                except errors.AlreadyExists:
                    continue
            desired = fn(current if fn_copies else clone(current))
            desired = self._check_type(desired, typed=typed)
            dm = meta(desired)
            want_rv = str(dm.get("resourceVersion") or "")
            if want_rv and want_rv != current["metadata"]["resourceVersion"]:
                raise errors.conflict(self.spec.plural, name, group=self.spec.group)
            dm["resourceVersion"] = current["metadata"]["resourceVersion"]
            if dm.get("name") not in (None, name):
                raise errors.BadRequest(
                    f'the name of the object ({dm.get("name")}) does not match the name on the URL ({name})'
                )
            try:
                return await self._write_update(rc, current, desired, subresource=subresource,
                                                operation=operation, precondition=True), False
            except _StaleWrite:
                # someone wrote between our read and write: read again and re-apply (a version
                # the patch itself names then no longer matches, and that is the client's 409)
                continue
        raise errors.conflict(self.spec.plural, name, group=self.spec.group)

    async def _write_update(self, rc: RequestContext, old: Obj, new: Obj, *, subresource: str,
                            operation: str, precondition: bool = True, skip_track: bool = False) -> Obj:
        om, nm = old["metadata"], meta(new)
        name = om["name"]
        namespace = om.get("namespace")
        if nm.get("uid") and nm["uid"] != om.get("uid"):  # a write meant for another incarnation
            raise errors.Conflict(
                f"Precondition failed: UID in precondition: {nm['uid']}, UID in object meta: {om.get('uid')}",
                details={"name": name, "kind": self.spec.plural})
        nm["name"] = name
        if self.spec.namespaced:
            nm["namespace"] = namespace
        for k in _SERVER_META:
            if k in om:
                nm[k] = om[k]
            else:
                nm.pop(k, None)
        if subresource == "status":
            self.strategy.prepare_for_status_update(new, old)
            nm = new["metadata"]
        elif subresource == "approval":  # CertificateSigningRequest: Approved/Denied only
            self.strategy.prepare_for_approval_update(new, old)
            nm = new["metadata"]
        elif subresource == "ephemeralcontainers":  # pods: only spec.ephemeralContainers
            self.strategy.prepare_for_ephemeral_update(new, old)
            nm = new["metadata"]
        elif subresource in ("binding", "finalize"):
            pass  # binding writes spec.nodeName and status together; finalize only spec.finalizers
        else:
            self.strategy.default(new)
            self.strategy.prepare_for_update(new, old)
        if "deletionTimestamp" in om:
            added = set(nm.get("finalizers") or ()) - set(om.get("finalizers") or ())
            if added:
                go_list = "[]string{" + ", ".join(f'"{f}"' for f in sorted(added)) + "}"
                self._raise_invalid(new, [errors.field_error(
                    "metadata.finalizers", "Forbidden: no new finalizers can be added if the object "
                    f"is being deleted, found new finalizers {go_list}", reason="FieldValueForbidden")])
        await self._admit(rc, "UPDATE", new, old, namespace=namespace, name=name, subresource=subresource,
                          phase="mutate")
        ratchet = getattr(self.strategy, "validate_with_old", None)  # CRDs: validation ratcheting
        causes = ratchet(new, old) if ratchet is not None else self.strategy.validate(new)
        if subresource != "binding":  # nodeName is otherwise immutable on pods
            by_sub = getattr(self.strategy, "validate_subresource_update", None)  # CSR /status, /approval
            causes += by_sub(new, old, subresource) if by_sub is not None else self.strategy.validate_update(new, old)
        self._raise_invalid(new, causes)
        await self._admit(rc, "UPDATE", new, old, namespace=namespace, name=name, subresource=subresource,
                          phase="validate")
        if self.strategy.has_generation and self.strategy.generation_changed(new, old):
            nm["generation"] = int(om.get("generation") or 1) + 1
        if not skip_track:
            self._track(old, new, rc.field_manager, operation, subresource)
        nm["resourceVersion"] = om["resourceVersion"]
        key = self.spec.key(namespace, name)
        if _same(new, old) and not await self._stale_at_rest(key):
            return old
        if rc.dry_run:
            return new
        if self._finalized(new):
            return await self._remove(key, new)
        try:
            kv = await self.ctx.store.update(
                key, self._encode(key, await self._stored_form(new)),
                expected_mod_revision=int(om["resourceVersion"]) if precondition else 0,
            )
        except RevisionMismatch as exc:
            raise _StaleWrite(interpret_update_error(exc, self.spec, name)) from None
        except StoreError as exc:
            raise interpret_update_error(exc, self.spec, name) from exc
        nm["resourceVersion"] = str(kv.mod_revision)
        return new

    def _finalized(self, obj: Obj) -> bool:
        """A terminating object with no finalizers left (and, for pods, no grace left)."""
        m = obj["metadata"]
        if "deletionTimestamp" not in m or m.get("finalizers"):
            return False
        if self.spec.kind == "Namespace" and self.spec.group == "" and (obj.get("spec") or {}).get("finalizers"):
            return False
        return int(m.get("deletionGracePeriodSeconds") or 0) == 0

    async def _remove(self, key: str, obj: Obj) -> Obj:
        """The last finalizer went away in an update: the update removes the object."""
        try:
            kv = await self.ctx.store.delete(key, expected_mod_revision=int(obj["metadata"]["resourceVersion"]))
        except RevisionMismatch as exc:
            raise _StaleWrite(interpret_update_error(exc, self.spec, obj["metadata"]["name"])) from None
        except StoreError as exc:
            raise interpret_delete_error(exc, self.spec, obj["metadata"]["name"]) from exc
        obj["metadata"]["resourceVersion"] = str(kv.mod_revision)
        return obj

    # ------------------------------------------------------------------ delete
    async def delete(self, rc: RequestContext, namespace: str | None, name: str, *,
                     options: Obj | None = None) -> tuple[Obj, bool]:
        """Returns (object, removed_now). Objects with finalizers, pods on a node with a grace
        period and namespaces with spec.finalizers get a deletionTimestamp instead."""
        namespace = self._check_namespace(namespace)
        options = options or {}
        for _ in range(_UPDATE_RETRIES):
            obj = await self.get(rc, namespace, name)
            m = obj["metadata"]
            pre = options.get("preconditions") or {}
            if pre.get("uid") and pre["uid"] != m.get("uid"):
                raise errors.Conflict(
                    f"Precondition failed: UID in precondition: {pre['uid']}, UID in object meta: {m.get('uid')}"
                )
            if pre.get("resourceVersion") and pre["resourceVersion"] != m.get("resourceVersion"):
                raise errors.Conflict(
                    f"Precondition failed: ResourceVersion in precondition: {pre['resourceVersion']}, "
                    f"ResourceVersion in object meta: {m.get('resourceVersion')}"
                )
            await self._admit(rc, "DELETE", None, obj, namespace=namespace, name=name)
            new = clone(obj)
            nm = new["metadata"]
            finalizers = list(nm.get("finalizers") or [])
            policy = options.get("propagationPolicy")
            if policy is None and options.get("orphanDependents") is True:
                policy = "Orphan"
            if policy not in (None, "Orphan", "Foreground", "Background"):
                raise errors.BadRequest(
                    f'propagationPolicy: Unsupported value: "{policy}": supported values: '
                    '"Foreground", "Background", "Orphan", "nil"'
                )
            for extra in getattr(self.strategy, "delete_finalizers", ()):
                if extra not in finalizers:  # e.g. a CRD's cleanup: its objects go first
                    finalizers.append(extra)
            if policy == "Orphan" and "orphan" not in finalizers:
                finalizers.append("orphan")
            elif policy == "Foreground" and "foregroundDeletion" not in finalizers:
                finalizers.append("foregroundDeletion")
            if policy in ("Orphan", "Foreground") and "deletionTimestamp" in nm:
                finalizers = [f for f in finalizers if f != ("foregroundDeletion" if policy == "Orphan" else "orphan")]
            grace = self._grace_period(obj, options.get("gracePeriodSeconds"))
            ns_finalizers = self.spec.kind == "Namespace" and self.spec.group == "" and (new.get("spec") or {}).get("finalizers")
            if not finalizers and grace == 0 and not ns_finalizers:
                if rc.dry_run:
                    return obj, True
                try:
                    kv = await self.ctx.store.delete(self.spec.key(namespace, name),
                                                     expected_mod_revision=int(m["resourceVersion"]))
                except RevisionMismatch:
                    continue  # written since our read: read again and decide again
                except StoreError as exc:
                    raise interpret_delete_error(exc, self.spec, name) from exc
                obj["metadata"]["resourceVersion"] = str(kv.mod_revision)
                return obj, True
            if finalizers:
                nm["finalizers"] = finalizers
            now = self.ctx.clock()
            if "deletionTimestamp" not in nm:
                nm["deletionTimestamp"] = rfc3339(now + dt.timedelta(seconds=grace))
                nm["deletionGracePeriodSeconds"] = grace
                if self.strategy.has_generation:
                    nm["generation"] = int(nm.get("generation") or 1) + 1
                if ns_finalizers:
                    new.setdefault("status", {})["phase"] = "Terminating"
            elif grace < int(nm.get("deletionGracePeriodSeconds") or 0):
                nm["deletionTimestamp"] = rfc3339(now + dt.timedelta(seconds=grace))
                nm["deletionGracePeriodSeconds"] = grace
            if _same(new, obj):
                return obj, False
            if rc.dry_run:
                return new, False
            try:
                kv = await self.ctx.store.update(self.spec.key(namespace, name),
                                                 self._encode(self.spec.key(namespace, name),
                                                              await self._stored_form(new)),
                                                 expected_mod_revision=int(m["resourceVersion"]))
            except RevisionMismatch:
                continue  # written since our read: read again and decide again
            except StoreError as exc:
                raise interpret_delete_error(exc, self.spec, name) from exc
            nm["resourceVersion"] = str(kv.mod_revision)
            return new, False
        raise errors.conflict(self.spec.plural, name, group=self.spec.group)

    async def delete_collection(self, rc: RequestContext, namespace: str | None, *, options: Obj | None = None,
                                label_selector: Any = None, field_selector: Any = None) -> tuple[list[Obj], int]:
        """``DeleteCollection``: delete what the selectors match, one by one (each admitted);
        an object deleted meanwhile by someone else is skipped. Returns (deleted, list revision)."""
        result = await self.list(rc, namespace, label_selector=label_selector, field_selector=field_selector)
        deleted = []
        for obj in result.items:
            m = obj["metadata"]
            try:
                out, _ = await self.delete(rc, m.get("namespace"), m["name"], options=options)
            except errors.NotFound:
                continue
            deleted.append(out)
        return deleted, result.resource_version

    def _grace_period(self, obj: Obj, requested: Any) -> int:
        """Only pods bound to a node and still running get a grace period, as in Kubernetes."""
        if self.spec.kind != "Pod" or self.spec.group != "":
            return 0
        spec, status = obj.get("spec") or {}, obj.get("status") or {}
        if not spec.get("nodeName") or status.get("phase") in ("Succeeded", "Failed"):
            return 0
        if requested is None:
            requested = spec.get("terminationGracePeriodSeconds", 30)
        try:
            grace = int(requested)
        except (TypeError, ValueError):
            raise errors.BadRequest(f'gracePeriodSeconds: Invalid value: "{requested}"') from None
        return max(grace, 0)

    # ------------------------------------------------------------------ list / watch
    async def list(self, rc: RequestContext, namespace: str | None, *, label_selector: Any = None,
                   field_selector: Any = None, limit: int = 0, start_after: str = "",
                   revision: int = 0) -> ListResult:
        prefix = self.spec.key_prefix(namespace)
        items: list[Obj] = []
        last_key = start_after
        filtered = label_selector is not None or field_selector is not None
        # Unfiltered pages are exact; filtered ones read ahead in chunks and stop at the last
        # returned item, so the continue key never skips an unexamined object.
        chunk = (limit if not filtered else max(limit * 2, 256)) if limit else 0
        rev = revision
        try:
            while True:
                res = await self.ctx.store.range(prefix, start_after=last_key, limit=chunk, revision=rev)
                rev = res.revision
                for i, kv in enumerate(res.kvs):
                    obj = self._decode(kv)
                    last_key = kv.key
                    if self.matches(obj, label_selector, field_selector):
                        items.append(obj)
                        if limit and len(items) >= limit:
                            more = res.more or i < len(res.kvs) - 1
                            remaining = None
                            if more and not filtered:
                                remaining = res.count - len(res.kvs)
                            return ListResult(await self._converted(items), rev, last_key if more else None,
                                              remaining)
                if not res.more:
                    return ListResult(await self._converted(items), rev, None, None)
        except StoreError as exc:
            raise interpret_list_error(exc, self.spec) from exc

    def matches(self, obj: Obj, label_selector: Any, field_selector: Any) -> bool:
        if label_selector is not None and not label_selector.matches((obj.get("metadata") or {}).get("labels") or {}):
            return False
        if field_selector is not None and not field_selector.matches(self.strategy.field_attrs(obj)):
            return False
        return True

    async def watch(self, rc: RequestContext, namespace: str | None, *, after_revision: int,
                    label_selector: Any = None, field_selector: Any = None
                    ) -> AsyncIterator[tuple[str, Obj]]:
        """Store events filtered by selectors, as Kubernetes does (``watch_event``). The
        objects are shared with the other watchers: read-only."""
        cursor = self.watch_cursor(rc, namespace, after_revision)
        try:
            while True:
                try:
                    ev = await cursor.next()
                except StoreError as exc:
                    raise interpret_watch_error(exc, self.spec) from exc
                if ev is None:
                    return
                item = await self.watch_event(ev, label_selector, field_selector)
                if item is not None:
                    yield item
        finally:
            cursor.close()

    def watch_cursor(self, rc: RequestContext, namespace: str | None, after_revision: int) -> Any:
        """This resource's store events after ``after_revision``, from the cluster's watch
        fan-out (``vkube.store.fanout.Cursor``: ``await next()``, ``close()``)."""
        return self.ctx.watch_fanout().cursor(self.spec.key_prefix(namespace), after_revision)

    async def watch_event(self, ev: Any, label_selector: Any = None, field_selector: Any = None
                          ) -> tuple[str, Obj] | None:
        """One store event as a watcher with these selectors sees it, or None: an object
        that stops matching is DELETED for this watcher, one that starts matching is ADDED.
        The object is shared with the other watchers: read-only."""
        if self._webhook_conversion:  # converted per watcher (a webhook call each)
            obj = (await self._converted([self._decode(ev.kv)]))[0]
        else:
            obj = self._watch_decode(ev.kv)
        if label_selector is None and field_selector is None:
            return ev.type, obj
        now_match = self.matches(obj, label_selector, field_selector)
        if ev.prev is None:
            prev = None
        elif self._webhook_conversion:
            prev = (await self._converted([self._decode(ev.prev)]))[0]
        else:
            prev = self._watch_decode(ev.prev)
        prev_match = prev is not None and self.matches(prev, label_selector, field_selector)
        if ev.type == "DELETED":
            return ("DELETED", obj) if now_match or prev_match else None
        if ev.type == "ADDED":
            return ("ADDED", obj) if now_match else None
        if now_match:
            return ("MODIFIED" if prev_match else "ADDED"), obj
        if prev_match:
            return "DELETED", obj
        return None


def _drop_nulls(node: Any) -> None:
    """``"field": null`` decodes to an absent field in Kubernetes' typed objects; drop them so
    no per-kind code meets a None where it expects a value. Most bodies hold no null at all:
    one C-speed encode tells (a string containing "null" only costs the walk). Below that, the
    walk enters only the containers whose encoding holds "null" (a pod's conditions carry
    ``lastProbeTime: null``; its spec and metadata are not walked)."""
    try:
        if b"null" not in orjson.dumps(node):
            return
    except TypeError:  # not JSON-encodable (huge ints): walk it all
        _drop_nulls_walk(node)
        return
    _drop_nulls_guided(node)


def _holds_null(node: Any) -> bool:
    try:
        return b"null" in orjson.dumps(node)
    except TypeError:
        return True


def _drop_nulls_guided(node: Any) -> None:
    """``_drop_nulls_walk`` for an encodable ``node`` known to hold "null" somewhere."""
    if isinstance(node, dict):
        for k in [k for k, v in node.items() if v is None]:
            del node[k]
        children: Any = node.values()
    else:
        children = node
    for v in children:
        if isinstance(v, (dict, list)) and _holds_null(v):
            _drop_nulls_guided(v)


def _drop_nulls_walk(node: Any) -> None:
    if isinstance(node, dict):
        for k in [k for k, v in node.items() if v is None]:
            del node[k]
        for v in node.values():
            if isinstance(v, (dict, list)):
                _drop_nulls_walk(v)
    elif isinstance(node, list):
        for v in node:
            if isinstance(v, (dict, list)):
                _drop_nulls_walk(v)


def _same(a: Obj, b: Obj) -> bool:
    """Equal but for managedFields timestamps: a no-op write is not written (as Kubernetes)."""
    if a == b:
        return True
    am, bm = a.get("metadata") or {}, b.get("metadata") or {}
    if {k: v for k, v in a.items() if k != "metadata"} != {k: v for k, v in b.items() if k != "metadata"}:
        return False
    strip = lambda m: {k: v for k, v in m.items() if k != "managedFields"}  # noqa: E731
    if strip(am) != strip(bm):
        return False
    fields = lambda m: [{k: v for k, v in e.items() if k != "time"} for e in m.get("managedFields") or []]  # noqa: E731
    return fields(am) == fields(bm)
