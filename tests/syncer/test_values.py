"""Values file schema: defaults, parsing, errors naming the key path."""

import pytest

from vkube.syncer.values import ValuesError, dump_values, load_values

DOC = """
sync:
  persistentvolumes: {enabled: true}
  storageclasses: {enabled: true}
  nodes: {enabled: true, syncAllNodes: true, nodeSelector: "disktype=ssd", enableScheduler: true}
mapServices:
  fromHost:    [{from: default/nettool-host, to: default/nettool-host}]
  fromVirtual: [{from: default/nettool-virtual, to: nettool-virtual}]
isolation: {enabled: true}
enableHA: true
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
    assert v.isolation.enabled and v.enable_ha
    dumped = dump_values(v)
    assert dumped["sync"]["nodes"]["syncAllNodes"] is True
    assert dumped["mapServices"]["fromHost"] == [{"from": "default/nettool-host",
                                                  "to": "default/nettool-host"}]
    assert load_values(__import__("yaml").safe_dump(dumped)) == v


def test_isolation_forces_reject():
    v = load_values("sync: {pods: {hostAccess: allow}}\nisolation: {enabled: true}")
    assert v.sync.pods.host_access == "allow" and v.host_access == "reject"


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
    ("sync: {nodes: {nodeSelector: ssd}}", "sync.nodes.nodeSelector"),
    ("sync: [1]", "sync: must be a mapping"),
    ("sync: {", "not valid YAML"),
])
def test_errors_name_the_key(doc, where):
    with pytest.raises(ValuesError) as e:
        load_values(doc)
    assert where in str(e.value)
