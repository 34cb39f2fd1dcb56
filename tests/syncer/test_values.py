"""Values file schema: defaults, parsing, errors naming the key path."""

import pytest

import yaml

from vkube.syncer.values import Values, ValuesError, dump_values, load_values, schema_yaml

DOC = """
sync:
  persistentvolumes: {enabled: true}
  storageclasses: {enabled: true}
  nodes: {enabled: true, syncAllNodes: true, nodeSelector: "disktype=ssd", enableScheduler: true}
mapServices:
  fromHost:    [{from: default/nettool-host, to: default/nettool-host}]
  fromVirtual: [{from: default/nettool-virtual, to: nettool-virtual}]
isolation: {enabled: true}
"""


def test_defaults():
    v = load_values("")
    assert v.sync.pods.enabled and v.sync.services.enabled and v.sync.configmaps.enabled
    assert not v.sync.configmaps.all
    assert not v.sync.persistentvolumes.enabled and not v.sync.storageclasses.enabled
    assert not v.sync.nodes.enabled and not v.sync.nodes.enable_scheduler
    assert v.host_access == "reject" and not v.enable_ha
    assert v.map_services.from_host == ()


def test_design_example_parses():
    v = load_values(DOC)
    assert v.sync.persistentvolumes.enabled and v.sync.storageclasses.enabled
    n = v.sync.nodes
    assert n.enabled and n.sync_all_nodes and n.enable_scheduler
    assert n.selector() == {"disktype": "ssd"}
    assert v.map_services.from_host[0].from_ == "default/nettool-host"
    assert v.map_services.from_virtual[0].to == "nettool-virtual"
    assert v.isolation.enabled and not v.enable_ha
    dumped = dump_values(v)
    assert dumped["sync"]["nodes"]["syncAllNodes"] is True
    assert dumped["mapServices"]["fromHost"] == [{"from": "default/nettool-host",
                                                  "to": "default/nettool-host"}]
    assert load_values(__import__("yaml").safe_dump(dumped)) == v


def test_isolation_rejects_host_access_and_says_so():
    v = load_values("isolation: {enabled: true}")
    assert v.host_access == "reject"
    assert load_values("sync: {pods: {hostAccess: reject}}\nisolation: {enabled: true}") == v
    for policy in ("allow", "strip"):  # would be silently overridden: refused instead
        with pytest.raises(ValuesError, match="sync.pods.hostAccess: '%s' cannot hold with "
                           "isolation.enabled" % policy):
            load_values(f"sync: {{pods: {{hostAccess: {policy}}}}}\nisolation: {{enabled: true}}")


@pytest.mark.parametrize("doc, where", [
    ("sync: {nodes: {syncAll: true}}", "sync.nodes.syncAll: unknown key"),
    ("sync: {pod: {enabled: true}}", "sync.pod: unknown key"),
    ("bogus: 1", "bogus: unknown key"),
    ("enableHA: yes-please", "enableHA: must be true or false"),
    ("sync: {services: {enabled: 1}}", "sync.services.enabled: must be true or false"),
    ("sync: {pods: {hostAccess: maybe}}", "sync.pods.hostAccess: must be one of"),
    ("mapServices: {fromHost: [{from: a/b}]}", "mapServices.fromHost[0].to: required"),
    ("mapServices: {fromHost: [{from: 'A B', to: x}]}", "mapServices.fromHost[0].from"),
    ("mapServices: {fromHost: {from: a}}", "mapServices.fromHost: must be a list"),
    ("sync: {nodes: {nodeSelector: ssd}}", "sync.nodes.nodeSelector: 'ssd' is not key=value"),
    ("sync: {nodes: {nodeSelector: '=x'}}", "e.g. \"disktype=ssd,zone=a\""),
    # accepted only where they do something: replicas share a store, never SQLite
    ("enableHA: true", "enableHA: needs a shared store"),
    ("enableHA: true\ncontrolPlane: {store: sqlite}", "split brain"),
    ("enableHA: true\ncontrolPlane: {store: /var/lib/vkube/state.db}", "enableHA: needs a shared"),
    ("replicas: 3", "replicas: more than one API server replica needs enableHA: true"),
    # HA of one replica would quietly be no HA: both keys named
    ("enableHA: true\ncontrolPlane: {store: 'postgres://u@127.0.0.1:5432/db'}",
     "enableHA: true with replicas: 1 runs a single API server"),
    ("enableHA: true\nreplicas: 1\ncontrolPlane: {store: 'etcd://127.0.0.1:2379'}",
     "set replicas: 2 or more"),
    # isolation always rejects host access: a level that allows it is refused, not ignored
    ("isolation: {enabled: true, podSecurityStandard: privileged}",
     "isolation.podSecurityStandard: 'privileged' cannot hold with isolation.enabled"),
    ("replicas: 3\ncontrolPlane: {store: 'postgres://u@127.0.0.1:5432/db'}", "needs enableHA"),
    ("replicas: 0", "replicas: must be at least 1, not 0"),
    ("sync: {nodes: {enabled: yes-please}}", "sync.nodes.enabled: must be true or false"),
    ("isolation: {podSecurityStandard: strict}",
     "isolation.podSecurityStandard: must be one of privileged, baseline, restricted"),
    # a mapping names both sides exactly: no silently assumed namespace
    ("mapServices: {fromHost: [{from: svc, to: demo/svc}]}",
     "mapServices.fromHost[0].from: must be HOSTNAMESPACE/NAME"),
    ("mapServices: {fromHost: [{from: default/svc, to: svc}]}",
     "mapServices.fromHost[0].to: must be VIRTUALNAMESPACE/NAME"),
    ("mapServices: {fromVirtual: [{from: svc, to: svc}]}",
     "mapServices.fromVirtual[0].from: must be VIRTUALNAMESPACE/NAME"),
    ("mapServices: {fromVirtual: [{from: a/svc, to: other/svc}]}",
     "mapServices.fromVirtual[0].to: must be NAME"),
    ("mapServices: {fromHost: [{from: a/x, to: b/y}, {from: a/z, to: b/y}]}",
     "mapServices.fromHost[1].to: 'b/y' is already the target of mapServices.fromHost[0]"),
    ("sync: [1]", "sync: must be a mapping"),
    ("sync: {priorityclasses: {maxValue: 1000000001}}",
     "sync.priorityclasses.maxValue: 1000000001 is out of range (accepted: -2147483648 to "
     "1000000000; higher values are the host's system classes)"),
    ("sync: {priorityclasses: {maxValue: high}}", "sync.priorityclasses.maxValue: must be"),
    ("sync: {priorityclasses: {allowPreemption: 1}}",
     "sync.priorityclasses.allowPreemption: must be true or false"),
    ("sync: {", "not valid YAML"),
    # watch caps: shared mode only, positive integers
    ("controlPlane: {watches: {maxPerCluster: 50}}", "controlPlane.watches: caps watches in shared mode only"),
    ("controlPlane: {mode: shared, watches: {maxPerCluster: 0}}",
     "controlPlane.watches.maxPerCluster: 0: must be between 1 and 1000000"),
    ("controlPlane: {mode: shared, watches: {maxPerCredential: -1}}",
     "controlPlane.watches.maxPerCredential: -1: must be between 1 and 1000000"),
    ("controlPlane: {mode: shared, watches: {maxPerCluster: many}}",
     "controlPlane.watches.maxPerCluster: must be an integer"),
    ("controlPlane: {mode: shared, watches: {max: 5}}", "controlPlane.watches.max: unknown key"),
])
def test_errors_name_the_key(doc, where):
    with pytest.raises(ValuesError) as e:
        load_values(doc)
    assert where in str(e.value)


def test_enable_ha_false_and_one_replica_are_accepted():
    v = load_values("enableHA: false\nreplicas: 1")
    assert not v.enable_ha and v.replicas == 1


@pytest.mark.parametrize("store", ["postgres://vkube@127.0.0.1:5432/vkube",
                                   "postgresql://u:p@db:5432/x", "etcd://127.0.0.1:2379",
                                   "etcd://a:2379,b:2379/prefix"])
def test_enable_ha_is_accepted_on_a_shared_store(store):
    v = load_values(f"enableHA: true\nreplicas: 3\ncontrolPlane: {{store: '{store}'}}")
    assert v.enable_ha and v.replicas == 3 and v.control_plane.store == store


def test_schema_yaml_documents_every_key_at_its_default():
    text = schema_yaml()
    assert load_values(text) == Values(), "the printed schema parses back to the defaults"
    doc = yaml.safe_load(text)

    def keys(d, prefix=""):
        for k, v in d.items():
            yield f"{prefix}{k}"
            if isinstance(v, dict):
                yield from keys(v, f"{prefix}{k}.")
    printed = set(keys(doc))
    assert printed == set(keys(dump_values(Values()))), "every key, no more"
    lines = text.splitlines()
    for line in lines:  # every key line follows a one-line comment, except toggles' enabled
        if line.strip() and not line.lstrip().startswith("#"):
            i = lines.index(line)
            assert lines[i - 1].lstrip().startswith("#") or line.strip() == "enabled: true" or \
                line.strip() == "enabled: false", line
    assert "(one of: reject, strip, allow)" in text
    assert "nodeSelector: ''" in text and "enableHA: false" in text
