"""Aggregated APIs through ``vkube create`` and the real kubectl (issue 14): an APIService
pointing at a small HTTPS server makes its resources appear in ``kubectl api-resources`` and
answer ``kubectl get`` with the caller's identity in the front-proxy headers; an APIService
whose service is missing or whose certificate does not match its caBundle is Available=False
with kube-aggregator's reasons and the client gets Kubernetes' 503; built-in group-versions are
listed as Local APIServices."""

from __future__ import annotations

import json
import socket

import pytest

from tests.aggregator.wardle import GROUP, VERSION, Wardle
from tests.cli.conftest import User, cleanup, eventually, make_user


def apiservice(name: str, group: str, version: str, service: str, port: int, ca_bundle: str = "", **extra) -> str:
    spec = {"group": group, "version": version, "groupPriorityMinimum": 1000, "versionPriority": 15,
            "service": {"namespace": "default", "name": service, "port": port}, **extra}
    if ca_bundle:
        spec["caBundle"] = ca_bundle
    return json.dumps({"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
                       "metadata": {"name": name}, "spec": spec})


def external_service(name: str, port: int) -> str:
    return json.dumps({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "default"},
                       "spec": {"type": "ExternalName", "externalName": "127.0.0.1",
                                "ports": [{"name": "https", "port": port}]}})


def condition(u: User, name: str) -> dict:
    obj = json.loads(u.kubectl("get", "apiservice", name, "-o", "json").stdout)
    return next((c for c in obj.get("status", {}).get("conditions", []) if c["type"] == "Available"), {})


def wait_condition(u: User, name: str, status: str, reason: str) -> dict:
    def check() -> dict:
        cond = condition(u, name)
        assert (cond.get("status"), cond.get("reason")) == (status, reason), cond
        return cond
    return eventually(check, timeout=60, delay=0.5)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def cluster(shared_host, tmp_path):
    """``vkube create`` whose owner publishes ``127.0.0.1:u.wardle_port`` (a virtual cluster
    reaches no other address of this machine); the tests' Wardle listens there."""
    u = make_user(tmp_path / "u")
    u.wardle_port = free_port()  # type: ignore[attr-defined]
    values = tmp_path / "values.yaml"
    values.write_text(f"sync:\n  pods:\n    portForwardTargets: ['127.0.0.1:{u.wardle_port}']\n")  # type: ignore[attr-defined]
    try:
        u.vkube("create", "agg", "--host-kubeconfig", str(shared_host), "-f", str(values))
        yield u
    finally:
        cleanup(u)


def test_local_apiservices_for_builtin_groups(cluster: User):
    def listed() -> dict[str, list[str]]:
        rows = {line.split()[0]: line.split()[1:] for line in
                cluster.kubectl("get", "apiservices", "--no-headers").stdout.splitlines()}
        for name in ("v1.", "v1.apps", "v2.autoscaling", "v1.autoscaling", "v1beta1.metrics.k8s.io",
                     "v1.apiregistration.k8s.io"):
            assert name in rows, sorted(rows)
            assert rows[name][:2] == ["Local", "True"], (name, rows[name])
        return rows
    eventually(listed, timeout=60, delay=0.5)
    assert condition(cluster, "v1.apps")["message"] == "Local APIServices are always available"


def test_aggregated_api_is_proxied_and_discovered(cluster: User):
    u = cluster
    with Wardle(port=u.wardle_port) as wardle:
        u.kubectl("apply", "-f", "-", input=external_service("wardle", wardle.port))
        u.kubectl("apply", "-f", "-", input=apiservice(f"{VERSION}.{GROUP}", GROUP, VERSION, "wardle",
                                                       wardle.port, wardle.ca_bundle))
        cond = wait_condition(u, f"{VERSION}.{GROUP}", "True", "Passed")
        assert cond["message"] == "all checks passed"

        def discovered() -> None:
            out = u.kubectl("api-resources", "--api-group", GROUP, "--no-headers").stdout
            assert out.split()[:5] == ["flunders", "fl", f"{GROUP}/{VERSION}", "true", "Flunder"], out
        eventually(discovered, timeout=30, delay=0.5)
        groups = json.loads(u.kubectl("get", "--raw", "/apis").stdout)["groups"]
        assert {"name": GROUP, "versions": [{"groupVersion": f"{GROUP}/{VERSION}", "version": VERSION}],
                "preferredVersion": {"groupVersion": f"{GROUP}/{VERSION}", "version": VERSION}} in groups

        table = u.kubectl("get", "flunders").stdout
        assert table.splitlines()[1].split()[0] == "one"
        one = json.loads(u.kubectl("get", "fl", "one", "-o", "json").stdout)
        me = u.kubectl("auth", "whoami", "-o", "jsonpath={.status.userInfo.username}").stdout
        assert one["metadata"]["annotations"]["seen-user"] == me
        proxied = [r for r in wardle.requests if r["path"].endswith("/flunders/one")]
        assert proxied and proxied[-1]["user"] == me and proxied[-1]["authorization"] is None
        assert "system:masters" in proxied[-1]["groups"] or "system:authenticated" in proxied[-1]["groups"]
        checks = [r for r in wardle.requests if r["path"] == f"/apis/{GROUP}/{VERSION}"]
        assert checks and checks[0]["user"] == "system:kube-aggregator"

        # its OpenAPI is proxied too: kubectl explain reads it
        explained = u.kubectl("explain", "flunders").stdout
        assert "A Flunder is what the wardle server serves." in explained

        missing = u.kubectl("get", "fl", "nope", check=False)
        assert missing.returncode != 0
        assert f'flunders.{GROUP} "nope" not found' in missing.stderr

        u.kubectl("delete", "apiservice", f"{VERSION}.{GROUP}")
        gone = u.kubectl("get", "--raw", f"/apis/{GROUP}/{VERSION}", check=False)
        assert gone.returncode != 0 and "NotFound" in gone.stderr


def test_missing_service_and_wrong_ca_are_unavailable(cluster: User):
    u = cluster
    u.kubectl("apply", "-f", "-", input=apiservice("v1beta1.missing.example.com", "missing.example.com", "v1beta1",
                                                   "nothere", 443))
    cond = wait_condition(u, "v1beta1.missing.example.com", "False", "ServiceNotFound")
    assert cond["message"] == 'service/nothere in "default" is not present'
    row = u.kubectl("get", "apiservice", "v1beta1.missing.example.com", "--no-headers").stdout.split()
    assert row[1:4] == ["default/nothere", "False", "(ServiceNotFound)"]
    raw = u.kubectl("get", "--raw", "/apis/missing.example.com/v1beta1/namespaces/default/things", check=False)
    assert raw.returncode != 0
    assert "the server is currently unable to handle the request" in raw.stderr
    # discovery lists the group (legacy form) or marks it stale (aggregated form): kubectl goes on
    resources = u.kubectl("api-resources", check=False)
    assert "deployments" in resources.stdout and "missing.example.com" not in resources.stdout
    groups = json.loads(u.kubectl("get", "--raw", "/apis").stdout)["groups"]
    assert "missing.example.com" in [g["name"] for g in groups]

    with Wardle(service="wrongca", port=u.wardle_port) as wardle:
        other = Wardle(service="wrongca")  # another CA: the server's certificate does not match
        u.kubectl("apply", "-f", "-", input=external_service("wrongca", wardle.port))
        u.kubectl("apply", "-f", "-", input=apiservice(f"{VERSION}.{GROUP}", GROUP, VERSION, "wrongca", wardle.port,
                                                       other.ca_bundle))
        cond = wait_condition(u, f"{VERSION}.{GROUP}", "False", "FailedDiscoveryCheck")
        assert cond["message"].startswith(f"failing or missing response from https://127.0.0.1:{wardle.port}/apis/{GROUP}/{VERSION}")
        assert not [r for r in wardle.requests if r["path"].endswith("flunders")]
        other.server.server_close()

        # the right CA makes it available; insecureSkipTLSVerify also does (without a caBundle)
        u.kubectl("apply", "-f", "-", input=apiservice(f"{VERSION}.{GROUP}", GROUP, VERSION, "wrongca", wardle.port,
                                                       insecureSkipTLSVerify=True))
        wait_condition(u, f"{VERSION}.{GROUP}", "True", "Passed")


def test_bad_apiservices_are_refused_with_the_field(cluster: User):
    u = cluster
    wrong_name = json.loads(apiservice("foo", "x.example.com", "v1", "svc", 443))
    out = u.kubectl("apply", "-f", "-", input=json.dumps(wrong_name), check=False)
    assert out.returncode != 0
    assert 'metadata.name: Invalid value: "foo": must be `spec.version+"."+spec.group`: "v1.x.example.com"' in out.stderr
    both = apiservice("v1.y.example.com", "y.example.com", "v1", "svc", 443, ca_bundle="Zm9v", insecureSkipTLSVerify=True)
    out = u.kubectl("apply", "-f", "-", input=both, check=False)
    assert "spec.insecureSkipTLSVerify: Invalid value: true: may not be true if caBundle is present" in out.stderr
    bad_priority = json.loads(apiservice("v1.z.example.com", "z.example.com", "v1", "svc", 443))
    bad_priority["spec"]["groupPriorityMinimum"] = 0
    out = u.kubectl("apply", "-f", "-", input=json.dumps(bad_priority), check=False)
    assert "spec.groupPriorityMinimum: Invalid value: 0: must be positive and less than 20000" in out.stderr
    names = u.kubectl("get", "apiservices", "-o", "name").stdout
    assert "example.com" not in names
