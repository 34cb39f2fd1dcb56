"""Template hashes and ControllerRevisions.

Kubernetes hashes a pod template with FNV-32a over a deterministic dump of the Go struct, mixes
in ``collisionCount`` (little-endian uint32) and "safe"-encodes the decimal result so it never
spells words. We dump the JSON form with sorted keys instead of Go's struct printer: the same
shape (stable, changes whenever the template does), not the same digits.
"""

from __future__ import annotations

from typing import Any

import orjson

from vkube.api.errors import AlreadyExists, NotFound
from vkube.client.resources import CONTROLLERREVISIONS
from vkube.controllers.workloads._common import Obj, deep, is_owned_by, owner_ref

POD_TEMPLATE_HASH = "pod-template-hash"
CONTROLLER_REVISION_HASH = "controller-revision-hash"

_ALPHANUMS = "bcdfghjklmnpqrstvwxz2456789"  # no vowels, no 0/1/3 (k8s.io/apimachinery/pkg/util/rand)
_FNV_OFFSET, _FNV_PRIME = 0x811C9DC5, 0x01000193


def fnv32a(data: bytes, h: int = _FNV_OFFSET) -> int:
    for b in data:
        h = ((h ^ b) * _FNV_PRIME) & 0xFFFFFFFF
    return h


def safe_encode(s: str) -> str:
    """rand.SafeEncodeString: map each byte onto a vowel-free alphabet."""
    return "".join(_ALPHANUMS[b % len(_ALPHANUMS)] for b in s.encode())


def _canonical(obj: Any) -> bytes:
    return orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)


def compute_hash(obj: Any, collision_count: int | None = None) -> str:
    """controller.ComputeHash: fnv32a(template [+ collisionCount]) → safe-encoded decimal."""
    h = fnv32a(_canonical(obj))
    if collision_count is not None:
        h = fnv32a(int(collision_count).to_bytes(4, "little"), h)
    return safe_encode(str(h))


def template_without_hash(template: Obj) -> Obj:
    """The template with the pod-template-hash label removed (EqualIgnoreHash's view)."""
    t = deep(template or {})
    labels = (t.get("metadata") or {}).get("labels")
    if labels is not None:
        labels.pop(POD_TEMPLATE_HASH, None)
        if not labels:
            t["metadata"].pop("labels")
    if "metadata" in t and not t["metadata"]:
        t.pop("metadata")
    return t


def equal_ignore_hash(a: Obj, b: Obj) -> bool:
    return _canonical(template_without_hash(a)) == _canonical(template_without_hash(b))


def pod_template_hash(template: Obj, collision_count: int | None = None) -> str:
    return compute_hash(template_without_hash(template), collision_count)


# ---------------------------------------------------------------- ControllerRevisions

def revision_data(template: Obj) -> Obj:
    """What StatefulSet/DaemonSet store: a strategic patch replacing ``spec.template``."""
    t = deep(template)
    t["$patch"] = "replace"
    return {"spec": {"template": t}}


def revision_template(rev: Obj) -> Obj:
    t = deep(((rev.get("data") or {}).get("spec") or {}).get("template") or {})
    t.pop("$patch", None)
    return t


def revision_number(rev: Obj) -> int:
    return int(rev.get("revision") or 0)


def new_revision(owner: Obj, template: Obj, revision: int, collision_count: int) -> Obj:
    data = revision_data(template)
    h = compute_hash(data, collision_count)
    labels = dict((template.get("metadata") or {}).get("labels") or {})
    labels[CONTROLLER_REVISION_HASH] = h
    m = owner["metadata"]
    return {
        "apiVersion": "apps/v1", "kind": "ControllerRevision",
        "metadata": {"name": f"{m['name']}-{h}", "namespace": m.get("namespace"),
                     "labels": labels, "ownerReferences": [owner_ref(owner)]},
        "data": data, "revision": revision,
    }


def _same_data(a: Obj, b: Obj) -> bool:
    return _canonical(a.get("data")) == _canonical(b.get("data"))


async def sync_revisions(client: Any, owner: Obj, revisions: list[Obj]
                         ) -> tuple[Obj, Obj, int, list[Obj]]:
    """Make sure a ControllerRevision for the owner's current template exists and is the newest.

    Returns (current revision, update revision, collisionCount, all owned revisions sorted).
    ``current`` is the one named by ``status.currentRevision`` if it still exists, else update.
    """
    owned = sorted((r for r in revisions if is_owned_by(r, owner)), key=revision_number)
    status = owner.get("status") or {}
    collision = int(status.get("collisionCount") or 0)
    template = owner["spec"]["template"]
    latest = revision_number(owned[-1]) if owned else 0
    probe = new_revision(owner, template, latest + 1, collision)
    equal = [r for r in owned if _same_data(r, probe)]
    ns = owner["metadata"].get("namespace")
    if equal and revision_number(equal[-1]) == latest:
        update = equal[-1]
    elif equal:  # rolled back to an older template: bump its revision number
        update = await client.patch(CONTROLLERREVISIONS, equal[-1]["metadata"]["name"],
                                    {"revision": latest + 1}, namespace=ns)
        owned = [r for r in owned if r["metadata"]["name"] != update["metadata"]["name"]]
        owned.append(update)
    else:
        while True:
            probe = new_revision(owner, template, latest + 1, collision)
            try:
                update = await client.create(CONTROLLERREVISIONS, probe, namespace=ns)
                break
            except AlreadyExists:
                try:
                    have = await client.get(CONTROLLERREVISIONS, probe["metadata"]["name"],
                                            namespace=ns)
                except NotFound:
                    continue
                if is_owned_by(have, owner) and _same_data(have, probe):
                    update = have
                    break
                collision += 1  # a hash collision with someone else's revision
        owned.append(update)
    cur_name = status.get("currentRevision")
    current = next((r for r in owned if r["metadata"]["name"] == cur_name), update)
    return current, update, collision, owned


async def truncate_history(client: Any, owned: list[Obj], keep: set[str], limit: int) -> None:
    """Delete the oldest unused revisions beyond ``revisionHistoryLimit``."""
    unused = sorted((r for r in owned if r["metadata"]["name"] not in keep), key=revision_number)
    for r in unused[:max(len(unused) - limit, 0)]:
        try:
            await client.delete(CONTROLLERREVISIONS, r["metadata"]["name"],
                                namespace=r["metadata"].get("namespace"))
        except NotFound:
            pass
