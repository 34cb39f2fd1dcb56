"""Per-kind behaviour, as in k8s.io/apiserver's ``RESTCreateStrategy``/``RESTUpdateStrategy``.

The API server runs them in one fixed order for every kind (built-in or CRD):

create: ``default`` → ``prepare_for_create`` → ``validate``
update: ``default`` → ``prepare_for_update`` → ``validate`` → ``validate_update``
status update: ``prepare_for_status_update`` → ``validate`` → ``validate_update``

``validate*`` must not mutate; they return a list of ``StatusCause`` dicts (see
``vkube.api.errors.field_error``), empty when valid. Subclasses extend, calling ``super()``.
"""

from __future__ import annotations

from vkube.api.jsonvalue import clone
from vkube.api.kinds import Column
from vkube.api.meta import Obj


class Strategy:
    """Generic behaviour, right for ConfigMaps and for CRDs without schemas."""

    #: spec-only kinds (ConfigMap, Secret) have no generation semantics beyond 1.
    has_generation: bool = True
    #: True when the kind has a status subresource: the main resource ignores status writes.
    status_subresource: bool = False
    #: Table columns after NAME (AGE is one of them, placed where kubectl places it).
    columns: tuple[Column, ...] = ()
    #: Field selector keys beyond metadata.name / metadata.namespace.
    field_selector_keys: tuple[str, ...] = ()
    #: Top-level fields a client may send but a stored object never holds (defaulting folds
    #: them away, as a Secret's ``stringData`` into ``data``): a snapshot holding one was edited.
    write_only: tuple[str, ...] = ()
    #: ``kind`` and whether it is namespaced, set by the registry for messages.
    kind: str = ""
    namespaced: bool = True

    def default(self, obj: Obj) -> None:
        """Fill defaults clients rely on (in place)."""

    def prepare_for_create(self, obj: Obj) -> None:
        """Drop what a client may not set on create (in place)."""

    def prepare_for_update(self, new: Obj, old: Obj) -> None:
        """On the main resource of a kind with a status subresource, status is kept from old."""
        if self.status_subresource:
            if "status" in old:
                new["status"] = clone(old["status"])
            else:
                new.pop("status", None)

    def prepare_for_status_update(self, new: Obj, old: Obj) -> None:
        """On ``/status`` only status changes: spec and metadata are taken from old, as the
        status strategies of Kubernetes' built-in kinds do."""
        status = new.get("status")
        keep = clone({k: v for k, v in old.items() if k != "status"})  # old's status goes anyway
        new.clear()
        new.update(keep)
        if status is None:
            new.pop("status", None)
        else:
            new["status"] = status

    def validate(self, obj: Obj) -> list[dict[str, str]]:
        from vkube.api.validation import validate_object_meta

        return validate_object_meta(obj, namespaced=self.namespaced)

    def validate_update(self, new: Obj, old: Obj) -> list[dict[str, str]]:
        return []

    def field_attrs(self, obj: Obj) -> dict[str, str]:
        """Values field selectors match against (strings, as Kubernetes compares them)."""
        meta = obj.get("metadata") or {}
        attrs = {"metadata.name": str(meta.get("name", ""))}
        if self.namespaced:
            attrs["metadata.namespace"] = str(meta.get("namespace", ""))
        return attrs

    def generation_changed(self, new: Obj, old: Obj) -> bool:
        """Generation is bumped when anything but metadata and status changes."""
        if not self.has_generation:
            return False
        strip = lambda o: {k: v for k, v in o.items() if k not in ("metadata", "status")}  # noqa: E731
        return strip(new) != strip(old)
