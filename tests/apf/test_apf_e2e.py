"""API Priority and Fairness through the user's entry point: ``vkube serve`` with
``--max-requests-inflight``/``--max-mutating-requests-inflight``, the pinned kubectl and the
official Python client.

One server for the whole story (one start-up is the expensive part). Requests are kept
executing by a validating webhook that answers only when the test says so, so "a level is
full" is a fact the test sets up, not a race it hopes to win."""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import kubectl
from tests.webhooks.server import WebhookServer

FS, PL = "X-Kubernetes-PF-FlowSchema-UID", "X-Kubernetes-PF-PriorityLevel-UID"
TOO_MANY = "Too many requests, please try again later.\n"
DEADLINE = 90.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait(what: str, pred: Any, timeout: float = DEADLINE) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = pred()
        if got:
            return got
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


class Served:
    def __init__(self, data: Path, port: int) -> None:
        self.data, self.port = data, port
        self.kubeconfig = data / "kubeconfig"
        self.url = f"https://127.0.0.1:{port}"
        kc = yaml.safe_load(self.kubeconfig.read_text())
        self.ca = data / "ca.crt"
        self.ca.write_bytes(base64.b64decode(kc["clusters"][0]["cluster"]["certificate-authority-data"]))

    def kubectl(self, *args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
        return kubectl(self.kubeconfig, *args, **kw)

    def uid(self, resource: str, name: str) -> str:
        return self.kubectl("get", resource, name, "-o", "jsonpath={.metadata.uid}").stdout

    def admin_get(self, path: str) -> str:
        from kubernetes import config

        if not hasattr(self, "_admin"):
            self._admin = config.new_client_from_config(config_file=str(self.kubeconfig))
        resp = self._admin.call_api(*self._admin.param_serialize("GET", path, auth_settings=["BearerToken"]))
        assert resp.status == 200, resp.status
        return resp.read().decode()

    def api(self, token: str) -> Any:
        """The official client as a bearer of ``token``, with urllib3's own 429 retries off (so
        the test sees the answer the server gave)."""
        from kubernetes import client

        cfg = client.Configuration()
        cfg.host, cfg.ssl_ca_cert = self.url, str(self.ca)
        cfg.api_key = {"authorization": f"Bearer {token}"}
        cfg.retries = False
        return client.ApiClient(cfg)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    tmp = tmp_path_factory.mktemp("apf")
    port = _free_port()
    env = {**os.environ, "VKUBE_HOME": str(tmp / "home")}
    proc = subprocess.Popen([sys.executable, "-m", "vkube", "serve", "--data-dir", str(tmp / "d"),
                             "--port", str(port), "--no-controllers",
                             "--max-requests-inflight", "100", "--max-mutating-requests-inflight", "100"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _wait("vkube serve's kubeconfig", lambda: (tmp / "d" / "kubeconfig").exists() or proc.poll() is not None,
              timeout=120)
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        yield Served(tmp / "d", port)
    finally:
        proc.terminate()
        proc.wait(30)


def _call(api: Any, method: str, path: str, body: Any = None) -> tuple[int, dict[str, str], str]:
    """One request through the official client's ApiClient: (status, headers, body text).
    ``timeout=4m`` gives a queued request a minute in its queue (a quarter of its deadline)."""
    from kubernetes.client.rest import ApiException

    try:
        req = api.param_serialize(method, path, query_params=[("timeout", "4m")], body=body,
                                  header_params={"Accept": "application/json", "Content-Type": "application/json"},
                                  auth_settings=["BearerToken"])
        raw = api.call_api(*req)
        text = raw.read().decode()
        return raw.status, dict(raw.getheaders()), text
    except ApiException as exc:
        body_text = exc.body.decode() if isinstance(exc.body, bytes) else (exc.body or "")
        return exc.status, dict(exc.headers or {}), body_text


def _configmap(name: str, hold: bool = False) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if hold:
        meta["labels"] = {"hold": "yes"}
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta}


SETUP = """
apiVersion: flowcontrol.apiserver.k8s.io/v1
kind: PriorityLevelConfiguration
metadata: {name: tiny}
spec:
  type: Limited
  limited:
    nominalConcurrencyShares: 1
    lendablePercent: 0
    borrowingLimitPercent: 0
    limitResponse: {type: Reject}
---
apiVersion: flowcontrol.apiserver.k8s.io/v1
kind: PriorityLevelConfiguration
metadata: {name: queued}
spec:
  type: Limited
  limited:
    nominalConcurrencyShares: 1
    lendablePercent: 0
    borrowingLimitPercent: 0
    limitResponse: {type: Queue, queuing: {queues: 1, handSize: 1, queueLengthLimit: 3}}
---
apiVersion: flowcontrol.apiserver.k8s.io/v1
kind: FlowSchema
metadata: {name: bots}
spec:
  priorityLevelConfiguration: {name: tiny}
  matchingPrecedence: 100
  distinguisherMethod: {type: ByUser}
  rules:
  - subjects: [{kind: ServiceAccount, serviceAccount: {namespace: apf, name: bot}}]
    resourceRules: [{verbs: ["*"], apiGroups: ["*"], resources: ["*"], namespaces: ["*"], clusterScope: true}]
---
apiVersion: flowcontrol.apiserver.k8s.io/v1
kind: FlowSchema
metadata: {name: bursts}
spec:
  priorityLevelConfiguration: {name: queued}
  matchingPrecedence: 101
  rules:
  - subjects: [{kind: ServiceAccount, serviceAccount: {namespace: apf, name: "*"}}]
    resourceRules: [{verbs: ["*"], apiGroups: [""], resources: ["configmaps"], namespaces: ["apf"]}]
"""


def test_priority_and_fairness_end_to_end(served: Served) -> None:
    # every classified answer names its schema and level; the admin (system:masters) is exempt
    verbose = served.kubectl("get", "namespaces", "--v=8").stderr
    exempt_fs, exempt_pl = served.uid("flowschema", "exempt"), served.uid("prioritylevelconfiguration", "exempt")
    assert f"X-Kubernetes-Pf-Flowschema-Uid: {exempt_fs}" in verbose, verbose[-3000:]
    assert f"X-Kubernetes-Pf-Prioritylevel-Uid: {exempt_pl}" in verbose

    served.kubectl("create", "namespace", "apf")
    for sa in ("bot", "burst"):
        served.kubectl("create", "serviceaccount", sa, "-n", "apf")
        served.kubectl("create", "rolebinding", f"{sa}-edit", "--clusterrole=edit", f"--serviceaccount=apf:{sa}",
                       "-n", "apf")
    bot = served.api(served.kubectl("create", "token", "bot", "-n", "apf").stdout.strip())
    burst = served.api(served.kubectl("create", "token", "burst", "-n", "apf").stdout.strip())
    served.kubectl("apply", "-f", "-", input=SETUP)
    uids = {n: served.uid("prioritylevelconfiguration", n) for n in ("tiny", "queued", "catch-all")}
    fs_uids = {n: served.uid("flowschema", n) for n in ("bots", "bursts", "service-accounts")}
    cms = "/api/v1/namespaces/apf/configmaps"

    # the FlowSchemas route the service accounts to their levels (the configuration is watched)
    _wait("bot routed to tiny", lambda: _call(bot, "GET", cms)[1].get(PL) == uids["tiny"])
    status, headers, _ = _call(bot, "GET", cms)
    assert status == 200 and headers[FS] == fs_uids["bots"]
    status, headers, _ = _call(burst, "GET", cms)
    assert status == 200 and (headers[FS], headers[PL]) == (fs_uids["bursts"], uids["queued"])
    # burst reads outside apf fall to the suggested service-accounts schema
    status, headers, _ = _call(burst, "GET", "/api/v1/namespaces/default/configmaps")
    assert status == 403 and headers[FS] == fs_uids["service-accounts"], headers  # classified, then RBAC

    # a watch is classified (its stream carries the headers) but holds tiny's one seat only
    # until it is set up: the bot's next request is served while the watch stays open
    bot_token = served.kubectl("create", "token", "bot", "-n", "apf").stdout.strip()
    watcher = served.api(bot_token)  # its own connection pool: the stream stays open meanwhile
    watch = watcher.call_api(*watcher.param_serialize("GET", cms, query_params=[("watch", "1")],
                                                      header_params={"Accept": "application/json"},
                                                      auth_settings=["BearerToken"]))
    try:
        assert watch.status == 200 and dict(watch.getheaders())[PL] == uids["tiny"]
        assert _call(bot, "GET", cms)[0] == 200
    finally:
        watch.response.close()
        watcher.close()

    with WebhookServer() as hooks:
        served.kubectl("apply", "-f", "-", input=json.dumps({
            "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
            "metadata": {"name": "hold"},
            "webhooks": [{"name": "hold.apf.test", "admissionReviewVersions": ["v1"], "sideEffects": "None",
                          "timeoutSeconds": 30, "failurePolicy": "Fail",
                          "objectSelector": {"matchLabels": {"hold": "yes"}},
                          "clientConfig": {"url": hooks.url + "/hold", "caBundle": hooks.ca_bundle},
                          "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"],
                                     "resources": ["configmaps"]}]}]}))
        results: dict[str, tuple[int, dict[str, str], str]] = {}

        def run(key: str, api: Any, method: str, path: str, body: Any = None) -> threading.Thread:
            t = threading.Thread(target=lambda: results.__setitem__(key, _call(api, method, path, body)), daemon=True)
            t.start()
            return t

        def held() -> int:
            return hooks.paths().count("/hold")

        # tiny's one seat is taken by a create the webhook holds; the next bot request is refused
        # with upstream's 429 while the exempt admin goes on
        workers = [run("bot-held", bot, "POST", cms, _configmap("held-by-bot", hold=True))]
        _wait("the bot's create held by the webhook", lambda: held() == 1)
        status, headers, text = _call(bot, "GET", cms)
        assert status == 429 and text == TOO_MANY, (status, text)
        assert headers["Retry-After"] == "1" and headers["Content-Type"] == "text/plain; charset=utf-8"
        assert (headers[FS], headers[PL]) == (fs_uids["bots"], uids["tiny"])
        assert "held-by-bot" not in served.kubectl("get", "configmaps", "-n", "apf").stdout
        hooks.release.set()  # (a webhook may hold a request 30 s at most: one hold at a time)
        workers.pop().join(DEADLINE)
        assert results["bot-held"][0] == 201, results
        hooks.release.clear()

        # queued's one seat is taken too; a burst of three waits in its queue (in order, no
        # 429), a fourth finds the queue full
        workers.append(run("burst-held", burst, "POST", cms, _configmap("held-by-burst", hold=True)))
        _wait("the burst's create held by the webhook", lambda: held() == 2)
        workers = workers[-1:]
        for i in range(3):
            workers.append(run(f"b{i}", burst, "POST", cms, _configmap(f"b{i}")))
            _wait(f"b{i} queued", lambda i=i: _waiting(served, "queued") == i + 1)
        status, headers, text = _call(burst, "POST", cms, _configmap("b3"))
        assert status == 429 and text == TOO_MANY and headers[PL] == uids["queued"]
        assert not {"b0", "b1", "b2"} & results.keys(), results  # all still waiting
        # dump_requests (upstream's layout): the three waiting in one queue, then the one executing
        dump = served.kubectl("get", "--raw", "/debug/api_priority_and_fairness/dump_requests"
                              "?includeRequestDetails=1").stdout.splitlines()
        assert [c.strip() for c in dump[0].split(",")] == [
            "PriorityLevelName", "FlowSchemaName", "QueueIndex", "RequestIndexInQueue", "FlowDistingsher",
            "ArriveTime", "InitialSeats", "FinalSeats", "AdditionalLatency", "StartTime", "UserName", "Verb",
            "APIPath", "Namespace", "Name", "APIVersion", "Resource", "SubResource"]
        rows = [[c.strip() for c in line.split(",")] for line in dump[1:] if line.startswith("queued,")]
        assert [r[3] for r in rows] == ["0", "1", "2", "-1"], dump
        assert all(r[1] == "bursts" and r[10] == "system:serviceaccount:apf:burst" and r[11] == "create"
                   and r[12] == cms and r[13] == "apf" and r[15] == "v1" and r[16] == "configmaps" for r in rows)
        assert len({r[2] for r in rows[:3]}) == 1 and rows[0][9] == "0001-01-01T00:00:00Z" != rows[3][9]

        hooks.release.set()
        for t in workers:
            t.join(DEADLINE)
    assert {k: v[0] for k, v in results.items()} == {
        "bot-held": 201, "burst-held": 201, "b0": 201, "b1": 201, "b2": 201}, results
    rvs = [int(json.loads(results[f"b{i}"][2])["metadata"]["resourceVersion"]) for i in range(3)]
    assert rvs == sorted(rvs), rvs  # served in the order they queued
    assert _call(bot, "GET", cms)[0] == 200
    dump = served.kubectl("get", "--raw", "/debug/api_priority_and_fairness/dump_priority_levels").stdout
    row = next(line for line in dump.splitlines() if line.startswith("tiny,"))
    assert [c.strip() for c in row.split(",")][7] == "1"  # RejectedRequests
    metrics = served.admin_get("/metrics")
    assert 'apiserver_flowcontrol_rejected_requests_total{flow_schema="bots",priority_level="tiny",' \
           'reason="concurrency-limit"} 1.0' in metrics
    assert 'apiserver_flowcontrol_rejected_requests_total{flow_schema="bursts",priority_level="queued",' \
           'reason="queue-full"} 1.0' in metrics
    assert 'apiserver_flowcontrol_nominal_limit_seats{priority_level="tiny"} 1.0' in metrics
    assert 'apiserver_flowcontrol_dispatched_requests_total{flow_schema="exempt",priority_level="exempt"}' in metrics


def _waiting(served: Served, level: str) -> int:
    """The level's WaitingRequests from the debug dump, read as the admin through the official
    client (no kubectl process per poll: the held webhook call has 30 s at most)."""
    dump = served.admin_get("/debug/api_priority_and_fairness/dump_priority_levels")
    for line in dump.splitlines():
        cells = [c.strip() for c in line.split(",")]
        if cells[0] == level:
            return int(cells[4])
    return -1


@pytest.mark.parametrize("flags,message", [
    (("--max-requests-inflight", "-1"), "--max-requests-inflight can not be negative value"),
    (("--max-requests-inflight", "0", "--max-mutating-requests-inflight", "0"),
     "--max-requests-inflight + --max-mutating-requests-inflight must be positive"),
])
def test_serve_refuses_bad_seat_counts_in_one_line(tmp_path: Path, flags: tuple[str, ...], message: str) -> None:
    env = {**os.environ, "VKUBE_HOME": str(tmp_path / "home")}
    out = subprocess.run([sys.executable, "-m", "vkube", "serve", "--data-dir", str(tmp_path / "d"), *flags],
                         env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2, out.stderr
    assert message in out.stderr and len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert not (tmp_path / "d" / "state.db").exists()
