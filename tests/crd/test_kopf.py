"""Issue 13's acceptance: a real operator framework (kopf, from PyPI) runs unmodified against a
``vkube create`` cluster, driven through kubectl — create, update, delete of a custom resource
— next to `get` with printer columns, `explain`, `apply --server-side` and `wait`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.conftest import User, cleanup, eventually, make_user
from tests.crd.fixtures import crontab, crontab_crd

OPERATOR = Path(__file__).with_name("kopf_operator.py")


@pytest.fixture
def user(tmp_path: Path) -> Iterator[User]:
    u = make_user(tmp_path / "user")
    yield u
    cleanup(u)


def kopf_crd() -> dict:
    crd = crontab_crd()
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    # kopf keeps handler results and progress in status, as its documentation asks for
    schema["properties"]["status"]["x-kubernetes-preserve-unknown-fields"] = True
    return crd


def test_kopf_operator_against_a_virtual_cluster(user: User, tmp_path: Path) -> None:
    user.vkube("create", "ops", timeout=180)
    user.kubectl("apply", "-f", "-", input=json.dumps(kopf_crd()))
    user.kubectl("wait", "--for=condition=Established", "crd/crontabs.stable.example.com", "--timeout=60s")
    log = (tmp_path / "kopf.log").open("w")
    env = {**os.environ, "KUBECONFIG": str(user.kubeconfig)}
    operator = subprocess.Popen([sys.executable, "-m", "kopf", "run", "--standalone", "--all-namespaces",
                                 str(OPERATOR)], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        user.kubectl("create", "-f", "-", input=json.dumps(crontab("nightly", replicas=2)))

        def configmap_made() -> dict:
            out = user.kubectl("get", "cm", "nightly-schedule", "-o", "json", check=False)
            assert out.returncode == 0, out.stderr
            return json.loads(out.stdout)

        cm = eventually(configmap_made, timeout=90, delay=0.5)
        assert cm["data"] == {"cronSpec": "* * * * */5", "replicas": "2"}
        assert cm["metadata"]["ownerReferences"][0]["kind"] == "CronTab"

        def status_written() -> dict:
            obj = json.loads(user.kubectl("get", "ct", "nightly", "-o", "json").stdout)
            assert (obj.get("status") or {}).get("created") == {"configMap": "nightly-schedule", "phase": "Scheduled"}
            return obj

        obj = eventually(status_written, timeout=90, delay=0.5)
        assert "stable.example.com/kopf-cleanup" in obj["metadata"]["finalizers"]
        # update through kubectl: the operator follows the spec
        user.kubectl("patch", "ct", "nightly", "--type=merge", "-p", '{"spec":{"replicas":4}}')
        eventually(lambda: _assert_eq(configmap_made()["data"]["replicas"], "4"), timeout=90, delay=0.5)
        # what a user sees: printer columns, explain, server-side apply, scale
        table = user.kubectl("get", "crontabs").stdout.splitlines()
        assert table[0].split() == ["NAME", "SPEC", "REPLICAS", "READY", "AGE"]
        assert table[1].split()[0] == "nightly" and table[1].split()[6] == "4"
        assert "The schedule, in cron format." in user.kubectl("explain", "crontab.spec.cronSpec").stdout
        applied = crontab("weekly", cronSpec="0 0 * * 0")
        assert "serverside-applied" in user.kubectl("apply", "--server-side", "-f", "-",
                                                    input=json.dumps(applied)).stdout
        eventually(lambda: user.kubectl("get", "cm", "weekly-schedule"), timeout=90, delay=0.5)
        # delete through kubectl: the finalizer holds the object until the operator cleaned up
        user.kubectl("delete", "ct", "nightly", "--timeout=90s")
        assert user.kubectl("get", "cm", "nightly-schedule", check=False).returncode != 0
        assert user.kubectl("get", "ct", "nightly", check=False).returncode != 0
    finally:
        operator.terminate()
        try:
            operator.wait(30)
        except subprocess.TimeoutExpired:
            operator.kill()
            operator.wait()
        log.close()
    text = (tmp_path / "kopf.log").read_text()
    for handler in ("created", "updated/spec", "deleted"):
        assert f"Handler '{handler}' succeeded" in text, text
    assert "Traceback" not in text, text


def _assert_eq(a: object, b: object) -> None:
    assert a == b, f"{a!r} != {b!r}"
