"""flowcontrol.apiserver.k8s.io/v1 on a ``vkube create`` cluster, through kubectl: the
mandatory and suggested configuration exists from the start (as kube-apiserver's bootstrap
makes it), defaults are filled in, bad objects are refused with upstream's field errors."""

from __future__ import annotations

import json

import pytest

from tests.cli.conftest import User, eventually

MANDATORY_LEVELS = {"exempt", "catch-all"}
SUGGESTED_LEVELS = {"node-high", "system", "leader-election", "workload-high", "workload-low", "global-default"}
SCHEMAS = {"exempt": 1, "catch-all": 10000, "probes": 2, "system-leader-election": 100, "endpoint-controller": 150,
           "workload-leader-election": 200, "system-node-high": 400, "system-nodes": 500,
           "kube-controller-manager": 800, "kube-scheduler": 800, "kube-system-service-accounts": 900,
           "service-accounts": 9000, "global-default": 9900}


def test_bootstrap_configuration_exists(vcluster: User) -> None:
    levels = json.loads(vcluster.kubectl("get", "prioritylevelconfigurations", "-o", "json").stdout)["items"]
    assert {o["metadata"]["name"] for o in levels} == MANDATORY_LEVELS | SUGGESTED_LEVELS
    by_name = {o["metadata"]["name"]: o for o in levels}
    assert by_name["exempt"]["spec"] == {"type": "Exempt", "exempt": {"nominalConcurrencyShares": 0, "lendablePercent": 0}}
    assert by_name["catch-all"]["spec"]["limited"] == {"nominalConcurrencyShares": 5, "lendablePercent": 0,
                                                       "limitResponse": {"type": "Reject"}}
    assert by_name["workload-low"]["spec"]["limited"]["limitResponse"]["queuing"] == {
        "queues": 128, "handSize": 6, "queueLengthLimit": 50}
    assert all(o["metadata"]["annotations"]["apf.kubernetes.io/autoupdate-spec"] == "true" for o in levels)
    schemas = json.loads(vcluster.kubectl("get", "flowschemas", "-o", "json").stdout)["items"]
    assert {o["metadata"]["name"]: o["spec"]["matchingPrecedence"] for o in schemas} == SCHEMAS
    for fs in schemas:  # none dangles: every referenced level exists
        cond = next(c for c in fs["status"]["conditions"] if c["type"] == "Dangling")
        assert cond["status"] == "False" and cond["reason"] == "Found"
    table = vcluster.kubectl("get", "flowschemas", "exempt", "catch-all").stdout.splitlines()
    assert table[0].split() == ["NAME", "PRIORITYLEVEL", "MATCHINGPRECEDENCE", "DISTINGUISHERMETHOD", "AGE", "MISSINGPL"]
    assert table[1].split()[:4] == ["exempt", "exempt", "1", "<none>"]
    assert table[2].split()[:4] == ["catch-all", "catch-all", "10000", "ByUser"]


def test_create_defaults_and_a_user_owned_level(vcluster: User) -> None:
    vcluster.kubectl("apply", "-f", "-", input="""
apiVersion: flowcontrol.apiserver.k8s.io/v1
kind: PriorityLevelConfiguration
metadata: {name: batch}
spec:
  type: Limited
  limited:
    limitResponse: {type: Queue}
---
apiVersion: flowcontrol.apiserver.k8s.io/v1
kind: FlowSchema
metadata: {name: batch-jobs}
spec:
  priorityLevelConfiguration: {name: batch}
  distinguisherMethod: {type: ByNamespace}
  rules:
  - subjects: [{kind: Group, group: {name: batch-users}}]
    resourceRules: [{verbs: ["*"], apiGroups: ["batch"], resources: ["jobs"], namespaces: ["*"]}]
""")
    level = json.loads(vcluster.kubectl("get", "prioritylevelconfiguration", "batch", "-o", "json").stdout)
    assert level["spec"]["limited"] == {"nominalConcurrencyShares": 30, "lendablePercent": 0, "limitResponse": {
        "type": "Queue", "queuing": {"queues": 64, "handSize": 8, "queueLengthLimit": 50}}}
    fs = json.loads(vcluster.kubectl("get", "flowschema", "batch-jobs", "-o", "json").stdout)
    assert fs["spec"]["matchingPrecedence"] == 1000

    def missing_pl(want: str) -> None:
        row = vcluster.kubectl("get", "flowschema", "batch-jobs").stdout.splitlines()[1].split()
        assert row[-1] == want, row
    eventually(lambda: missing_pl("False"), timeout=60)
    vcluster.kubectl("delete", "prioritylevelconfiguration", "batch")
    eventually(lambda: missing_pl("True"), timeout=60)  # the level is gone: the schema dangles
    fs = json.loads(vcluster.kubectl("get", "flowschema", "batch-jobs", "-o", "json").stdout)
    cond = next(c for c in fs["status"]["conditions"] if c["type"] == "Dangling")
    assert cond["reason"] == "NotFound" and cond["message"] == (
        'This FlowSchema references the PriorityLevelConfiguration object named "batch" but there is no such object')
    vcluster.kubectl("delete", "flowschema", "batch-jobs")


@pytest.mark.parametrize(("manifest", "messages"), [
    ("""
apiVersion: flowcontrol.apiserver.k8s.io/v1
kind: PriorityLevelConfiguration
metadata: {name: bad}
spec: {type: Limited, limited: {limitResponse: {type: Queue, queuing: {queues: 4, handSize: 8}}}}
""", ['spec.limited.limitResponse.queuing.handSize: Invalid value: 8: should not be greater than queues (4)']),
    ("""
apiVersion: flowcontrol.apiserver.k8s.io/v1
kind: PriorityLevelConfiguration
metadata: {name: bad}
spec: {type: Limited, limited: {limitResponse: {type: Queue, queuing: {queues: 10000, handSize: 5000}}}}
""", ['spec.limited.limitResponse.queuing.handSize: Invalid value: 5000: required entropy bits of deckSize 10000 '
      'and handSize 5000 should not be greater than 60']),
    ("""
apiVersion: flowcontrol.apiserver.k8s.io/v1
kind: PriorityLevelConfiguration
metadata: {name: bad}
spec: {type: Limited, limited: {limitResponse: {type: Queue, queuing: {queues: 512, handSize: 8}}}}
""", ['spec.limited.limitResponse.queuing.handSize: Invalid value: 8: required entropy bits of deckSize 512 '
      'and handSize 8 should not be greater than 60']),
    ("""
apiVersion: flowcontrol.apiserver.k8s.io/v1
kind: PriorityLevelConfiguration
metadata: {name: not-exempt}
spec: {type: Exempt}
""", ["spec.type: Invalid value: \"Exempt\": type must be 'Exempt' if and only if name is 'exempt'"]),
    ("""
apiVersion: flowcontrol.apiserver.k8s.io/v1
kind: FlowSchema
metadata: {name: bad}
spec:
  priorityLevelConfiguration: {name: global-default}
  matchingPrecedence: 20000
  distinguisherMethod: {type: ByGroup}
  rules:
  - subjects: []
    resourceRules: [{verbs: [get], apiGroups: [""], resources: [pods]}]
""", ["spec.matchingPrecedence: Invalid value: 20000: must not be greater than 10000",
      'spec.distinguisherMethod.type: Unsupported value: "ByGroup"',
      "spec.rules[0].subjects: Required value: subjects must contain at least one value",
      "spec.rules[0].resourceRules[0].namespaces: Required value"]),
])
def test_invalid_objects_are_refused(vcluster: User, manifest: str, messages: list[str]) -> None:
    proc = vcluster.kubectl("create", "-f", "-", input=manifest, check=False)
    assert proc.returncode != 0
    for message in messages:
        assert message in proc.stderr, proc.stderr


def test_mandatory_objects_are_restored_and_never_lock_anyone_out(vcluster: User) -> None:
    """As kube-apiserver: an edit of a mandatory object is accepted, takes no effect, and the
    config producer writes the defined spec back (upstream's ensurer runs every minute; here
    on every configuration change). Pointing ``exempt`` at a 0-seat Reject level must not lock
    out system:masters."""
    vcluster.kubectl("patch", "prioritylevelconfiguration", "catch-all", "--type", "merge",
                     "-p", '{"spec":{"limited":{"nominalConcurrencyShares":50}}}')
    vcluster.kubectl("create", "-f", "-", input="""
apiVersion: flowcontrol.apiserver.k8s.io/v1
kind: PriorityLevelConfiguration
metadata: {name: nothing}
spec: {type: Limited, limited: {nominalConcurrencyShares: 0, lendablePercent: 0, limitResponse: {type: Reject}}}
""")
    vcluster.kubectl("patch", "flowschema", "exempt", "--type", "merge",
                     "-p", '{"spec":{"priorityLevelConfiguration":{"name":"nothing"}}}')
    for _ in range(5):  # the admin (system:masters) is still served, as are others
        vcluster.kubectl("get", "namespaces")

    def restored() -> None:
        pl = json.loads(vcluster.kubectl("get", "prioritylevelconfiguration", "catch-all", "-o", "json").stdout)
        assert pl["spec"]["limited"]["nominalConcurrencyShares"] == 5
        fs = json.loads(vcluster.kubectl("get", "flowschema", "exempt", "-o", "json").stdout)
        assert fs["spec"]["priorityLevelConfiguration"]["name"] == "exempt"
    eventually(restored, timeout=60, delay=1)
    vcluster.kubectl("delete", "flowschema", "catch-all")  # deleted: created anew

    def recreated() -> None:
        assert vcluster.kubectl("get", "flowschema", "catch-all", check=False).returncode == 0
    eventually(recreated, timeout=60, delay=1)
    vcluster.kubectl("delete", "prioritylevelconfiguration", "nothing")

