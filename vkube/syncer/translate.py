"""Name, label and selector translation between a virtual cluster and its host namespace.

Pure functions over plain dicts, no I/O. Everything a tenant names is folded into one host
namespace, so every translation must be injective (two virtual objects never map to one host
object) and deterministic (a restarted syncer finds what it created before).

Host names are ``NAME-x-NS-x-VC``; past the kind's limit the name is cut and a hash of the full
name appended. Pod label keys become ``vkube.io/l-KEY`` (short unprefixed keys, readable) or
``vkube.io/lh-HASH`` (anything else); the labels of the pod's *virtual namespace* ride along as
``vkube.io/n-KEY`` / ``vkube.io/nh-HASH`` so that translated namespaceSelectors can select pods
in the single host namespace. The original labels stay in the ``vkube.io/labels`` annotation.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass

from vkube.api.meta import Obj

PREFIX = "vkube.io/"
LABEL_MANAGED_BY = "vkube.io/managed-by"
LABEL_NAMESPACE = "vkube.io/namespace"
ANN_NAME = "vkube.io/object-name"
ANN_NAMESPACE = "vkube.io/object-namespace"
ANN_UID = "vkube.io/object-uid"
ANN_KIND = "vkube.io/object-kind"
ANN_LABELS = "vkube.io/labels"

DNS_LABEL_MAX = 63
DNS_SUBDOMAIN_MAX = 253
_HASH_LEN = 10
_SEP = "-x-"

_LABEL_NAME_RE = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?\Z")


def short_hash(text: str, length: int = _HASH_LEN) -> str:
    """Lowercase hex digest prefix: valid in DNS names and label values."""
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def fit_name(full: str, limit: int) -> str:
    """``full`` if it fits, else a prefix of it + ``-`` + hash of ``full``; never over ``limit``
    and still a valid DNS name (no trailing ``-``/``.`` before the hash)."""
    if len(full) <= limit:
        return full
    digest = short_hash(full)
    head = full[: limit - len(digest) - 1].rstrip("-.")
    return f"{head}-{digest}" if head else digest


_TOKEN_SUFFIX = "-token"


def _parts_hash(*parts: str) -> str:
    """A hash of the parts themselves (NUL cannot occur in a Kubernetes name)."""
    return short_hash("\0".join(parts))


def _hashed(full: str, digest: str, limit: int) -> str:
    head = full[: limit - len(digest) - 1].rstrip("-.")
    return f"{head}-{digest}" if head else digest


#: 80 bits: finding another (name, cluster) with one host name is a second preimage
_CLUSTER_HASH_LEN = 20


def opaque_cluster_name(name: str, vc: str, limit: int) -> str:
    """``HEAD-DIGEST``: a readable head of ``name`` (cut before any ``-x-``) and a digest of
    the parts (name, cluster); it never contains ``-x-``, which every readable
    ``NAME-x-VC`` does."""
    digest = short_hash("\0".join((name, vc)), _CLUSTER_HASH_LEN)
    head = name.split(_SEP, 1)[0][: max(0, limit - len(digest) - 1)].rstrip("-.")
    while head.endswith(_SEP[:2]):
        head = head[:-2].rstrip("-.")
    return f"{head}-{digest}" if head else digest


def _valid_label_key_name(name: str) -> bool:
    return len(name) <= DNS_LABEL_MAX and bool(_LABEL_NAME_RE.match(name))


def encode_label_key(key: str, *, kind: str = "l") -> str:
    """A host label key for a virtual label key: readable when it can be, hashed otherwise.

    ``kind`` is ``l`` for the object's own labels and ``n`` for its namespace's labels. The
    readable form ``vkube.io/l-KEY`` (second character ``-``) can never equal the hashed form
    ``vkube.io/lh-HASH`` (second character ``h``), so the encoding is injective."""
    if "/" not in key and _valid_label_key_name(f"{kind}-{key}"):
        return f"{PREFIX}{kind}-{key}"
    return f"{PREFIX}{kind}h-{short_hash(key, 20)}"


def decode_label_key(host_key: str, originals: Obj | None = None, *, kind: str = "l") -> str | None:
    """Reverse of ``encode_label_key``: direct for readable keys, via the original labels
    (``vkube.io/labels`` annotation) for hashed ones; None if it is not such a key."""
    if not host_key.startswith(PREFIX):
        return None
    rest = host_key[len(PREFIX):]
    if rest.startswith(f"{kind}-"):
        return rest[len(kind) + 1:]
    if rest.startswith(f"{kind}h-"):
        for key in originals or {}:
            if encode_label_key(key, kind=kind) == host_key:
                return key
    return None


@dataclass(frozen=True, slots=True)
class Translator:
    """Translation for one virtual cluster ``vc`` synced into ``host_namespace``."""

    vc: str
    host_namespace: str

    # -- names ---------------------------------------------------------------------------
    def host_name(self, name: str, namespace: str, *, limit: int = DNS_SUBDOMAIN_MAX) -> str:
        """``NAME-x-NS-x-VC``, cut and hashed past ``limit`` (63 for DNS-label kinds).

        A namespace holding the separator (``b-x-c``, or starting ``x-``) would make two
        objects one host name (``a`` in ``b-x-c`` and ``a-x-b`` in ``c``): such names always
        end in a hash of the full name, so a tenant cannot build a collision."""
        full = f"{name}{_SEP}{namespace}{_SEP}{self.vc}"
        if _SEP in namespace or namespace.startswith(_SEP[1:]):
            # the hash is of the parts, not of ``full``: ``a`` in ``b-x-c-x-d`` and ``a-x-b``
            # in ``c-x-d`` have one ``full`` and must still differ
            return _hashed(full, _parts_hash(name, namespace, self.vc), limit)
        return fit_name(full, limit)

    def host_cluster_name(self, name: str, *, limit: int = DNS_SUBDOMAIN_MAX) -> str:
        """Cluster-scoped objects (StorageClasses, PVs, PriorityClasses): ``NAME-x-VC``.

        Host cluster-scoped objects are shared by every virtual cluster of the host, and a
        cluster's name is as much the tenant's choice as an object's: the encoding is
        injective across clusters. The readable ``NAME-x-VC`` is used only when ``NAME``
        holds no ``-x-`` and does not end in ``-x`` (then the first ``-x-`` is the separator,
        so name and cluster read back unambiguously); everything else — such names, and
        names past ``limit`` — is :func:`opaque_cluster_name`, which never holds ``-x-``
        and so never equals a readable one."""
        full = f"{name}{_SEP}{self.vc}"
        if len(full) <= limit and _SEP not in name and not name.endswith(_SEP[:2]):
            return full
        return opaque_cluster_name(name, self.vc, limit)

    def token_secret_name(self, namespace: str, service_account: str) -> str:
        """The host Secret holding the virtual token of ``namespace/service_account``:
        the service account's host name + ``-token`` (never the ``-x-VC`` or hash ending of a
        translated virtual object, and as injective as ``host_name``)."""
        return self.host_name(service_account, namespace,
                              limit=DNS_SUBDOMAIN_MAX - len(_TOKEN_SUFFIX)) + _TOKEN_SUFFIX

    # -- metadata ------------------------------------------------------------------------
    def owner_labels(self, namespace: str | None) -> dict[str, str]:
        labels = {LABEL_MANAGED_BY: self.vc}
        if namespace:
            labels[LABEL_NAMESPACE] = namespace
        return labels

    def host_metadata(self, vobj: Obj, *, limit: int = DNS_SUBDOMAIN_MAX,
                      translate_labels: bool = False, kind: str = "") -> Obj:
        """Host metadata for a virtual object: translated name, owner labels, back-reference
        annotations; virtual labels/annotations kept (or label keys translated for pods)."""
        meta = vobj.get("metadata") or {}
        name, ns = meta.get("name", ""), meta.get("namespace")
        vlabels = dict(meta.get("labels") or {})
        annotations = {k: v for k, v in (meta.get("annotations") or {}).items()
                       if not k.startswith(PREFIX)
                       and k != "kubectl.kubernetes.io/last-applied-configuration"}
        if translate_labels:
            labels = self.translate_labels(vlabels)
            annotations[ANN_LABELS] = json.dumps(vlabels, sort_keys=True, separators=(",", ":"))
        else:
            labels = {k: v for k, v in vlabels.items() if not k.startswith(PREFIX)}
        labels.update(self.owner_labels(ns))
        annotations[ANN_NAME] = name
        if ns:
            annotations[ANN_NAMESPACE] = ns
        if meta.get("uid"):
            annotations[ANN_UID] = meta["uid"]
        if kind:
            annotations[ANN_KIND] = kind
        out: Obj = {
            "name": self.host_name(name, ns, limit=limit) if ns else
            self.host_cluster_name(name, limit=limit),
            "labels": labels,
            "annotations": annotations,
        }
        if ns:
            out["namespace"] = self.host_namespace
        return out

    def is_owned(self, host_obj: Obj) -> bool:
        """True for host objects this virtual cluster created (never touch the others)."""
        labels = (host_obj.get("metadata") or {}).get("labels") or {}
        return labels.get(LABEL_MANAGED_BY) == self.vc

    def owns(self, host_obj: Obj, namespace: str | None, name: str) -> bool:
        """True when ``host_obj`` is this cluster's copy of exactly the virtual object
        ``namespace/name`` (a host object of the right name made for another object is not:
        it is never reused, updated or deleted for this one)."""
        return self.virtual_ref(host_obj) == (namespace or None, name)

    def virtual_ref(self, host_obj: Obj) -> tuple[str | None, str] | None:
        """``(namespace, name)`` of the virtual object behind an owned host object."""
        if not self.is_owned(host_obj):
            return None
        ann = (host_obj.get("metadata") or {}).get("annotations") or {}
        name = ann.get(ANN_NAME)
        if not name:
            return None
        return ann.get(ANN_NAMESPACE), name

    # -- labels and selectors ------------------------------------------------------------
    def translate_labels(self, labels: dict[str, str] | None, *, kind: str = "l") -> dict[str, str]:
        return {encode_label_key(k, kind=kind): v for k, v in (labels or {}).items()}

    def namespace_labels(self, ns_labels: dict[str, str] | None, namespace: str) -> dict[str, str]:
        """The virtual namespace's labels as host pod labels (``kubernetes.io/metadata.name``
        is always there, as the API server sets it on every namespace)."""
        labels = dict(ns_labels or {})
        labels["kubernetes.io/metadata.name"] = namespace
        return self.translate_labels(labels, kind="n")

    def translate_expressions(self, exprs: list[Obj] | None, *, kind: str = "l") -> list[Obj]:
        return [{**e, "key": encode_label_key(e.get("key", ""), kind=kind)} for e in exprs or []]

    def translate_selector(self, selector: Obj | None, namespace: str | None, *,
                           kind: str = "l") -> Obj:
        """A LabelSelector (matchLabels + matchExpressions) selecting, on the host, exactly the
        synced pods the virtual selector selects in virtual namespace ``namespace``. With
        ``namespace`` None only the managed-by term is added (cluster-wide selectors)."""
        selector = selector or {}
        match = self.translate_labels(selector.get("matchLabels"), kind=kind)
        match.update(self.owner_labels(namespace))
        out: Obj = {"matchLabels": match}
        exprs = self.translate_expressions(selector.get("matchExpressions"), kind=kind)
        if exprs:
            out["matchExpressions"] = exprs
        return out

    def translate_selector_pv(self, selector: Obj) -> Obj:
        """A claim's ``selector`` of PersistentVolumes: PVs go down with their labels as they
        are, so the terms stay; the managed-by term limits it to this cluster's PVs."""
        out: Obj = {"matchLabels": {**{k: v for k, v in (selector.get("matchLabels") or {}).items()
                                       if not k.startswith(PREFIX)},
                                    **self.owner_labels(None)}}
        if selector.get("matchExpressions"):
            out["matchExpressions"] = [dict(e) for e in selector["matchExpressions"]]
        return out

    def translate_selector_map(self, selector: dict[str, str] | None,
                               namespace: str) -> dict[str, str] | None:
        """A Service's plain selector map; None stays None (selector-less service)."""
        if not selector:
            return None
        out = self.translate_labels(selector)
        out.update(self.owner_labels(namespace))
        return out

    def translate_label_selector_string(self, selector: str, namespace: str) -> str:
        """``k=v,k2 in (a)`` style selectors (only equality and set terms with plain keys)."""
        parts = [p for p in _split_selector(selector) if p]
        out = []
        for p in parts:
            m = re.match(r"^\s*(!?)([^\s=!<>]+)\s*(.*)\Z", p)
            if not m:
                out.append(p)
                continue
            bang, key, rest = m.groups()
            out.append(f"{bang}{encode_label_key(key)}{(' ' if rest[:2] in ('in', 'no') else '')}{rest}")
        out += [f"{k}={v}" for k, v in self.owner_labels(namespace).items()]
        return ",".join(out)


def _split_selector(selector: str) -> list[str]:
    """Split on commas outside parentheses."""
    parts, depth, cur = [], 0, []
    for ch in selector:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return parts
