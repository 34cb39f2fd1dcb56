"""What a snapshot file must hold before ``vkube snapshot restore`` writes any of it: objects
this cluster's API server can serve, each under the key it would have written.

The store sees bytes; a crafted file must not make it hold a value that breaks ``kubectl get``
(500s), an object under another object's key, or a resource no server knows. Every entry is
checked here, in file order, and the first bad one is named (key, line, what is wrong):

- the key is ``/GROUP/RESOURCE/NAME`` or ``/GROUP/RESOURCE/NAMESPACE/NAME`` (``core`` for the
  core group) of a built-in resource or of one a CustomResourceDefinition *in the same file*
  defines (a valid CRD: the server must be able to serve it) — keys under ``/vkube/`` never
  reach this check: ``vkube.store.snapshot`` neither saves nor restores them;
- the value, decrypted with the target cluster's keys when it is encrypted (format 1 files and
  values the source could not decrypt), is at most 3 MiB (the API's bound) of JSON: an
  object whose ``apiVersion`` is one of that resource's group/versions, whose ``kind`` is the
  resource's and whose ``metadata.name``/``namespace`` are the key's; built-in objects
  also type-check against their OpenAPI schema (as the API server's decoding would), custom
  ones their ``metadata`` against ObjectMeta's;
- the object is valid as the API server validates a create: the kind's registry strategy
  (``Strategy.validate``: names, labels, a pod's containers, a Service's ports, RBAC rules…)
  and, for a custom resource, its CRD's structural schema (no field the schema would prune)
  and CEL rules — the same code, not a copy. What a create *adds* is not asked for (defaults,
  server-set metadata: the file holds stored objects), and admission webhooks are not called
  (the cluster is paused; a restore is not a client's write);
- the object holds what the API server sets on every create: a ``metadata.uid`` (a string no
  other object of the file holds — the garbage collector and ownerReferences go by uid) and a
  ``metadata.creationTimestamp`` (RFC 3339). A file ``vkube snapshot save`` wrote always has
  both, so one lacking them was made by hand: refused rather than completed, since the restore
  writes objects as they were stored, not as a create would make them;
- a namespaced object's Namespace is in the file too (the API refuses an object in a
  namespace that does not exist); ownerReferences may dangle (the garbage collector settles
  them, as after any delete);
- what the file grants beyond what every cluster grants (``vkube.cluster.snapgrants``: RBAC
  for anonymous, all users, all service accounts, bootstrappers, nodes and components;
  webhooks, admission policies, APIServices, bootstrap tokens) is refused unless the restore
  names it with its ``--allow-…`` flag, or the file is signed with this installation's key
  and names the target cluster as its origin (``snapshot.read_signed``: this installation
  wrote it from this very cluster).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from vkube.api import errors, structural
from vkube.api.builtin import builtin_registry
from vkube.api.crd import CustomResourceStrategy
from vkube.api.crd_validation import validate_crd
from vkube.api.jsonvalue import clone
from vkube.api.meta import parse_time
from vkube.api.openapi_convert import builtin_resolver, gvk_index
from vkube.api.strategy import Strategy
from vkube.api.typecheck import TypeIndex, describe, type_errors
from vkube.apiserver.encryption import PREFIX, EncryptionConfig
from vkube.apiserver.storage import MAX_OBJECT_BYTES
from vkube.cluster.snapgrants import FLAGS, Grants
from vkube.store.snapshot import Entry, SnapshotError, entry_error

_CRD_PREFIX = "/apiextensions.k8s.io/customresourcedefinitions/"
_NAMESPACE_PREFIX = "/core/namespaces/"
#: at most this many of an object's validation errors are named (the line stays readable)
_CAUSES = 3
_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?\Z")


@dataclass
class _Resource:
    group: str
    kind: str
    namespaced: bool
    versions: set[str] = field(default_factory=set)
    custom: bool = False
    #: version -> the strategy the API server validates a create with (built-ins: the
    #: registry's; custom resources: made from the CRD in the file on first use)
    strategies: dict[str, Strategy] = field(default_factory=dict)
    crd: dict[str, Any] | None = None


class SnapshotCheck:
    """``snapshot.Check`` for a cluster whose Secrets are encrypted by ``encryption``
    (its EncryptionConfiguration file; None: a store vkube has no keys for, where an
    encrypted value cannot be checked and is refused)."""

    def __init__(self, path: str, encryption: Path | None,
                 allow: frozenset[str] = frozenset()) -> None:
        self.path = path
        self.config = EncryptionConfig.load(encryption) if encryption is not None else None
        self.allow = allow
        self.grants = Grants(path, allow)
        self.namespaces: set[str] = set()  # the Namespaces the file holds
        self.uids: dict[str, str] = {}  # metadata.uid -> the key of the object holding it
        self.resources: dict[tuple[str, str], _Resource] = {}
        for spec in builtin_registry().all():
            res = self.resources.setdefault(
                (spec.group, spec.plural), _Resource(spec.group, spec.kind, spec.namespaced))
            res.versions.add(spec.version)
            res.strategies[spec.version] = spec.strategy
        self._schemas: dict[tuple[str, str, str], tuple[dict[str, Any], TypeIndex] | None] = {}
        meta = (self._schema("", "v1", "ConfigMap") or ({}, None))[0]
        self._meta_schema = {"type": "object", "properties": {
            "apiVersion": {"type": "string"}, "kind": {"type": "string"},
            "metadata": (meta.get("properties") or {}).get("metadata") or {"type": "object"}}}
        self._meta_index = TypeIndex(self._meta_schema)

    def __call__(self, header: dict[str, Any], entries: list[Entry],
                 signed: bool = False) -> None:
        # a file this installation wrote (its HMAC checks) may grant what it holds
        self.grants = Grants(self.path, frozenset(FLAGS) if signed else self.allow)
        self.namespaces = {e.kv.key[len(_NAMESPACE_PREFIX):] for e in entries
                           if e.kv.key.startswith(_NAMESPACE_PREFIX)}
        self.uids = {}
        objects: dict[int, Any] = {}  # line -> decoded object (or the problem, a str)
        for entry in entries:  # CRDs first: a custom resource may sort before its CRD
            if entry.kv.key.startswith(_CRD_PREFIX):
                objects[entry.line] = self._crd(entry)
        for entry in entries:
            problem = objects[entry.line] if entry.line in objects else self._problem(entry)
            if isinstance(problem, str):
                raise entry_error(self.path, entry, problem)
        self.grants.check()  # once every object is known good: roles are read by bindings

    # -- one entry ---------------------------------------------------------------------------

    def _decoded(self, entry: Entry) -> Any:
        """The entry's JSON value, decrypted if need be; a str says what is wrong."""
        key, value = entry.kv.key, entry.kv.value
        if value.startswith(PREFIX):
            if self.config is None:
                return ("the value is encrypted and vkube has no key of the target cluster to "
                        "check it with")
            try:
                value = self.config.decrypt(key, value)
            except Exception:
                return ("the value is encrypted with a key the target cluster does not have "
                        "(take the snapshot again with `vkube snapshot save`, which writes "
                        "Secrets decrypted)")
        if len(value) > MAX_OBJECT_BYTES:
            return f"the value is {len(value)} bytes, over the API's limit of {MAX_OBJECT_BYTES}"
        try:
            return orjson.loads(value)
        except orjson.JSONDecodeError as exc:
            return f"the value is not JSON ({exc})"

    def _problem(self, entry: Entry) -> str | None:
        key = entry.kv.key
        obj = self._decoded(entry)
        if isinstance(obj, str):
            return obj
        parts = key[1:].split("/")
        if len(parts) not in (3, 4):
            return ("the key is not /GROUP/RESOURCE/NAME or /GROUP/RESOURCE/NAMESPACE/NAME of "
                    "an object")
        group = "" if parts[0] == "core" else parts[0]
        res = self.resources.get((group, parts[1]))
        if res is None:
            return (f"no resource {parts[1]!r} in group {parts[0]!r}: neither built in nor "
                    "defined by a CustomResourceDefinition in this file")
        if res.namespaced != (len(parts) == 4):
            return (f"{parts[1]} are {'namespaced' if res.namespaced else 'cluster-scoped'}: "
                    f"the key must be /{parts[0]}/{parts[1]}/"
                    f"{'NAMESPACE/' if res.namespaced else ''}NAME")
        problem = self._object(obj, res, parts[-1], parts[2] if res.namespaced else None)
        if problem is None:
            uid = obj["metadata"]["uid"]
            if uid in self.uids:
                return f"metadata.uid {uid!r} is also the uid of {self.uids[uid]} (uids are unique)"
            self.uids[uid] = key
            self.grants.see(entry, group, parts[1], obj)
        return problem

    def _object(self, obj: Any, res: _Resource, name: str, namespace: str | None) -> str | None:
        if not isinstance(obj, dict):
            return f"the value is JSON {type(obj).__name__}, not an object"
        api_version, kind = obj.get("apiVersion"), obj.get("kind")
        group, _, version = api_version.rpartition("/") if isinstance(api_version, str) \
            else ("", "", "")
        if group != res.group or version not in res.versions:
            wanted = ", ".join(f"{res.group}/{v}" if res.group else v for v in sorted(res.versions))
            return f"apiVersion {api_version!r} does not belong under this key (one of: {wanted})"
        if kind != res.kind:
            return f"kind {kind!r} does not belong under this key ({res.kind!r})"
        meta = obj.get("metadata")
        if not isinstance(meta, dict):
            return "metadata is missing or not an object"
        if meta.get("name") != name:
            return f"metadata.name {meta.get('name')!r} is not the key's name {name!r}"
        if namespace is not None:
            if meta.get("namespace") != namespace:
                return (f"metadata.namespace {meta.get('namespace')!r} is not the key's "
                        f"namespace {namespace!r}")
            if not _LABEL.match(namespace) or len(namespace) > 63:
                return f"namespace {namespace!r} is not a valid namespace name"
            if namespace not in self.namespaces:
                return (f"namespace {namespace!r} is not in this file: a namespaced object is "
                        f"restored with its Namespace ({_NAMESPACE_PREFIX}{namespace})")
        elif meta.get("namespace") not in (None, ""):
            return (f"metadata.namespace {meta.get('namespace')!r} is set on a cluster-scoped "
                    "object")
        if res.custom:
            problems = type_errors(obj, self._meta_schema, self._meta_index)
        else:
            schema = self._schema(res.group, version, res.kind)
            problems = type_errors(obj, schema[0], schema[1]) if schema is not None else []
        if problems:
            return f"the object does not decode as a {res.kind}: {describe(problems)}"
        return _server_set(meta) or self._invalid(obj, res, version, name)

    def _invalid(self, obj: dict[str, Any], res: _Resource, version: str,
                 name: str) -> str | None:
        """What the API server's validation of a create says of ``obj`` (None: valid)."""
        strategy = self._strategy(res, version)
        if strategy is None:
            return None
        if res.custom:
            unknown = _pruned(obj, clone(obj), getattr(strategy, "schema", None))
            if unknown is not None:
                return (f"{unknown}: field not declared in schema (the API server prunes it; a "
                        "stored object never holds it)")
        for field in strategy.write_only:
            if field in obj:
                return (f"{field}: write-only field (the API server folds it into the object on "
                        f"write; a stored {res.kind} never holds it)")
        try:
            causes = strategy.validate(obj)
        except Exception as exc:  # a validator meeting a shape its kind's decoding allows
            return f"the object cannot be validated as a {res.kind}: {type(exc).__name__}: {exc}"
        if not causes:
            return None
        return errors.invalid(res.kind, name, causes[:_CAUSES], group=res.group).message

    def _strategy(self, res: _Resource, version: str) -> Strategy | None:
        strategy = res.strategies.get(version)
        if strategy is None and res.crd is not None:
            spec = res.crd["spec"]
            storage = next((v["name"] for v in spec["versions"] if v.get("storage")), version)
            entry = next(v for v in spec["versions"] if v["name"] == version)
            strategy = res.strategies[version] = CustomResourceStrategy(
                res.crd, entry, storage_version=storage)
        return strategy

    def _crd(self, entry: Entry) -> str | None:
        """Check a CustomResourceDefinition entry and, when good, learn its resource."""
        problem = self._problem(entry)
        if problem is not None:
            return problem
        crd = self._decoded(entry)
        causes = validate_crd(crd)
        if causes:
            first = causes[0]
            return f"not a valid CustomResourceDefinition: {first.get('field')}: {first.get('message')}"
        spec = crd["spec"]
        group, plural = spec["group"], spec["names"]["plural"]
        if (group, plural) in self.resources:
            return f"it defines {plural}.{group}, which is already defined"
        self.resources[(group, plural)] = _Resource(
            group, spec["names"]["kind"], spec["scope"] == "Namespaced",
            {v["name"] for v in spec["versions"]}, custom=True, crd=crd)
        return None

    def _schema(self, group: str, version: str, kind: str) -> tuple[dict[str, Any], TypeIndex] | None:
        gvk = (group, version, kind)
        if gvk not in self._schemas:
            name = gvk_index().get(gvk)
            schema = builtin_resolver().definition(name) if name else None
            self._schemas[gvk] = (schema, TypeIndex.shared(schema)) if schema else None
        return self._schemas[gvk]


def _server_set(meta: dict[str, Any]) -> str | None:
    """What the API server sets on every create that ``meta`` lacks (None: nothing)."""
    uid = meta.get("uid")
    if not isinstance(uid, str) or not uid.strip():
        return ("metadata.uid is missing: the API server gives every object one on create and "
                "a saved snapshot holds it")
    if parse_time(meta.get("creationTimestamp")) is None:
        return (f"metadata.creationTimestamp {meta.get('creationTimestamp')!r} is not an RFC "
                "3339 time: the API server sets it on create and a saved snapshot holds it")
    return None


def _pruned(original: Any, pruned: Any, schema: dict[str, Any] | None,
            path: str = "") -> str | None:
    """The first field path of ``original`` that pruning with ``schema`` drops (None: none)."""
    if schema is None:
        return None
    if not path:
        structural.prune(pruned, schema)
    if isinstance(original, dict) and isinstance(pruned, dict):
        for key, value in original.items():
            sub = structural.child_path(path, str(key))
            if key not in pruned:
                return sub
            found = _pruned(value, pruned[key], schema, sub)
            if found is not None:
                return found
    elif isinstance(original, list) and isinstance(pruned, list):
        for i, (a, b) in enumerate(zip(original, pruned)):
            found = _pruned(a, b, schema, f"{path}[{i}]")
            if found is not None:
                return found
    return None


def check_for(path: str, encryption: Path | None,
              allow: frozenset[str] = frozenset()) -> SnapshotCheck:
    """The check of ``path`` for a target cluster with that EncryptionConfiguration file;
    ``allow``: the grants the user named (``snapgrants.FLAGS`` keys)."""
    try:
        return SnapshotCheck(path, encryption, allow)
    except ValueError as exc:  # encryption.ConfigError
        raise SnapshotError(f"{encryption}: {exc}") from None
