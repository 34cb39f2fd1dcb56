"""Virtual pod → host pod: the pure rewrite (no I/O), tested with golden inputs.

A host pod must behave like the virtual pod while reaching nothing on the host that the tenant
does not own: every reference to a namespaced object (ConfigMap, Secret, PVC, service account,
image pull secret) is translated into the host namespace, the API token is the *virtual*
cluster's, the host service account has no rights, service links point at virtual services, and
host-level access (hostPath, hostNetwork, hostPID, hostIPC) follows a policy.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from vkube.api.kinds_other import SYSTEM_PRIORITY_CLASSES
from vkube.api.jsonvalue import clone
from vkube.api.meta import Obj
from vkube.api.portforward import ANN_RE, parse_target
from vkube.api.podsecurity.baseline import BASELINE_CAPABILITIES, SELINUX_TYPES_1_31, SYSCTLS_1_37
from vkube.syncer.claimspec import translate_claim_spec
from vkube.syncer.translate import (ANN_NAME, ANN_NAMESPACE, ANN_UID, DNS_LABEL_MAX,
                                    LABEL_MANAGED_BY, LABEL_NAMESPACE, Translator,
                                    encode_label_key, short_hash)

SA_MOUNT_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"
SA_VOLUME = "vkube-sa-token"
POD_NAME_LIMIT = DNS_LABEL_MAX  # host pod names double as hostnames in many tools: keep ≤ 63

HostAccess = Literal["reject", "strip", "allow"]


class PodRejected(Exception):
    """The virtual pod asks for something the policy forbids on the host."""


#: the Warning event on a virtual pod whose host pod lost fields under ``hostAccess: strip``
REASON_STRIPPED = "HostAccessStripped"


REASON_SYSTEM_PRIORITY = "SystemPriorityCapped"


def system_class_host_name(vc: str, pc: str) -> str:
    """The host copy of built-in class ``pc`` (``system-cluster-critical``…): a host reserves
    ``system-`` names to its own, so ``vkube-NAME-DIGEST`` (digest of class and cluster). It
    holds no ``-x-`` (never a readable ``NAME-x-VC``) and ends in another digest than any
    opaque name of a tenant's class (``Translator.host_cluster_name``)."""
    return f"vkube-{pc}-{short_hash(chr(0).join((pc, vc, 'built-in')), 20)}"


def system_priority_message(pc: str, cap: int) -> str:
    """Why a pod naming a built-in class ranks no higher than ``cap`` on the host."""
    return (f"priorityClassName {pc} is a built-in class (value {SYSTEM_PRIORITY_CLASSES[pc]}) "
            f"of the virtual cluster: on the host its copy has value {cap}, "
            "sync.priorityclasses.maxValue, the most a tenant's pods get there (above that the "
            "host's own system pods rank); the cluster's owner may raise maxValue up to "
            "1000000000")


def stripped_message(stripped: list[str], cluster: str = "NAME") -> str:
    """What ``hostAccess: strip`` removed, field by field (as an admission warning names them)."""
    return ("sync.pods.hostAccess: strip removed from the host pod: " + ", ".join(stripped) +
            " — the pod runs without them; to keep them set sync.pods.hostAccess: allow in the "
            f"values (vkube create {cluster} --upgrade -f values.yaml)")


@dataclass(frozen=True, slots=True)
class PodRewriteConfig:
    """What the rewrite needs beyond the pod itself."""

    translator: Translator
    host_service_account: str
    token_secret: str | None  # host Secret with token, ca.crt, namespace; None: no token
    kube_service_host: str = ""  # the virtual API server as host pods reach it
    kube_service_port: int = 443
    keep_node_name: bool = False  # enableScheduler: the virtual scheduler picks the node
    host_access: HostAccess = "reject"
    #: under ``strip``, the port-forward targets kept (sync.pods.portForwardTargets)
    port_forward_targets: frozenset[tuple[str, int]] = frozenset()
    sync_priority_classes: bool = False
    sync_storage_classes: bool = False  # ephemeral claim templates name NAME-x-VC classes
    namespace_labels: dict[str, str] = field(default_factory=dict)
    services: tuple[Obj, ...] = ()  # virtual Services of the pod's namespace, for env vars
    # sync.nodes.nodeSelector: host pods only run on the selected host nodes (as vcluster's
    # enforced node selector); it wins over the pod's own terms for the same keys
    node_selector: dict[str, str] = field(default_factory=dict)
    # isolation (hard tenancy): forced on every host pod, whatever the tenant asked for
    runtime_class_name: str = ""
    tolerations: tuple[Obj, ...] = ()
    # the virtual cluster's DNS (ClusterIP of kube-system/kube-dns) for dnsPolicy ClusterFirst;
    # empty: the pod's DNS settings go to the host unchanged
    cluster_dns: str = ""
    cluster_domain: str = "cluster.local"
    # sync.resourceclaims: the pod's resourceClaims naming the host claims (empty: none kept)
    resource_claims: tuple[Obj, ...] = ()


def host_pod_name(tr: Translator, name: str, namespace: str) -> str:
    return tr.host_name(name, namespace, limit=POD_NAME_LIMIT)


# -- references -------------------------------------------------------------------------
def referenced_objects(pod: Obj) -> tuple[set[str], set[str], set[str]]:
    """Names of the ConfigMaps, Secrets and PVCs a pod uses (same namespace)."""
    cms: set[str] = set()
    secrets: set[str] = set()
    pvcs: set[str] = set()
    spec = pod.get("spec") or {}
    for vol in spec.get("volumes") or []:
        if (cm := vol.get("configMap")) and cm.get("name"):
            cms.add(cm["name"])
        if (sec := vol.get("secret")) and sec.get("secretName"):
            secrets.add(sec["secretName"])
        if (pvc := vol.get("persistentVolumeClaim")) and pvc.get("claimName"):
            pvcs.add(pvc["claimName"])
        for ref in _volume_secret_refs(vol):
            secrets.add(ref[0][ref[1]])
        sources = (vol.get("projected") or {}).get("sources") or []
        if any("serviceAccountToken" in src for src in sources):
            continue  # replaced by the virtual cluster's token Secret
        for src in sources:
            if (cm := src.get("configMap")) and cm.get("name"):
                cms.add(cm["name"])
            if (sec := src.get("secret")) and sec.get("name"):
                secrets.add(sec["name"])
    for c in _containers(spec):
        for env in c.get("env") or []:
            vf = env.get("valueFrom") or {}
            if (ref := vf.get("configMapKeyRef")) and ref.get("name"):
                cms.add(ref["name"])
            if (ref := vf.get("secretKeyRef")) and ref.get("name"):
                secrets.add(ref["name"])
        for ef in c.get("envFrom") or []:
            if (ref := ef.get("configMapRef")) and ref.get("name"):
                cms.add(ref["name"])
            if (ref := ef.get("secretRef")) and ref.get("name"):
                secrets.add(ref["name"])
    for ips in spec.get("imagePullSecrets") or []:
        if ips.get("name"):
            secrets.add(ips["name"])
    return cms, secrets, pvcs


#: inline volume sources naming a Secret of the pod's namespace, and where (upstream's
#: ``VisitPodSecretNames``, pkg/api/v1/pod): the ``secretName`` of ``azureFile``, the
#: ``secretRef`` of the others, the ``nodePublishSecretRef`` of ``csi``
SECRET_REF_VOLUMES: dict[str, str] = {
    "azureFile": "", "cephfs": "secretRef", "cinder": "secretRef", "flexVolume": "secretRef",
    "iscsi": "secretRef", "rbd": "secretRef", "scaleIO": "secretRef",
    "storageos": "secretRef", "csi": "nodePublishSecretRef"}

#: volume sources a pod may use without reaching anything of the node's own (Pod Security
#: "restricted"'s list, plus image volumes: an image, pulled like a container's); every other
#: inline source (nfs, iscsi, rbd, cephfs, glusterfs, fc, flexVolume, gitRepo, cloud disks…)
#: is mounted by the node from its network, its files or its cloud account: host access
POD_VOLUME_SOURCES = frozenset({"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral",
                                "persistentVolumeClaim", "projected", "secret", "image"})


def _volume_secret_refs(vol: Obj) -> list[tuple[Obj, str]]:
    """``(holder, key)`` of each Secret name an inline volume source names."""
    out = []
    for source, ref in SECRET_REF_VOLUMES.items():
        src = vol.get(source)
        if not isinstance(src, dict):
            continue
        holder, key = (src.get(ref), "name") if ref else (src, "secretName")
        if isinstance(holder, dict) and holder.get(key):
            out.append((holder, key))
    return out


def host_access_volumes(spec: Obj) -> list[str]:
    """``volume "NAME" uses SOURCE`` for each volume the node itself would mount."""
    out = []
    for vol in spec.get("volumes") or []:
        for source in vol:
            if source != "name" and source not in POD_VOLUME_SOURCES:
                out.append(f"volume {vol.get('name', '')!r} uses {source}")
    return out


def _containers(spec: Obj) -> list[Obj]:
    return [*(spec.get("initContainers") or []), *(spec.get("containers") or []),
            *(spec.get("ephemeralContainers") or [])]


def named_containers(spec: Obj) -> list[tuple[str, Obj]]:
    """``(spec.containers[0], container)`` for every container, init and ephemeral ones too."""
    return [(f"spec.{field}[{i}]", c) for field in ("initContainers", "containers",
                                                    "ephemeralContainers")
            for i, c in enumerate(spec.get(field) or []) if isinstance(c, dict)]


# -- the rewrite ------------------------------------------------------------------------
def rewrite_pod(vpod: Obj, cfg: PodRewriteConfig, stripped: list[str] | None = None) -> Obj:
    """The host pod for ``vpod``. Raises PodRejected when the host-access policy forbids it;
    under ``strip`` the path of every field removed is appended to ``stripped``."""
    stripped = [] if stripped is None else stripped
    tr = cfg.translator
    meta = vpod["metadata"]
    ns, name = meta["namespace"], meta["name"]
    spec = clone(vpod.get("spec") or {})  # through orjson: ~5x faster than deepcopy
    sa_name = spec.get("serviceAccountName") or spec.get("serviceAccount") or "default"
    hmeta = tr.host_metadata(vpod, limit=POD_NAME_LIMIT, translate_labels=True)
    hmeta["labels"].update(tr.namespace_labels(cfg.namespace_labels, ns))

    _apply_host_access(spec, cfg, stripped)
    if cfg.host_access == "strip":
        _strip_annotations(hmeta["annotations"], stripped)
    apply_cluster_dns(spec, ns, cfg.cluster_dns, cfg.cluster_domain)
    sa_mounted = _rewrite_volumes(spec, ns, cfg)
    automount = spec.get("automountServiceAccountToken", True) is not False
    if cfg.token_secret and automount and not sa_mounted:
        spec.setdefault("volumes", []).append(
            {"name": SA_VOLUME, "secret": {"secretName": cfg.token_secret, "defaultMode": 0o644}})
        for c in (spec.get("initContainers") or []) + (spec.get("containers") or []):
            _ensure_sa_mount(c)
    service_env = service_env_vars(cfg.services) if spec.get("enableServiceLinks", True) else []
    kube_env = _kube_env(cfg)
    for c in _containers(spec):
        _rewrite_container(c, ns, tr, service_env + kube_env, sa_name)

    for ips in spec.get("imagePullSecrets") or []:
        if ips.get("name"):
            ips["name"] = tr.host_name(ips["name"], ns)
    spec["serviceAccountName"] = cfg.host_service_account
    spec.pop("serviceAccount", None)
    spec["automountServiceAccountToken"] = False
    spec["enableServiceLinks"] = False
    if not cfg.keep_node_name:
        spec.pop("nodeName", None)
    elif spec.get("nodeName"):
        # the virtual scheduler already honoured these against the *virtual* node's labels
        # (which a tenant may have edited); the host kubelet would re-check them against the
        # host node's labels and reject the pod.
        spec.pop("nodeSelector", None)
        node_aff = (spec.get("affinity") or {}).get("nodeAffinity") or {}
        node_aff.pop("requiredDuringSchedulingIgnoredDuringExecution", None)
    pc = spec.pop("priorityClassName", None)
    spec.pop("priority", None)
    spec.pop("preemptionPolicy", None)
    # the built-in system-* classes go down under another name (a host reserves the system-
    # prefix to its own) with sync.priorityclasses.maxValue as their value: a tenant's pods
    # never run at node-critical priority there; see system_priority_message
    if pc and cfg.sync_priority_classes:
        spec["priorityClassName"] = system_class_host_name(tr.vc, pc) \
            if pc in SYSTEM_PRIORITY_CLASSES else tr.host_cluster_name(pc)
    spec.pop("overhead", None)
    spec.pop("resourceClaims", None)
    if cfg.resource_claims:
        spec["resourceClaims"] = [dict(c) for c in cfg.resource_claims]
    spec["hostname"] = spec.get("hostname") or _hostname(name)
    if spec.get("subdomain"):
        spec["subdomain"] = tr.host_name(spec["subdomain"], ns, limit=DNS_LABEL_MAX)
    force_placement(spec, cfg)
    hmeta["annotations"].update(_downward_annotations(vpod))
    forwards = port_forward_annotations(vpod)
    if cfg.host_access == "strip":  # a port-forward target is an address of the host machine
        kept = {k: v for k, v in forwards.items()
                if not ANN_RE.match(k) or parse_target(v) in cfg.port_forward_targets}
        stripped += [f"metadata.annotations[{k}]" for k in forwards if k not in kept]
        forwards = kept
    hmeta["annotations"].update(forwards)
    _rewrite_affinity(spec, ns, tr)
    for tsc in spec.get("topologySpreadConstraints") or []:
        tsc["labelSelector"] = tr.translate_selector(tsc.get("labelSelector"), ns)
        if tsc.get("matchLabelKeys"):
            tsc["matchLabelKeys"] = [encode_label_key(k) for k in tsc["matchLabelKeys"]]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": hmeta, "spec": spec}


def force_placement(spec: Obj, cfg: PodRewriteConfig) -> None:
    """Where and how a tenant's pods run is the operator's, not the tenant's: the node selector
    wins over the pod's own terms for the same keys, the runtime class replaces the pod's,
    the tolerations are added (the tenant's own stay: they only widen where the forced
    selector already pins the pod)."""
    if cfg.node_selector:
        spec["nodeSelector"] = {**(spec.get("nodeSelector") or {}), **cfg.node_selector}
    if cfg.runtime_class_name:
        spec["runtimeClassName"] = cfg.runtime_class_name
        spec.pop("overhead", None)  # the host's RuntimeClass admission fills it in
    if cfg.tolerations:
        have = spec.get("tolerations") or []
        spec["tolerations"] = have + [dict(t) for t in cfg.tolerations if t not in have]


def _hostname(name: str) -> str:
    """The kubelet's rule: a pod's hostname is its name cut to 63, without a trailing dot/dash."""
    return name[:DNS_LABEL_MAX].rstrip("-.")


#: the kubelet's limits (pkg/apis/core/validation: MaxDNSNameservers, MaxDNSSearchPaths)
MAX_DNS_NAMESERVERS = 3
MAX_DNS_SEARCHES = 32


def apply_cluster_dns(spec: Obj, ns: str, server: str, domain: str = "cluster.local") -> None:
    """What the kubelet does for ``dnsPolicy`` (pkg/kubelet/network/dns), with the virtual
    cluster's DNS as its ``clusterDNS``: ClusterFirst (and ClusterFirstWithHostNet) pods get
    the cluster nameserver, the ``NS.svc.DOMAIN svc.DOMAIN DOMAIN`` searches and ``ndots:5``,
    their own ``dnsConfig`` appended; the host kubelet then sees ``dnsPolicy: None``.
    ``Default`` and ``None`` pods, and ClusterFirst pods on the host network, keep theirs."""
    if not server:
        return
    policy = spec.get("dnsPolicy") or "ClusterFirst"
    if policy not in ("ClusterFirst", "ClusterFirstWithHostNet"):
        return
    if policy == "ClusterFirst" and spec.get("hostNetwork") is True:
        return  # the kubelet gives these the node's resolv.conf (policy Default)
    own = spec.get("dnsConfig") or {}
    nameservers = _dedup([server, *(own.get("nameservers") or [])])[:MAX_DNS_NAMESERVERS]
    searches = _dedup([f"{ns}.svc.{domain}", f"svc.{domain}", domain,
                       *(own.get("searches") or [])])[:MAX_DNS_SEARCHES]
    options: dict[str, Obj] = {"ndots": {"name": "ndots", "value": "5"}}
    for opt in own.get("options") or []:  # the pod's options win by name, as the kubelet merges
        if opt.get("name"):
            options[opt["name"]] = dict(opt)
    spec["dnsPolicy"] = "None"
    spec["dnsConfig"] = {"nameservers": nameservers, "searches": searches,
                         "options": list(options.values())}


def _dedup(items: list[str]) -> list[str]:
    return list(dict.fromkeys(i for i in items if i))


def _apply_host_access(spec: Obj, cfg: PodRewriteConfig, stripped: list[str]) -> None:
    """``sync.pods.hostAccess`` beyond Pod Security baseline's checks (done before, in
    :mod:`vkube.syncer.admission`): volumes the node mounts, kubelet-minted credentials for
    the host's API, the host's RuntimeClasses, and the host's schedulers — a tenant's
    ``schedulerName`` names one of its virtual cluster. Under ``strip`` every field removed is
    appended to ``stripped``, as a path."""
    policy = cfg.host_access
    if policy == "allow":
        return
    spec.pop("schedulerName", None)
    flags = [f for f in ("hostNetwork", "hostPID", "hostIPC") if spec.get(f) is True]
    node_volumes = host_access_volumes(spec)
    projections = host_projection_sources(spec)
    ports = [(f"{path}.ports[{k}]", c.get("name", ""), p) for path, c in named_containers(spec)
             for k, p in enumerate(c.get("ports") or []) if isinstance(p, dict)]
    # the operator's forced class replaces it (force_placement); otherwise it names a host
    # RuntimeClass, i.e. a runtime handler of the host's nodes
    runtime = spec.get("runtimeClassName") if not cfg.runtime_class_name else None
    if policy == "reject":
        bad = [f"spec.{f}" for f in flags] + node_volumes
        bad += [f"{path}: {why}" for path, why in projections]
        bad += [f"container {n!r} uses a hostPort" for _, n, p in ports if p.get("hostPort")]
        if runtime:
            bad.append(f"spec.runtimeClassName {runtime!r} (a RuntimeClass of the host)")
        if bad:
            raise PodRejected("host access is not allowed: " + ", ".join(bad))
        return
    if runtime:
        spec.pop("runtimeClassName")
        spec.pop("overhead", None)
        stripped.append("spec.runtimeClassName")
    _strip_security(spec, stripped)
    for f in flags:
        spec.pop(f, None)
        stripped.append(f"spec.{f}")
    for i, v in enumerate(spec.get("volumes") or []):
        sources = [k for k in v if k != "name" and k not in POD_VOLUME_SOURCES]
        for k in sources:
            v.pop(k)
            stripped.append(f"spec.volumes[{i}].{k}")
        if sources:
            v["emptyDir"] = {}
    _strip_host_projections(spec, [path for path, _ in projections], stripped)
    for path, _, p in ports:
        for key in ("hostPort", "hostIP"):
            if p.pop(key, None):
                stripped.append(f"{path}.{key}")


#: why a projected ``podCertificate`` source is host access
POD_CERTIFICATE_WHY = ("a podCertificate projection has the host's kubelet mint a client "
                       "certificate for the host's API server")
#: why a projected ``clusterTrustBundle`` source is host access
CLUSTER_TRUST_BUNDLE_WHY = ("a clusterTrustBundle projection has the host's kubelet read the "
                            "host's ClusterTrustBundles, not this cluster's")
#: projected sources the host's kubelet fills from the host cluster, and why each is host access
HOST_PROJECTIONS = {"podCertificate": POD_CERTIFICATE_WHY,
                    "clusterTrustBundle": CLUSTER_TRUST_BUNDLE_WHY}


def host_projection_sources(spec: Obj) -> list[tuple[str, str]]:
    """``(path, why)`` of every projected source the host's kubelet would fill from the *host*
    cluster: a ``podCertificate`` (a certificate from the host's signers, a credential of the
    host) or a ``clusterTrustBundle`` (the host's bundles by name or signer — public, but the
    wrong cluster's trust anchors)."""
    out = []
    for i, vol in enumerate(spec.get("volumes") or []):
        sources = (vol.get("projected") or {}).get("sources") if isinstance(vol, dict) else None
        for j, src in enumerate(sources or []):
            if not isinstance(src, dict):
                continue
            out += [(f"spec.volumes[{i}].projected.sources[{j}].{kind}", why)
                    for kind, why in HOST_PROJECTIONS.items() if kind in src]
    return out


def _strip_host_projections(spec: Obj, paths: list[str], stripped: list[str]) -> None:
    """``strip``: those sources go (a projection left with none is an emptyDir)."""
    if not paths:
        return
    for vol in spec.get("volumes") or []:
        proj = vol.get("projected")
        if not isinstance(proj, dict) or not isinstance(proj.get("sources"), list):
            continue
        proj["sources"] = [src for src in proj["sources"]
                           if not (isinstance(src, dict) and HOST_PROJECTIONS.keys() & src.keys())]
        if not proj["sources"]:
            vol.pop("projected")
            vol["emptyDir"] = {}
    stripped.extend(paths)


_PROFILE_OK = {"seccompProfile": ("RuntimeDefault", "Localhost"),
               "appArmorProfile": ("RuntimeDefault", "Localhost")}
_HANDLERS = ("livenessProbe", "readinessProbe", "startupProbe")


def _strip_context(sc: Obj, path: str, stripped: list[str]) -> None:
    """One securityContext (pod or container) without what baseline calls host access."""
    for key, ok in _PROFILE_OK.items():
        if isinstance(sc.get(key), dict) and sc[key].get("type") not in ok:
            sc.pop(key)
            stripped.append(f"{path}.{key}")
    se = sc.get("seLinuxOptions")
    if isinstance(se, dict) and (se.get("user") or se.get("role") or
                                 (se.get("type") or "") not in SELINUX_TYPES_1_31):
        sc.pop("seLinuxOptions")
        stripped.append(f"{path}.seLinuxOptions")
    if isinstance(sc.get("windowsOptions"), dict) and \
            sc["windowsOptions"].pop("hostProcess", None) is not None:
        stripped.append(f"{path}.windowsOptions.hostProcess")


def _strip_security(spec: Obj, stripped: list[str]) -> None:
    """``hostAccess: strip``: the pod runs without what Pod Security baseline forbids as host
    access (privileged, capabilities past baseline's, unconfined profiles, custom SELinux,
    an unmasked /proc, unsafe sysctls, probes and hooks aimed at another host)."""
    psc = spec.get("securityContext")
    if isinstance(psc, dict):
        _strip_context(psc, "spec.securityContext", stripped)
        if psc.get("sysctls"):
            unsafe = [x.get("name") for x in psc["sysctls"] if x.get("name") not in SYSCTLS_1_37]
            if unsafe:
                psc["sysctls"] = [x for x in psc["sysctls"] if x.get("name") in SYSCTLS_1_37]
                stripped.append(f"spec.securityContext.sysctls {', '.join(map(str, unsafe))}")
    for path, c in named_containers(spec):
        sc = c.get("securityContext")
        if isinstance(sc, dict):
            _strip_context(sc, f"{path}.securityContext", stripped)
            if sc.pop("privileged", None):
                stripped.append(f"{path}.securityContext.privileged")
            caps = sc.get("capabilities")
            if isinstance(caps, dict) and caps.get("add"):
                extra = [x for x in caps["add"] if x not in BASELINE_CAPABILITIES]
                if extra:
                    caps["add"] = [x for x in caps["add"] if x in BASELINE_CAPABILITIES]
                    stripped.append(f"{path}.securityContext.capabilities.add "
                                    f"{', '.join(map(str, extra))}")
            if sc.get("procMount") not in (None, "Default"):
                sc["procMount"] = "Default"
                stripped.append(f"{path}.securityContext.procMount")
        handlers = [(k, c.get(k)) for k in _HANDLERS]
        handlers += [(f"lifecycle.{k}", (c.get("lifecycle") or {}).get(k))
                     for k in ("postStart", "preStop")]
        for where, h in handlers:
            for action in ("httpGet", "tcpSocket"):
                if isinstance(h, dict) and isinstance(h.get(action), dict) and \
                        h[action].pop("host", None) is not None:
                    stripped.append(f"{path}.{where}.{action}.host")


def _strip_annotations(annotations: dict[str, str], stripped: list[str]) -> None:
    """The legacy seccomp/AppArmor annotations, when they ask for an unconfined container."""
    for key, value in list(annotations.items()):
        if key.startswith(("seccomp.security.alpha.kubernetes.io/",
                           "container.seccomp.security.alpha.kubernetes.io/")) and \
                value not in ("runtime/default", "docker/default") and \
                not value.startswith("localhost/"):
            del annotations[key]
            stripped.append(f"metadata.annotations[{key}]")
        elif key.startswith("container.apparmor.security.beta.kubernetes.io/") and \
                value and value != "runtime/default" and not value.startswith("localhost/"):
            del annotations[key]
            stripped.append(f"metadata.annotations[{key}]")


def _rewrite_volumes(spec: Obj, ns: str, cfg: PodRewriteConfig) -> bool:
    """Translate volume references; replace service-account token volumes by the virtual
    cluster's token Secret. Returns True if such a token volume exists now."""
    tr = cfg.translator
    has_sa = False
    for vol in spec.get("volumes") or []:
        if (cm := vol.get("configMap")) and cm.get("name"):
            cm["name"] = tr.host_name(cm["name"], ns)
        if (sec := vol.get("secret")) and sec.get("secretName"):
            sec["secretName"] = tr.host_name(sec["secretName"], ns)
        if (pvc := vol.get("persistentVolumeClaim")) and pvc.get("claimName"):
            pvc["claimName"] = tr.host_name(pvc["claimName"], ns)
        for holder, key in _volume_secret_refs(vol):
            holder[key] = tr.host_name(holder[key], ns)
        if isinstance(vol.get("ephemeral"), dict):
            _rewrite_claim_template(vol["ephemeral"], ns, cfg)
        if (proj := vol.get("projected")) is not None:
            sources = proj.get("sources") or []
            if any("serviceAccountToken" in s for s in sources):
                # kube-api-access-*: token + kube-root-ca.crt + namespace, all virtual ones.
                vol.pop("projected")
                if cfg.token_secret:
                    vol["secret"] = {"secretName": cfg.token_secret,
                                     "defaultMode": proj.get("defaultMode", 0o644)}
                    has_sa = True
                else:
                    vol["emptyDir"] = {}
                continue
            for src in sources:
                if (c := src.get("configMap")) and c.get("name"):
                    c["name"] = tr.host_name(c["name"], ns)
                if (s := src.get("secret")) and s.get("name"):
                    s["name"] = tr.host_name(s["name"], ns)
                if (d := src.get("downwardAPI")) is not None:
                    _rewrite_downward_items(d.get("items"))
        if (d := vol.get("downwardAPI")) is not None:
            _rewrite_downward_items(d.get("items"))
    return has_sa


def _rewrite_claim_template(eph: Obj, ns: str, cfg: PodRewriteConfig) -> None:
    """A generic ephemeral volume's claim is made by the host from this template: what it
    names (storage class, data source, volume, PV selector) is translated as a synced claim's
    is (:mod:`vkube.syncer.claimspec`), and ``vkube.io/`` marks are never the tenant's to set.
    (Its storage class and data source were checked before: :mod:`vkube.syncer.admission`.)"""
    tr = cfg.translator
    tmpl = eph.get("volumeClaimTemplate")
    if not isinstance(tmpl, dict):
        return
    meta = tmpl.get("metadata")
    if isinstance(meta, dict):
        for key in ("labels", "annotations"):
            if isinstance(meta.get(key), dict):
                meta[key] = {k: v for k, v in meta[key].items() if not k.startswith("vkube.io/")}
    spec = tmpl.get("spec")
    if isinstance(spec, dict):
        translate_claim_spec(spec, ns, tr, sync_storage_classes=cfg.sync_storage_classes,
                             volume_name=tr.host_cluster_name)


#: the virtual pod's labels / annotations as the kubelet writes a downward API file of
#: ``metadata.labels`` / ``metadata.annotations`` (the host pod's own are translated)
ANN_DOWNWARD_LABELS = "vkube.io/downward-labels"
ANN_DOWNWARD_ANNOTATIONS = "vkube.io/downward-annotations"

_FIELD_MAP = {
    "metadata.name": f"metadata.annotations['{ANN_NAME}']",
    "metadata.namespace": f"metadata.annotations['{ANN_NAMESPACE}']",
    "metadata.uid": f"metadata.annotations['{ANN_UID}']",
    "metadata.labels": f"metadata.annotations['{ANN_DOWNWARD_LABELS}']",
    "metadata.annotations": f"metadata.annotations['{ANN_DOWNWARD_ANNOTATIONS}']",
}


def go_quote(text: str) -> str:
    """Go's ``strconv.Quote`` (``%q``): what the kubelet uses for downward API map values."""
    out = ['"']
    for ch in text:
        o = ord(ch)
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif ch in _GO_ESCAPES:
            out.append(_GO_ESCAPES[ch])
        elif o < 0x20 or o == 0x7F:
            out.append(f"\\x{o:02x}")
        elif o >= 0x80 and not ch.isprintable():
            out.append(f"\\u{o:04x}" if o <= 0xFFFF else f"\\U{o:08x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


_GO_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r",
               "\t": "\\t", "\v": "\\v"}


def format_map(m: dict[str, str]) -> str:
    """The kubelet's ``fieldpath.FormatMap``: sorted ``key="value"`` lines."""
    return "\n".join(f"{k}={go_quote(str(m[k]))}" for k in sorted(m))


def _uses_field(spec: Obj, path: str) -> bool:
    for vol in spec.get("volumes") or []:
        items = list((vol.get("downwardAPI") or {}).get("items") or [])
        for src in (vol.get("projected") or {}).get("sources") or []:
            items += (src.get("downwardAPI") or {}).get("items") or []
        if any(((it.get("fieldRef") or {}).get("fieldPath")) == path for it in items):
            return True
    return any((((e.get("valueFrom") or {}).get("fieldRef") or {}).get("fieldPath")) == path
               for c in _containers(spec) for e in c.get("env") or [])


def _downward_annotations(vpod: Obj) -> dict[str, str]:
    """The virtual labels/annotations in the kubelet's file format, for the pods that show
    them through the downward API (only those: annotations are limited to 256 KiB)."""
    meta, spec = vpod.get("metadata") or {}, vpod.get("spec") or {}
    out = {}
    if _uses_field(spec, "metadata.labels"):
        out[ANN_DOWNWARD_LABELS] = format_map(meta.get("labels") or {})
    if _uses_field(spec, "metadata.annotations"):
        out[ANN_DOWNWARD_ANNOTATIONS] = format_map(meta.get("annotations") or {})
    return out
USAGE_ANNOTATIONS = frozenset({"vkube.io/cpu-usage", "vkube.io/memory-usage"})


def port_forward_annotations(vpod: Obj) -> dict[str, str]:
    """``vkube.io/port-forward-PORT`` (where the embedded host's simulated kubelet forwards a
    port: vkube.host.portforward) and the simulated usage (``vkube.io/cpu-usage``,
    ``vkube.io/memory-usage``: vkube.api.usage, what the host's metrics.k8s.io reports) go down
    as the tenant wrote them; every other ``vkube.io/`` annotation of a tenant is dropped. A
    real kubelet ignores them."""
    ann = (vpod.get("metadata") or {}).get("annotations") or {}
    return {k: v for k, v in ann.items() if ANN_RE.match(k) or k in USAGE_ANNOTATIONS}


_LABEL_REF = re.compile(r"^metadata\.labels\['(.+)'\]\Z")


def _rewrite_field_path(path: str) -> str:
    """Downward API paths that would show host facts show the virtual ones instead."""
    if path in _FIELD_MAP:
        return _FIELD_MAP[path]
    if m := _LABEL_REF.match(path):
        return f"metadata.labels['{encode_label_key(m.group(1))}']"
    return path


def _rewrite_downward_items(items: list[Obj] | None) -> None:
    for item in items or []:
        if (fr := item.get("fieldRef")) and fr.get("fieldPath"):
            fr["fieldPath"] = _rewrite_field_path(fr["fieldPath"])


def _rewrite_container(c: Obj, ns: str, tr: Translator, extra_env: list[Obj],
                       sa_name: str) -> None:
    env = c.get("env") or []
    for e in env:
        vf = e.get("valueFrom") or {}
        if (ref := vf.get("configMapKeyRef")) and ref.get("name"):
            ref["name"] = tr.host_name(ref["name"], ns)
        if (ref := vf.get("secretKeyRef")) and ref.get("name"):
            ref["name"] = tr.host_name(ref["name"], ns)
        if (fr := vf.get("fieldRef")) and fr.get("fieldPath"):
            if fr["fieldPath"] == "spec.serviceAccountName":
                e.pop("valueFrom")
                e["value"] = sa_name
            else:
                fr["fieldPath"] = _rewrite_field_path(fr["fieldPath"])
    for ef in c.get("envFrom") or []:
        if (ref := ef.get("configMapRef")) and ref.get("name"):
            ref["name"] = tr.host_name(ref["name"], ns)
        if (ref := ef.get("secretRef")) and ref.get("name"):
            ref["name"] = tr.host_name(ref["name"], ns)
    own = {e.get("name") for e in env}
    added = [dict(e) for e in extra_env if e["name"] not in own]
    if added or env:
        c["env"] = added + env


def _ensure_sa_mount(c: Obj) -> None:
    mounts = c.setdefault("volumeMounts", [])
    if any(m.get("mountPath") == SA_MOUNT_PATH for m in mounts):
        return
    mounts.append({"name": SA_VOLUME, "mountPath": SA_MOUNT_PATH, "readOnly": True})


def _kube_env(cfg: PodRewriteConfig) -> list[Obj]:
    if not cfg.kube_service_host:
        return []
    host, port = cfg.kube_service_host, str(cfg.kube_service_port)
    return [
        {"name": "KUBERNETES_SERVICE_HOST", "value": host},
        {"name": "KUBERNETES_SERVICE_PORT", "value": port},
        {"name": "KUBERNETES_SERVICE_PORT_HTTPS", "value": port},
        {"name": "KUBERNETES_PORT", "value": f"tcp://{host}:{port}"},
        {"name": f"KUBERNETES_PORT_{port}_TCP", "value": f"tcp://{host}:{port}"},
        {"name": f"KUBERNETES_PORT_{port}_TCP_PROTO", "value": "tcp"},
        {"name": f"KUBERNETES_PORT_{port}_TCP_PORT", "value": port},
        {"name": f"KUBERNETES_PORT_{port}_TCP_ADDR", "value": host},
    ]


def service_env_vars(services: tuple[Obj, ...] | list[Obj]) -> list[Obj]:
    """Docker-link style variables, as the kubelet makes them for a namespace's services
    (``FOO_SERVICE_HOST``, ``FOO_SERVICE_PORT``, ``FOO_PORT_80_TCP`` …); sorted by name."""
    out: list[Obj] = []
    for svc in sorted(services, key=lambda s: s["metadata"]["name"]):
        ip = (svc.get("spec") or {}).get("clusterIP")
        ports = (svc.get("spec") or {}).get("ports") or []
        if not ip or ip == "None" or not ports or svc["metadata"]["name"] == "kubernetes":
            continue
        prefix = svc["metadata"]["name"].upper().replace("-", "_")
        first = ports[0]
        out.append({"name": f"{prefix}_SERVICE_HOST", "value": ip})
        out.append({"name": f"{prefix}_SERVICE_PORT", "value": str(first["port"])})
        for p in ports:
            if p.get("name"):
                pn = p["name"].upper().replace("-", "_")
                out.append({"name": f"{prefix}_SERVICE_PORT_{pn}", "value": str(p["port"])})
        proto0 = (first.get("protocol") or "TCP").lower()
        out.append({"name": f"{prefix}_PORT", "value": f"{proto0}://{ip}:{first['port']}"})
        for p in ports:
            proto = p.get("protocol") or "TCP"
            base = f"{prefix}_PORT_{p['port']}_{proto}"
            url = f"{proto.lower()}://{ip}:{p['port']}"
            out += [{"name": base, "value": url},
                    {"name": f"{base}_PROTO", "value": proto.lower()},
                    {"name": f"{base}_PORT", "value": str(p["port"])},
                    {"name": f"{base}_ADDR", "value": ip}]
    return out


def _rewrite_term(term: Obj, ns: str, tr: Translator) -> None:
    """A pod (anti-)affinity term: all host pods live in one namespace, so the term's
    namespaces / namespaceSelector become label terms on the pods themselves."""
    sel = tr.translate_selector(term.get("labelSelector"), None)
    exprs = sel.setdefault("matchExpressions", [])
    namespaces = term.pop("namespaces", None)
    ns_selector = term.pop("namespaceSelector", None)
    if namespaces:  # (with a namespaceSelector too, Kubernetes takes the union: we keep the list)
        exprs.append({"key": LABEL_NAMESPACE, "operator": "In", "values": sorted(set(namespaces))})
    elif ns_selector is not None:  # {} means every namespace of this virtual cluster
        n = tr.translate_selector(ns_selector, None, kind="n")
        n["matchLabels"].pop(LABEL_MANAGED_BY, None)
        sel["matchLabels"].update(n["matchLabels"])
        exprs += n.get("matchExpressions") or []
    else:
        sel["matchLabels"][LABEL_NAMESPACE] = ns
    if not exprs:
        sel.pop("matchExpressions")
    term["labelSelector"] = sel
    for key in ("matchLabelKeys", "mismatchLabelKeys"):
        if term.get(key):
            term[key] = [encode_label_key(k) for k in term[key]]


def _rewrite_affinity(spec: Obj, ns: str, tr: Translator) -> None:
    aff = spec.get("affinity") or {}
    for kind in ("podAffinity", "podAntiAffinity"):
        a = aff.get(kind) or {}
        for term in a.get("requiredDuringSchedulingIgnoredDuringExecution") or []:
            _rewrite_term(term, ns, tr)
        for w in a.get("preferredDuringSchedulingIgnoredDuringExecution") or []:
            if w.get("podAffinityTerm"):
                _rewrite_term(w["podAffinityTerm"], ns, tr)
