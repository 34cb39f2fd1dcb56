"""Every key of the values schema is checked up front: a value that passes must work once the
cluster starts (store URLs, Pod Security levels, names, label selectors, quantities,
registries); numbers are quantities, as Kubernetes takes them."""

from __future__ import annotations

import dataclasses
import typing

import pytest

from vkube.syncer import values as values_mod
from vkube.syncer.values import Values, ValuesError, load_values
from vkube.syncer.isolation import quota_hard


def _string_fields(cls, path=""):
    """(key path, field) of every key holding strings: str, tuple[str], dict[str, str]."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp, key = hints[f.name], f"{path}{f.metadata.get('key', f.name)}"
        origin, inner = typing.get_origin(tp), typing.get_args(tp)
        item = inner[1] if origin is dict else inner[0] if origin is tuple else None
        if dataclasses.is_dataclass(tp):
            yield from _string_fields(tp, key + ".")
        elif dataclasses.is_dataclass(item):
            yield from _string_fields(item, key + "[].")
        elif tp is str or item is str:
            yield key, f


def test_every_string_key_is_checked():
    fields = list(_string_fields(Values))
    assert len(fields) > 25
    for key, f in fields:
        check = f.metadata.get("check")
        assert check is not None, f"{key}: no check — what may it hold?"
        if isinstance(check, str):  # checked with other keys, by this function
            assert callable(getattr(values_mod, check, None)), (key, check)


@pytest.mark.parametrize("doc, where", [
    ("controlPlane: {store: 'mysql://x'}", "controlPlane.store: 'mysql://x': unknown store scheme"),
    ("controlPlane: {store: 'postgres://db'}", "controlPlane.store: 'postgres://db' is not a store URL"),
    ("controlPlane: {store: 'etcd://a:2379,b'}", "controlPlane.store: 'etcd://a:2379,b': etcd endpoint 'b'"),
    ("controlPlane: {store: 'etcd://u:p@a:2379'}", "controlPlane.store: 'etcd://u:p@a:2379': etcd user"),
    ("controlPlane: {store: 'postgres://u@h:99999/db'}", "controlPlane.store: "),
    ("controlPlane: {store: 'sqlite://'}", "controlPlane.store: 'sqlite://' is not a store URL"),
    ("controlPlane: {podSecurity: {defaults: {enforce: strict}}}",
     "controlPlane.podSecurity.defaults.enforce: 'strict': must be one of privileged, baseline"),
    ("controlPlane: {podSecurity: {defaults: {warn: Baseline}}}",
     "controlPlane.podSecurity.defaults.warn: 'Baseline'"),
    ("controlPlane: {podSecurity: {defaults: {audit-version: '1.30'}}}",
     "controlPlane.podSecurity.defaults.audit-version: '1.30': must be \"latest\" or \"v1.x\""),
    ("controlPlane: {podSecurity: {exemptions: {namespaces: [Kube_System]}}}",
     "controlPlane.podSecurity.exemptions.namespaces[0]: 'Kube_System' is not a namespace name"),
    ("controlPlane: {podSecurity: {exemptions: {runtimeClasses: ['a b']}}}",
     "controlPlane.podSecurity.exemptions.runtimeClasses[0]: 'a b' is not a valid name"),
    ("controlPlane: {podSecurity: {exemptions: {usernames: ['']}}}",
     "controlPlane.podSecurity.exemptions.usernames[0]: '' is not a name"),
    ("isolation: {runtimeClassName: Not_Valid}",
     "isolation.runtimeClassName: 'Not_Valid' is not a valid name"),
    ("isolation: {nodeSelector: a=b=c}", "isolation.nodeSelector: 'a=b=c': 'b=c' is not a label value"),
    ("sync: {nodes: {nodeSelector: 'bad key=x'}}",
     "sync.nodes.nodeSelector: 'bad key=x': 'bad key' is not a label key"),
    ("isolation: {tolerations: [{key: 'a/b/c', operator: Exists}]}",
     "isolation.tolerations[0].key: 'a/b/c' is not a label key"),
    ("isolation: {tolerations: [{key: k, value: 'x y'}]}",
     "isolation.tolerations[0].value: 'x y' is not a label value"),
    ("isolation: {allowedRegistries: ['https://ghcr.io/acme']}",
     "isolation.allowedRegistries[0]: 'https://ghcr.io/acme' is not a registry"),
    ("isolation: {allowedStorageClasses: [Fast_SSD]}",
     "isolation.allowedStorageClasses[0]: 'Fast_SSD' is not a valid name"),
    ("isolation: {allowedIngressClasses: ['']}",
     "isolation.allowedIngressClasses[0]: '' is not a valid name"),
    ("sync: {persistentvolumes: {allowedSources: [nfs, NFS]}}",
     "sync.persistentvolumes.allowedSources[1]: 'NFS' is not a PersistentVolume source"),
    ("sync: {persistentvolumes: {allowedSources: [hostPath]}}",
     "sync.persistentvolumes.allowedSources[0]: 'hostPath' is the node's own files: only "
     "sync.pods.hostAccess: allow passes it"),
    ("isolation: {resourceQuota: {cpu: 0}}", "isolation.resourceQuota.cpu: '0' is not a positive"),
    ("isolation: {resourceQuota: {memory: 8Gb}}", "isolation.resourceQuota.memory: '8Gb' is not"),
    ("isolation: {resourceQuota: {cpu: true}}", "isolation.resourceQuota.cpu: must be a quantity"),
    ("sync: {toHost: {customResources: {Issuer.cert-manager.io: {patches: [{path: spec.x, "
     "reference: {kind: Secret, apiVersion: 'v1/x'}}]}}}}",
     "sync.toHost.customResources.Issuer.cert-manager.io.patches[0].reference.apiVersion: 'v1/x'"),
    ("sync: {toHost: {customResources: {Issuer.cert-manager.io: {patches: [{path: spec.x, "
     "reference: {kind: 'Secret!', namePath: 'a..b'}}]}}}}",
     "reference.kind: 'Secret!' is not a kind"),
])
def test_bad_values_are_refused_naming_the_key(doc, where):
    with pytest.raises(ValuesError) as e:
        load_values(doc)
    assert where in str(e.value)
    assert "\n" not in str(e.value)


def test_good_values_pass():
    v = load_values("""
controlPlane:
  store: 'etcd://a:2379,b:2379/team'
  podSecurity:
    defaults: {enforce: baseline, enforce-version: v1.30, warn: restricted, audit-version: latest}
    exemptions: {usernames: ['system:serviceaccount:ci:deployer'], namespaces: [ci],
                 runtimeClasses: [gvisor]}
isolation:
  runtimeClassName: gvisor.sandbox
  nodeSelector: 'node-role.kubernetes.io/tenant=,zone=eu-1'
  tolerations: [{key: dedicated, value: team-a, effect: NoSchedule}, {operator: Exists}]
  allowedRegistries: [docker.io, ghcr.io/acme/, 'localhost:5000/x']
  allowedStorageClasses: [fast.ssd]
sync: {nodes: {nodeSelector: 'kubernetes.io/os=linux'}}
""")
    assert v.isolation.node_selector.startswith("node-role")
    for store in ("", "sqlite", "/var/lib/vkube/state.db", "sqlite:///tmp/x.db",
                  "postgres://u:p@db:5432/x"):
        assert load_values(f"controlPlane: {{store: '{store}'}}").control_plane.store == store


@pytest.mark.parametrize("cpu, memory, limits", [(4, "8Gi", ("4", "8Gi")),
                                                 (0.5, 1073741824, ("500m", "1073741824")),
                                                 ("2", 2.5, ("2", "2500m"))])
def test_numbers_are_quantities(cpu, memory, limits):
    v = load_values(f"isolation: {{enabled: true, resourceQuota: {{cpu: {cpu}, memory: {memory}}}}}")
    hard = quota_hard(v.isolation)
    assert (hard["limits.cpu"], hard["limits.memory"]) == limits
