"""The issue's bad input, through kubectl: each refused with field paths in Kubernetes'
wording, and nothing half-registered remains."""

from __future__ import annotations

import copy
import json

import pytest

from tests.crd.fixtures import crontab, crontab_crd
from tests.crd.helpers import install, run


def _schema(crd: dict) -> dict:
    return crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def _bad_plural() -> dict:
    crd = crontab_crd()
    crd["spec"]["names"]["plural"] = "CronTabs"
    crd["metadata"]["name"] = "CronTabs.stable.example.com"
    return crd


def _bad_group() -> dict:
    crd = crontab_crd(group="example")
    crd["metadata"]["name"] = "crontabs.example"
    return crd


def _bad_name() -> dict:
    crd = crontab_crd()
    crd["metadata"]["name"] = "tabs.stable.example.com"
    return crd


def _non_structural() -> dict:
    crd = crontab_crd()
    _schema(crd)["properties"]["spec"]["properties"]["image"] = {"maxLength": 3}
    return crd


def _bad_cel() -> dict:
    crd = crontab_crd()
    _schema(crd)["properties"]["spec"]["x-kubernetes-validations"] = [{"rule": "self.replicas <"}]
    return crd


def _costly_cel() -> dict:
    crd = crontab_crd()
    _schema(crd)["properties"]["spec"]["properties"]["tags"]["x-kubernetes-validations"] = [
        {"rule": "self.all(x, self.all(y, x.matches(y)))"}]
    return crd


def _two_storage() -> dict:
    crd = crontab_crd()
    second = copy.deepcopy(crd["spec"]["versions"][0])
    second["name"] = "v2"
    crd["spec"]["versions"].append(second)
    return crd


@pytest.mark.parametrize("make, expected", [
    (_bad_plural, 'spec.names.plural: Invalid value: "CronTabs": a DNS-1035 label must consist of lower case'),
    (_bad_group, 'spec.group: Invalid value: "example": should be a domain with at least one dot'),
    (_bad_name, 'metadata.name: Invalid value: "tabs.stable.example.com": must be spec.names.plural+"."+spec.group'),
    (_non_structural, "spec.versions[0].schema.openAPIV3Schema.properties[spec].properties[image].type: "
                      "Required value: must not be empty for specified object fields"),
    (_bad_cel, 'spec.versions[0].schema.openAPIV3Schema.properties[spec].x-kubernetes-validations[0].rule: '
               'Invalid value: "self.replicas <": compilation failed: ERROR: <input>:1:15: Syntax error'),
    (_costly_cel, "x-kubernetes-validations[0].rule: Forbidden: estimated rule cost exceeds budget"),
    (_two_storage, "spec.versions: Invalid value: [\"v1\",\"v2\"]: must have exactly one version marked as storage version"),
])
async def test_bad_crds_are_refused_and_nothing_is_served(control_plane, make, expected):
    crd = make()
    out = await run(control_plane, "apply", "-f", "-", input=json.dumps(crd), check=False)
    assert out.returncode != 0
    assert "is invalid" in out.stderr and expected in out.stderr, out.stderr
    assert crd["metadata"]["name"] not in (await run(control_plane, "get", "crd")).stdout
    assert "crontab" not in (await run(control_plane, "api-resources")).stdout.lower()


async def test_bad_custom_resources_are_refused_with_field_paths(control_plane):
    cp = control_plane
    await install(cp, crontab_crd())
    out = await run(cp, "create", "-f", "-", input=json.dumps(crontab("a", replicas=20, cronSpec="bad")), check=False)
    assert 'The CronTab "a" is invalid' in out.stderr
    assert "spec.replicas: Invalid value: 20: spec.replicas in body should be less than or equal to 10" in out.stderr
    assert "spec.cronSpec: Invalid value: \"bad\": spec.cronSpec in body should match" in out.stderr
    out = await run(cp, "create", "-f", "-", input=json.dumps(crontab("a", replicas=7)), check=False)
    assert 'spec.replicas: Invalid value: "object": replicas must be no greater than maxReplicas' in out.stderr
    # the transition rule: mode is immutable once set
    await run(cp, "create", "-f", "-", input=json.dumps(crontab("b", mode="fast")))
    out = await run(cp, "patch", "ct", "b", "--type=merge", "-p", '{"spec":{"mode":"slow"}}', check=False)
    assert 'spec.mode: Invalid value: "string": mode is immutable' in out.stderr
    # unknown fields: kubectl asks for strict field validation
    obj = crontab("c")
    obj["spec"]["bogus"] = 1
    out = await run(cp, "create", "-f", "-", input=json.dumps(obj), check=False)
    assert 'unknown field "spec.bogus"' in out.stderr
    # with validation off, the unknown field is pruned
    await run(cp, "create", "--validate=false", "-f", "-", input=json.dumps(obj))
    stored = json.loads((await run(cp, "get", "ct", "c", "-o", "json")).stdout)
    assert "bogus" not in stored["spec"]
    # an unserved version
    v2 = crontab("d")
    v2["apiVersion"] = "stable.example.com/v2"
    out = await run(cp, "create", "-f", "-", input=json.dumps(v2), check=False)
    assert 'no matches for kind "CronTab" in version "stable.example.com/v2"' in out.stderr
