"""``vkube render``: the manifests that run one virtual cluster's control plane *inside* a host
cluster (the image is built by the repository's Dockerfile), and ``apply()`` for
``vkube create --in-cluster``.

RBAC is ``vkube.syncer.hostrbac``'s (shared with ``vkube create`` on the embedded host): a Role
in the host namespace, a ClusterRole only with what the values turn on."""

from __future__ import annotations

import base64
import os
import sys
from typing import Any

from vkube.api import yamlio

from vkube import __version__
from vkube.api import errors
from vkube.cli import replicas
from vkube.cli.output import CLIError
from vkube.client import Client
from vkube.client.resources import by_kind
from vkube.syncer import hostrbac

DEFAULT_IMAGE = f"ghcr.io/vkube/vkube:{__version__}"
API_PORT = 6443
SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"

Obj = dict[str, Any]


def _labels(name: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": "vkube", "app.kubernetes.io/instance": name,
            "vkube.io/vcluster": name}


def _host_kubeconfig(namespace: str) -> str:
    """The syncer reaches the host through the pod's service account."""
    doc = {"apiVersion": "v1", "kind": "Config",
           "clusters": [{"name": "host", "cluster": {
               "server": "https://kubernetes.default.svc",
               "certificate-authority": f"{SA_DIR}/ca.crt"}}],
           "users": [{"name": "host", "user": {"tokenFile": f"{SA_DIR}/token"}}],
           "contexts": [{"name": "host", "context": {"cluster": "host", "user": "host",
                                                      "namespace": namespace}}],
           "current-context": "host"}
    return yamlio.dump(doc, sort_keys=False)


#: An object ``apply`` creates but never changes: the HA replicas' encryption key (a new key
#: would leave every secret already stored unreadable).
CREATE_ONLY = "vkube.io/create-only"
ENCRYPTION_DIR = "/etc/vkube/encryption"


def _encryption_secret(metadata: Obj) -> Obj:
    """One EncryptionConfiguration for every HA replica: each pod's data dir is an emptyDir,
    so a key of its own would differ between replicas and be lost with the pod (the format of
    ``vkube/apiserver/encryption.default_config_for``: AES-GCM for secrets, identity fallback)."""
    doc = {"apiVersion": "apiserver.config.k8s.io/v1", "kind": "EncryptionConfiguration",
           "resources": [{"resources": ["secrets"], "providers": [
               {"aesgcm": {"keys": [{"name": "key1",
                                     "secret": base64.b64encode(os.urandom(32)).decode()}]}},
               {"identity": {}}]}]}
    return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque", "metadata": metadata,
            "stringData": {"config.yaml": yamlio.dump(doc, sort_keys=False)}}


def refuse_shared_mode(values: Obj, how: str) -> None:
    """The rendered control plane is one StatefulSet of its own: ``controlPlane.mode: shared``
    (several clusters in one server on this machine) cannot be honoured there, so it is refused
    rather than silently ignored."""
    if ((values or {}).get("controlPlane") or {}).get("mode") == "shared":
        raise CLIError(f"controlPlane.mode: shared is not supported by {how}: the rendered "
                       "control plane is a dedicated StatefulSet in the host — drop "
                       "controlPlane.mode (or set it to dedicated), or run a shared cluster on "
                       "this machine with `vkube create NAME --shared`")


#: the longest name whose StatefulSet ``vkube-NAME`` works: its pods carry the label
#: ``controller-revision-hash: vkube-NAME-HASH`` (HASH up to 10 characters), at most 63
IN_CLUSTER_NAME_MAX = 63 - len("vkube-") - 1 - 10


def refuse_long_name(name: str, how: str) -> None:
    """Refused rather than a StatefulSet whose pods the host never creates."""
    if len(name) > IN_CLUSTER_NAME_MAX:
        raise CLIError(f"{how}: the name {name!r} has {len(name)} characters; an in-cluster "
                       f"control plane's needs at most {IN_CLUSTER_NAME_MAX} (its StatefulSet's "
                       "pods carry a label of the name plus 17 characters, at most 63) — pick "
                       "a shorter name")


def manifests(name: str, namespace: str, values: Obj, *, image: str = DEFAULT_IMAGE,
              storage: str = "5Gi") -> list[Obj]:
    """Every object, in apply order."""
    full = f"vkube-{name}"
    labels = _labels(name)
    meta = lambda n, **kw: {"name": n, "namespace": namespace, "labels": dict(labels), **kw}  # noqa: E731
    objs: list[Obj] = [
        {"apiVersion": "v1", "kind": "Namespace",
         "metadata": {"name": namespace, "labels": {"vkube.io/vcluster": name}}},
    ]
    objs += hostrbac.manifests(name, namespace, hostrbac.host_rbac(values, namespace), labels)
    objs += [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta(f"{full}-config"),
         "data": {"values.yaml": yamlio.dump(values or {}, sort_keys=False),
                  "host-kubeconfig": _host_kubeconfig(namespace)}},
        # Filled in by whoever issues the serving certificate (cert-manager, or by hand).
        {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
         "metadata": meta(f"{full}-certs", annotations={"vkube.io/placeholder": "true"}),
         "data": {}},
        *([_encryption_secret(meta(f"{full}-encryption", annotations={CREATE_ONLY: "true"}))]
          if values.get("enableHA") else []),
        {"apiVersion": "v1", "kind": "Service", "metadata": meta(full),
         "spec": {"type": "ClusterIP", "selector": labels,
                  "ports": [{"name": "https", "port": 443, "targetPort": API_PORT,
                             "protocol": "TCP"}]}},
        _statefulset(name, namespace, full, labels, values, image, storage),
    ]
    return objs


def _statefulset(name: str, namespace: str, full: str, labels: dict[str, str], values: Obj,
                 image: str, storage: str) -> Obj:
    args = ["serve", "--name", name, "--data-dir", "/data", "--port", str(API_PORT), "--address", "0.0.0.0",
            "--host-kubeconfig", "/etc/vkube/host-kubeconfig", "--host-namespace", namespace,
            "--advertise-address", "$(POD_IP)", "-f", "/etc/vkube/values.yaml"]
    # the serving certificate names the host Service, as tenants' pods and tools reach it
    for san in (full, f"{full}.{namespace}", f"{full}.{namespace}.svc", f"{full}.{namespace}.svc.cluster.local"):
        args += ["--tls-san", san]
    container = {
        "name": "vkube", "image": image, "imagePullPolicy": "IfNotPresent", "args": args,
        "ports": [{"name": "https", "containerPort": API_PORT, "protocol": "TCP"}],
        "env": [{"name": "VKUBE_LOG_LEVEL", "value": "INFO"},
                # where pods reach this control plane (the Endpoints of default/kubernetes)
                {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}],
        "readinessProbe": {"httpGet": {"path": "/readyz", "port": API_PORT, "scheme": "HTTPS"},
                           "periodSeconds": 2, "failureThreshold": 30},
        "livenessProbe": {"httpGet": {"path": "/livez", "port": API_PORT, "scheme": "HTTPS"},
                          "initialDelaySeconds": 10, "periodSeconds": 10},
        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"},
                      "limits": {"memory": "1Gi"}},
        "securityContext": {"allowPrivilegeEscalation": False, "runAsNonRoot": True,
                            "capabilities": {"drop": ["ALL"]}},
        "volumeMounts": [{"name": "data", "mountPath": "/data"},
                         {"name": "config", "mountPath": "/etc/vkube", "readOnly": True},
                         {"name": "certs", "mountPath": "/etc/vkube/pki", "readOnly": True}],
    }
    spec_volumes: list[Obj] = [{"name": "config", "configMap": {"name": f"{full}-config"}},
                               {"name": "certs", "secret": {"secretName": f"{full}-certs",
                                                            "optional": True}}]
    sts: Obj = {
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": full, "namespace": namespace, "labels": dict(labels)},
        "spec": {
            "replicas": replicas.wanted(values),
            "serviceName": full,
            "selector": {"matchLabels": dict(labels)},
            "podManagementPolicy": "Parallel",
            "template": {
                "metadata": {"labels": dict(labels)},
                "spec": {"serviceAccountName": full, "terminationGracePeriodSeconds": 10,
                         "securityContext": {"runAsUser": 65532, "runAsGroup": 65532,
                                             "fsGroup": 65532},
                         "containers": [container],
                         "volumes": spec_volumes},
            },
        },
    }
    if values.get("enableHA"):
        # the replicas share controlPlane.store (PostgreSQL/etcd, values enforce it): the data
        # dir holds only this pod's kubeconfig, so no per-replica volume — and no SQLite; the
        # secrets' encryption key is shared too
        spec_volumes.append({"name": "data", "emptyDir": {}})
        spec_volumes.append({"name": "encryption",
                             "secret": {"secretName": f"{full}-encryption"}})
        container["volumeMounts"].append({"name": "encryption", "mountPath": ENCRYPTION_DIR,
                                          "readOnly": True})
        args += ["--encryption-config", f"{ENCRYPTION_DIR}/config.yaml"]
    else:
        sts["spec"]["volumeClaimTemplates"] = [{
            "metadata": {"name": "data", "labels": dict(labels)},
            "spec": {"accessModes": ["ReadWriteOnce"],
                     "resources": {"requests": {"storage": storage}}}}]
    return sts


def dump(objs: list[Obj], out: Any = None) -> None:
    yamlio.dump_all(objs, out or sys.stdout, sort_keys=False)


async def apply(host: Client, objs: list[Obj]) -> int:
    """Create each object, or merge-patch it when it exists; returns how many were applied."""
    n = 0
    for obj in objs:
        res = by_kind(obj["apiVersion"], obj["kind"])
        if res is None:  # pragma: no cover - manifests() only uses well-known kinds
            raise ValueError(f"unknown kind {obj['kind']}")
        meta = obj["metadata"]
        try:
            await host.create(res, obj, namespace=meta.get("namespace") if res.namespaced else None)
        except errors.AlreadyExists:
            if (meta.get("annotations") or {}).get(CREATE_ONLY) == "true":
                n += 1
                continue  # kept as it is (the encryption key)
            await host.patch(res, meta["name"], obj,
                             namespace=meta.get("namespace") if res.namespaced else None)
        n += 1
    return n
