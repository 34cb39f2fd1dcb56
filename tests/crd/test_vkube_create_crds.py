"""Through ``vkube create`` and the real kubectl: two virtual clusters on one embedded host
serve two versions of one CRD group at once, and CEL rules are type-checked, cost-checked
and evaluated with Kubernetes' libraries."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.conftest import User, cleanup, make_user
from tests.crd.fixtures import crontab, crontab_crd


@pytest.fixture
def user(tmp_path: Path) -> Iterator[User]:
    u = make_user(tmp_path / "user")
    yield u
    cleanup(u)


def _context(user: User) -> str:
    return user.current_context()


def test_two_virtual_clusters_serve_two_versions_of_one_group(user: User) -> None:
    user.vkube("create", "alpha", timeout=180)
    ctx_a = _context(user)
    user.vkube("create", "beta", timeout=180)
    ctx_b = _context(user)
    assert ctx_a != ctx_b
    assert user.describe("alpha")["host"]["kubeconfig"] == user.describe("beta")["host"]["kubeconfig"]  # one host
    v2 = crontab_crd()
    v2["spec"]["versions"][0]["name"] = "v2"
    v2["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["owner"] = {
        "type": "string"}
    for ctx, crd in ((ctx_a, crontab_crd()), (ctx_b, v2)):
        user.kubectl("--context", ctx, "apply", "-f", "-", input=json.dumps(crd))
        user.kubectl("--context", ctx, "wait", "--for=condition=Established",
                     "crd/crontabs.stable.example.com", "--timeout=60s")
    res_a = user.kubectl("--context", ctx_a, "api-resources", "--api-group=stable.example.com").stdout
    res_b = user.kubectl("--context", ctx_b, "api-resources", "--api-group=stable.example.com").stdout
    assert "stable.example.com/v1 " in res_a and "stable.example.com/v2" not in res_a
    assert "stable.example.com/v2 " in res_b and "stable.example.com/v1 " not in res_b
    # each cluster takes objects of its own version only, with its own schema
    user.kubectl("--context", ctx_a, "create", "-f", "-", input=json.dumps(crontab("a1")))
    b1 = crontab("b1", owner="team-b")
    b1["apiVersion"] = "stable.example.com/v2"
    user.kubectl("--context", ctx_b, "create", "-f", "-", input=json.dumps(b1))
    wrong = user.kubectl("--context", ctx_a, "create", "-f", "-", input=json.dumps(b1), check=False)
    assert wrong.returncode != 0 and 'no matches for kind "CronTab" in version "stable.example.com/v2"' in wrong.stderr
    got_b = json.loads(user.kubectl("--context", ctx_b, "get", "ct", "b1", "-o", "json").stdout)
    assert got_b["apiVersion"] == "stable.example.com/v2" and got_b["spec"]["owner"] == "team-b"
    names_a = json.loads(user.kubectl("--context", ctx_a, "get", "ct", "-o", "json").stdout)["items"]
    assert [i["metadata"]["name"] for i in names_a] == ["a1"]
    # deleting the CRD in one cluster leaves the other's untouched
    user.kubectl("--context", ctx_a, "delete", "crd", "crontabs.stable.example.com")
    assert "crontabs" in user.kubectl("--context", ctx_b, "get", "crd").stdout
    assert json.loads(user.kubectl("--context", ctx_b, "get", "ct", "b1", "-o", "json").stdout)["spec"]["owner"] == "team-b"


def _with_rules(*rules: dict, **props: dict) -> dict:
    crd = crontab_crd()
    spec = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    spec["properties"].update(props)
    spec["x-kubernetes-validations"] = list(rules)
    return crd


def test_cel_rules_through_kubectl(user: User) -> None:
    user.vkube("create", "rules", timeout=180)
    prefix = "spec.versions[0].schema.openAPIV3Schema"
    undefined = _with_rules({"rule": "self.replica > 0"})
    out = user.kubectl("apply", "-f", "-", input=json.dumps(undefined), check=False)
    assert out.returncode != 0
    assert (f"{prefix}.properties[spec].x-kubernetes-validations[0].rule: Invalid value: \"self.replica > 0\": "
            "compilation failed: ERROR: <input>:1:5: undefined field 'replica'") in out.stderr
    costly = _with_rules({"rule": "self.names.all(a, self.names.all(b, a.contains(b)))"},
                         names={"type": "array", "items": {"type": "string"}})
    out = user.kubectl("apply", "-f", "-", input=json.dumps(costly), check=False)
    assert "estimated rule cost exceeds budget by factor of more than 100x" in out.stderr
    assert "crontabs" not in user.kubectl("api-resources", "--api-group=stable.example.com").stdout
    good = _with_rules(
        {"rule": "quantity(self.memory).isLessThan(quantity('4Gi'))", "message": "at most 4Gi"},
        {"rule": "self.?endpoint.orValue('https://x.example.com/').startsWith('https://') && "
                 "isURL(self.?endpoint.orValue('/'))", "message": "endpoint must be an https URL"},
        {"rule": "self.allowed.all(c, isCIDR(c) && cidr(c).prefixLength() >= 8)",
         "messageExpression": "'bad CIDR in ' + self.allowed.join(', ')"},
        memory={"type": "string", "maxLength": 16}, endpoint={"type": "string", "maxLength": 256},
        allowed={"type": "array", "maxItems": 8, "items": {"type": "string", "maxLength": 43}})
    user.kubectl("apply", "-f", "-", input=json.dumps(good))
    user.kubectl("wait", "--for=condition=Established", "crd/crontabs.stable.example.com", "--timeout=60s")
    ok = crontab("ok", memory="2Gi", allowed=["10.0.0.0/8"])
    user.kubectl("create", "-f", "-", input=json.dumps(ok))
    bad = crontab("bad", memory="8Gi", endpoint="http://plain.example.com/", allowed=["10.0.0.0/8", "nope"])
    out = user.kubectl("create", "-f", "-", input=json.dumps(bad), check=False)
    assert out.returncode != 0
    for text in ('spec: Invalid value: "object": at most 4Gi', 'spec: Invalid value: "object": endpoint must be an https URL',
                 'spec: Invalid value: "object": bad CIDR in 10.0.0.0/8, nope'):
        assert text in out.stderr, out.stderr
