"""``vkube create -f values.yaml`` with ``sync.toHost.customResources`` against the embedded
host: `vkube describe` says when the host lacks the CRD, and once it is installed there the
tenant's custom resources appear on the host translated."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.conftest import User, cleanup, eventually, make_user
from tests.conftest import kubectl
from tests.crd.fixtures import crontab, crontab_crd

VALUES = "sync:\n  toHost:\n    customResources:\n      CronTab.stable.example.com: {enabled: true}\n"


@pytest.fixture
def user(tmp_path: Path) -> Iterator[User]:
    u = make_user(tmp_path / "user")
    yield u
    cleanup(u)


def test_vkube_create_syncs_custom_resources_to_the_host(user: User, tmp_path: Path) -> None:
    values = tmp_path / "values.yaml"
    values.write_text(VALUES)
    user.vkube("create", "tenant", "-f", str(values), timeout=180)
    user.kubectl("apply", "-f", "-", input=json.dumps(crontab_crd()))
    user.kubectl("wait", "--for=condition=Established", "crd/crontabs.stable.example.com", "--timeout=60s")
    user.kubectl("create", "-f", "-", input=json.dumps(crontab("nightly", replicas=2)))
    doc = json.loads(user.vkube("describe", "tenant", "-o", "json").stdout)
    assert doc["customResources"] == {"toHost": {
        "CronTab.stable.example.com": "CRD missing on the host: install it there to sync"}}
    assert "CRD missing on the host" in user.vkube("describe", "tenant").stdout

    def warned() -> None:
        events = user.kubectl("get", "events", "-n", "default", "-o", "json").stdout
        assert "is not served by the host cluster" in events

    eventually(warned, timeout=60, delay=0.5)
    host_kc = user.home / "host" / "kubeconfig"
    kubectl(host_kc, "apply", "-f", "-", input=json.dumps(crontab_crd()))
    kubectl(host_kc, "wait", "--for=condition=Established", "crd/crontabs.stable.example.com", "--timeout=60s")

    def on_host() -> dict:
        out = kubectl(host_kc, "get", "crontabs", "-n", "vkube-tenant", "-o", "json").stdout
        items = json.loads(out)["items"]
        assert [i["metadata"]["name"] for i in items] == ["nightly-x-default-x-tenant"]
        return items[0]

    hobj = eventually(on_host, timeout=60, delay=0.5)
    assert hobj["spec"]["replicas"] == 2
    doc = json.loads(user.vkube("describe", "tenant", "-o", "json").stdout)
    assert doc["customResources"] == {"toHost": {"CronTab.stable.example.com": "served by the host"}}

    # the kind dropped from the values: the host copies vkube made go (the host's own stay);
    # a kind turned off whose copies stay is named, with why
    own = crontab("hosts-own", namespace="vkube-tenant", replicas=1)
    kubectl(host_kc, "create", "-f", "-", input=json.dumps(own))
    off = tmp_path / "off.yaml"
    off.write_text("sync: {endpoints: {enabled: false}}\n")
    out = user.vkube("create", "tenant", "--upgrade", "-f", str(off), timeout=180).stdout
    assert "removed their host copies — CronTab.stable.example.com (1)" in out, out
    assert "sync turned off for endpoints: their host copies stay" in out, out
    items = json.loads(kubectl(host_kc, "get", "crontabs", "-n", "vkube-tenant", "-o", "json").stdout)
    assert [i["metadata"]["name"] for i in items["items"]] == ["hosts-own"]


REFERENCES = """
sync:
  toHost:
    customResources:
      CronTab.stable.example.com:
        enabled: true
        patches:
        - {path: spec.secretName, reference: {kind: Secret}}
  fromHost:
    customResources:
      Schedule.ops.example.com:
        enabled: true
        mappings:
          byName: {"platform/*": "shared/*"}
"""


def _schedule_crd() -> dict:
    crd = crontab_crd()
    crd["metadata"]["name"] = "schedules.ops.example.com"
    crd["spec"]["group"] = "ops.example.com"
    crd["spec"]["names"] = {"plural": "schedules", "singular": "schedule", "kind": "Schedule"}
    return crd


def test_vkube_create_translates_references_and_maps_host_namespaces(user: User, tmp_path: Path) -> None:
    values = tmp_path / "values.yaml"
    values.write_text(REFERENCES)
    user.vkube("create", "refs", "-f", str(values), timeout=180)
    host_kc = user.home / "host" / "kubeconfig"
    with_secret = crontab_crd()
    with_secret["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"][
        "secretName"] = {"type": "string"}
    for kc in (user.kubeconfig, host_kc):
        kubectl(kc, "apply", "-f", "-", input=json.dumps(with_secret))
        kubectl(kc, "wait", "--for=condition=Established", "crd/crontabs.stable.example.com", "--timeout=60s")
    user.kubectl("create", "-f", "-", input=json.dumps(crontab("web", secretName="tls-web")))

    def on_host() -> dict:
        out = kubectl(host_kc, "get", "crontabs", "-n", "vkube-refs", "-o", "json").stdout
        items = json.loads(out)["items"]
        assert [i["metadata"]["name"] for i in items] == ["web-x-default-x-refs"]
        return items[0]

    assert eventually(on_host, timeout=60, delay=0.5)["spec"]["secretName"] == "tls-web-x-default-x-refs"
    # a namespaced host kind appears in the virtual namespace its mapping names
    kubectl(host_kc, "apply", "-f", "-", input=json.dumps(_schedule_crd()))
    kubectl(host_kc, "wait", "--for=condition=Established", "crd/schedules.ops.example.com", "--timeout=60s")
    kubectl(host_kc, "create", "namespace", "platform")
    backup = crontab("backup", namespace="platform", replicas=2)
    backup["apiVersion"], backup["kind"] = "ops.example.com/v1", "Schedule"
    kubectl(host_kc, "create", "-f", "-", input=json.dumps(backup))

    def shown() -> dict:
        return json.loads(user.kubectl("get", "schedules", "backup", "-n", "shared", "-o", "json").stdout)

    shown_obj = eventually(shown, timeout=60, delay=0.5)
    assert shown_obj["spec"]["replicas"] == 2
    assert shown_obj["metadata"]["labels"]["vkube.io/synced-from-host"] == "true"
