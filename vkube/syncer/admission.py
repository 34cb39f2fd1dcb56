"""The syncer's own admission of virtual pods, before anything reaches the host.

With ``isolation.enabled`` every pod is checked against the configured Pod Security level with
Kubernetes' own checks (:mod:`vkube.api.podsecurity`); ``isolation.allowedRegistries`` limits
the images. A refused pod is not synced: the virtual pod gets a ``PodScheduled=False``
condition, ``status.reason``/``message`` (what ``kubectl get``/``describe`` show) and a Warning
event, all naming every violated check in Kubernetes' wording. The same surface carries a host
refusal (quota exceeded, a LimitRange maximum, the host's admission), so a pod is never
silently Pending.
"""

from __future__ import annotations

from vkube.api import errors
from vkube.api.meta import Obj, rfc3339, utcnow
from vkube.api.portforward import forwards, parse_target
from vkube.api.podsecurity import BASELINE, LATEST, PRIVILEGED, Evaluator, LevelVersion
from vkube.client.client import Client
from vkube.client.resources import PODS
from vkube.syncer.claimspec import claim_spec_problems
from vkube.syncer.values import Values, port_forward_targets

PORT_FORWARD_PREFIX = "vkube.io/port-forward-"
REASON_REJECTED = "SyncRejected"  # refused by the syncer's own checks
REASON_HOST = "HostRefused"  # refused by the host's API server


class PodAdmission:
    """What a virtual pod must satisfy before it is synced (built once per syncer)."""

    def __init__(self, values: Values, evaluator: Evaluator | None = None, *,
                 cluster: str = "NAME") -> None:
        iso = values.isolation
        self.cluster = cluster  # named in the fix a refusal suggests
        level = iso.pod_security_standard if iso.enabled else PRIVILEGED
        self.level = LevelVersion(level, LATEST)
        #: ``hostAccess: reject`` refuses what Pod Security "baseline" calls host access
        #: (privileged, added capabilities, host namespaces/paths/ports/probes, unconfined
        #: seccomp/AppArmor, SELinux, /proc, unsafe sysctls) — the level check covers it when
        #: isolation sets baseline or restricted
        self.host_level = LevelVersion(BASELINE, LATEST) if (
            values.host_access == "reject" and level == PRIVILEGED) else None
        self.evaluator = evaluator or Evaluator()
        self.registries = tuple(r.rstrip("/") for r in iso.allowed_registries)
        self.isolated = iso.enabled
        self.claims_synced = values.sync.resourceclaims.enabled
        self.storage_classes = iso.allowed_storage_classes
        #: where a pod's port-forward annotation may point (vkube.api.portforward), checked
        #: here under hostAccess reject (strip removes the others; isolation refuses all
        #: below): only what the cluster's owner listed, and nowhere in shared mode
        self.shared = values.control_plane.mode == "shared"
        self.forward_targets = port_forward_targets(values) if not iso.enabled and (
            values.host_access == "reject" or self.shared and values.host_access == "allow") \
            else None

    def check(self, vpod: Obj) -> str | None:
        """Why the pod may not be synced (one message naming every violation), or None."""
        meta, spec = vpod.get("metadata") or {}, vpod.get("spec") or {}
        problems = []
        if self.level.level != PRIVILEGED:
            result = self.evaluator.check(self.level, meta, spec)
            if not result.allowed:
                problems.append(f'violates PodSecurity "{self.level}": '
                                f"{result.forbidden_detail()}")
        if self.host_level is not None:
            result = self.evaluator.check(self.host_level, meta, spec)
            if not result.allowed:
                problems.append("host access is not allowed (sync.pods.hostAccess: reject): "
                                f'violates PodSecurity "{self.host_level}": '
                                f"{result.forbidden_detail()} — change the pod, or set "
                                "sync.pods.hostAccess: strip (removed on the host) or allow in "
                                f"the values (vkube create {self.cluster} --upgrade -f "
                                "values.yaml)")
        problems += self.forward_problems(meta)
        if self.registries:
            images = [(f'container "{c.get("name", "")}"', c.get("image") or "")
                      for c in _containers(spec)] + [
                (f'volume "{v.get("name", "")}"', str((v.get("image") or {}).get("reference") or ""))
                for v in spec.get("volumes") or [] if isinstance(v, dict) and v.get("image")]
            bad = [f'{who} image "{image}"' for who, image in images
                   if not self.image_allowed(image)]
            if bad:
                problems.append(f"image registry not allowed ({', '.join(bad)}; allowed: "
                                f"{', '.join(self.registries)})")
        if spec.get("resourceClaims") and not self.claims_synced:
            # dropped on the way down, the pod would run on the host without its devices
            problems.append("spec.resourceClaims: dynamic resource allocation is not synced to the "
                            "host in this virtual cluster; set sync.resourceclaims.enabled: true "
                            f"in its values (vkube create {self.cluster} --upgrade -f values.yaml)")
        problems += self.claim_template_problems(spec, meta.get("namespace") or "")
        if self.isolated:
            # the embedded host's simulated kubelet would dial whatever address these name
            # (another tenant's API server, a kubelet endpoint): no tenant boundary allows that
            forwards = sorted(k for k in meta.get("annotations") or {}
                              if k.startswith(PORT_FORWARD_PREFIX))
            if forwards:
                problems.append(f"annotations {', '.join(forwards)} not allowed with isolation "
                                "(they point the embedded host's kubelet at an address of the "
                                "host machine)")
        return "; ".join(problems) or None

    def forward_problems(self, meta: Obj) -> list[str]:
        """``vkube.io/port-forward-PORT`` points the embedded host's kubelet at an address of
        this machine: only at one the cluster's owner published (``portForwardTargets``), and
        never in shared mode."""
        if self.forward_targets is None:
            return []
        bad = {k: v for k, v in forwards(meta.get("annotations")).items()
               if parse_target(v) not in self.forward_targets}
        if not bad:
            return []
        named = ", ".join(f"{k}: {v}" for k, v in sorted(bad.items()))
        if self.shared:
            return [f"annotations {named} point the embedded host's kubelet at an address of "
                    "this machine, which a cluster in shared mode never may — remove them"]
        targets = ", ".join(sorted(set(bad.values())))
        return [f"annotations {named} point the embedded host's kubelet at an address of this "
                f"machine that sync.pods.portForwardTargets does not list — add {targets} to "
                f"sync.pods.portForwardTargets in the values (vkube create {self.cluster} "
                "--upgrade -f values.yaml), or remove them"]

    def claim_template_problems(self, spec: Obj, namespace: str) -> list[str]:
        """The claims the host makes from a generic ephemeral volume's template obey what a
        tenant's own claims do: ``isolation.allowedStorageClasses``, and no data source in
        another namespace (:func:`vkube.syncer.claimspec.claim_spec_problems`)."""
        out = []
        for i, vol in enumerate(spec.get("volumes") or []):
            tmpl = (vol.get("ephemeral") or {}).get("volumeClaimTemplate") or {}
            tspec = tmpl.get("spec") or {}
            field = f"spec.volumes[{i}].ephemeral.volumeClaimTemplate.spec"
            name = tspec.get("storageClassName")
            if self.storage_classes and name and name not in self.storage_classes:
                out.append(f"{field}.storageClassName: storage class {name!r} is not allowed in "
                           f"this virtual cluster (allowed: {', '.join(self.storage_classes)})")
            out += claim_spec_problems(tspec, namespace, field)
        return out

    def image_allowed(self, image: str) -> bool:
        """Does the image come from an allowed registry (``docker.io`` or a path prefix such
        as ``ghcr.io/acme``)? Short names are Docker Hub's, as the container runtime reads them."""
        ref = normalize_image(image)
        return any(ref == r or ref.startswith(r + "/") for r in self.registries)


def normalize_image(image: str) -> str:
    """``nginx`` → ``docker.io/library/nginx``; ``acme/app:1`` → ``docker.io/acme/app``;
    ``ghcr.io/acme/app@sha256:…`` → ``ghcr.io/acme/app`` (the reference without tag/digest)."""
    name = image.split("@", 1)[0]
    first, _, rest = name.partition("/")
    if not rest or not ("." in first or ":" in first or first == "localhost"):
        name = f"docker.io/{name}" if rest else f"docker.io/library/{name}"
    registry, _, path = name.partition("/")
    if ":" in path.rsplit("/", 1)[-1]:
        path = path.rsplit(":", 1)[0]
    registry = "docker.io" if registry in ("index.docker.io", "registry-1.docker.io") else registry
    return f"{registry.lower()}/{path}"


def _containers(spec: Obj) -> list[Obj]:
    return [*(spec.get("initContainers") or []), *(spec.get("containers") or []),
            *(spec.get("ephemeralContainers") or [])]


async def surface_refusal(virtual: Client, recorder: object, vpod: Obj, reason: str,
                          message: str) -> bool:
    """Put a refusal on the virtual pod (condition, status reason/message) and a Warning event;
    nothing when the pod already says exactly this (no write loop on its own echo).
    Returns whether anything was written."""
    status = vpod.get("status") or {}
    cond = next((c for c in status.get("conditions") or [] if c.get("type") == "PodScheduled"),
                None)
    if status.get("reason") == reason and status.get("message") == message and \
            cond is not None and cond.get("message") == message:
        return False
    meta = vpod["metadata"]
    patch = {"status": {"reason": reason, "message": message, "conditions": [{
        "type": "PodScheduled", "status": "False", "reason": reason, "message": message,
        "lastProbeTime": None, "lastTransitionTime": rfc3339(utcnow())}]}}
    try:
        await virtual.patch(PODS, meta["name"], patch, type="strategic",
                            namespace=meta["namespace"], subresource="status")
    except (errors.NotFound, errors.Conflict):
        return False
    recorder.event(vpod, "Warning", reason, message)  # type: ignore[attr-defined]
    return True


def host_refusal_message(e: errors.StatusError) -> str:
    """The host's words, as its API server sent them."""
    return f"the host refused the pod: {e}"


def class_refusal(recorder: object, vobj: Obj, *, what: str, field: str, name: str | None,
                  allowed: tuple[str, ...]) -> bool:
    """``isolation.allowedStorageClasses``/``allowedIngressClasses``: is ``name`` refused? Then
    a Warning event on the virtual object says why (and the object is not synced). An unset
    class is the host's default, which the operator chose: allowed."""
    if not allowed or not name or name in allowed:
        return False
    recorder.event(vobj, "Warning", REASON_REJECTED,  # type: ignore[attr-defined]
                   f"{field}: {what} {name!r} is not allowed in this virtual cluster (allowed: "
                   f"{', '.join(allowed)}); not synced to the host")
    return True
