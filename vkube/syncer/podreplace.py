"""Host pods made under earlier values (``vkube create NAME --upgrade -f``).

The owner's values shape every host pod (runtime class, node selector, tolerations, host
access, registries, priority classes, port-forward targets) in fields a pod can never change
once created. Each host pod carries a digest of those values (``ANN_RULES``); one made under
other values is judged again: if the new rules refuse it, it goes and the tenant sees the
refusal a new pod would get; if its host spec would now differ in one of those fields, it is
re-created (a bare pod under the same virtual pod and uid, as after a resume); otherwise only
its digest is brought up to date."""

from __future__ import annotations

import hashlib

from vkube.api.meta import Obj
from vkube.api.portforward import ANN_RE
from vkube.syncer.translate import PREFIX
from vkube.syncer.values import Values

#: digest of the values a host pod was made under
ANN_RULES = f"{PREFIX}host-rules"
REASON_REPLACED = "HostPodReplaced"

#: tolerations the host's DefaultTolerationSeconds admission adds to every pod
_DEFAULTED = ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable")


def rules_digest(values: Values) -> str:
    """What of the values shapes a host pod (frozen dataclasses: a stable repr)."""
    shaping = (values.isolation, values.sync.pods, values.sync.priorityclasses,
               values.host_access, sorted(values.node_selector().items()))
    return hashlib.sha256(repr(shaping).encode()).hexdigest()[:16]


def changed_fields(host: Obj, want: Obj) -> list[str]:
    """The immutable fields the values shape in which ``host`` differs from ``want`` (what
    the rewrite makes of the virtual pod today); empty when the host pod may stay."""
    hspec, wspec = host.get("spec") or {}, want.get("spec") or {}
    out = []
    for f in ("runtimeClassName", "priorityClassName"):
        if (hspec.get(f) or "") != (wspec.get(f) or "") and (wspec.get(f) or f != "priorityClassName"):
            out.append(f"spec.{f}")
    if (hspec.get("nodeSelector") or {}) != (wspec.get("nodeSelector") or {}):
        out.append("spec.nodeSelector")
    if _tolerations(hspec, wspec) != _tolerations(wspec, wspec):
        out.append("spec.tolerations")
    for f in ("hostNetwork", "hostPID", "hostIPC"):
        if bool(hspec.get(f)) != bool(wspec.get(f)):
            out.append(f"spec.{f}")
    if _host_paths(hspec) != _host_paths(wspec):
        out.append("spec.volumes")
    if _contexts(hspec) != _contexts(wspec):
        out.append("spec.containers[*].securityContext")
    if _forwards(host) != _forwards(want):
        out.append("metadata.annotations[vkube.io/port-forward-*]")
    return out


def replaced_message(fields: list[str], cluster: str) -> str:
    return (f"the values of cluster {cluster} changed what its host pod must be ("
            + ", ".join(fields) + "), which a running pod cannot change: its host pod was "
            "re-created under the new values")


def _tolerations(spec: Obj, want: Obj) -> list[str]:
    wanted = {t.get("key") for t in want.get("tolerations") or ()}
    return sorted(repr(sorted(t.items())) for t in spec.get("tolerations") or ()
                  if t.get("key") not in _DEFAULTED or t.get("key") in wanted)


def _host_paths(spec: Obj) -> list[str]:
    return sorted(v.get("name", "") for v in spec.get("volumes") or () if v.get("hostPath"))


def _contexts(spec: Obj) -> list[tuple[str, bool, object]]:
    out = []
    for field in ("initContainers", "containers"):
        for c in spec.get(field) or ():
            sc = c.get("securityContext") or {}
            out.append((c.get("name", ""), bool(sc.get("privileged")),
                        sorted((sc.get("capabilities") or {}).get("add") or ())))
    return sorted(out, key=repr)


def _forwards(pod: Obj) -> dict[str, str]:
    ann = (pod.get("metadata") or {}).get("annotations") or {}
    return {k: v for k, v in ann.items() if ANN_RE.match(k)}
