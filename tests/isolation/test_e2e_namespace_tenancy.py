"""``vkube create NAME --tenancy namespace``: a host namespace with guard rails and a tenant
admin credential; list/describe/connect/pause/resume/delete as for a virtual cluster."""

from __future__ import annotations

import json

import yaml

from tests.conftest import kubectl

from .conftest import cleanup, eventually, make_user

DEPLOY = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: c, image: nginx}]}
"""


INGRESS = """
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: %s, annotations: %s}
spec:
  rules:
  - host: %s
    http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}]}
"""


def _ingress(name: str, host: str, annotations: str) -> str:
    return INGRESS % (name, annotations, host)


def test_namespace_tenant_lifecycle(shared_host, tmp_path):
    u = make_user(tmp_path / "u")
    try:
        u.vkube("create", "team", "--tenancy", "namespace", "--cpu", "4", "--memory", "8Gi",
                "--host-kubeconfig", str(shared_host), "--connect=false")
        ns = json.loads(kubectl(shared_host, "get", "namespace", "team", "-o", "json").stdout)
        labels = ns["metadata"]["labels"]
        assert labels["pod-security.kubernetes.io/enforce"] == "baseline"
        assert labels["vkube.io/tenancy"] == "namespace"
        quota = json.loads(kubectl(shared_host, "get", "resourcequota", "-n", "team",
                                   "vkube-tenant-quota", "-o", "json").stdout)
        hard = quota["spec"]["hard"]
        assert (hard["limits.cpu"], hard["requests.cpu"]) == ("4", "2")
        assert (hard["limits.memory"], hard["requests.memory"]) == ("8Gi", "4Gi")
        assert hard["count/pods"] == "20" and hard["services.nodeports"] == "0"
        lr = json.loads(kubectl(shared_host, "get", "limitrange", "-n", "team",
                                "vkube-tenant-limits", "-o", "json").stdout)
        assert lr["spec"]["limits"][0]["default"] == {"cpu": "1", "memory": "512Mi",
                                                      "ephemeral-storage": "8Gi"}
        np = json.loads(kubectl(shared_host, "get", "networkpolicy", "-n", "team",
                                "vkube-tenant-egress", "-o", "json").stdout)
        assert np["spec"]["egress"][-1]["to"][0]["ipBlock"]["except"] == [
            "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "127.0.0.0/8",
            "169.254.0.0/16", "168.63.129.16/32", "192.0.0.192/32"]
        rb = json.loads(kubectl(shared_host, "get", "rolebinding", "-n", "team",
                                "vkube-tenant-admin", "-o", "json").stdout)
        assert rb["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io",
                                 "kind": "Role", "name": "vkube-tenant"}  # admin minus NP writes
        assert [{k: v for k, v in s.items() if v} for s in rb["subjects"]] == [
            {"kind": "ServiceAccount", "name": "vkube-tenant", "namespace": "team"}]
        kubectl(shared_host, "get", "serviceaccount", "-n", "team", "vkube-tenant")
        # no ClusterRoleBinding anywhere names the tenant: its rights stop at its namespace
        crbs = json.loads(kubectl(shared_host, "get", "clusterrolebindings", "-o",
                                  "json").stdout)["items"]
        assert not any(s.get("name") == "vkube-tenant" for c in crbs
                       for s in c.get("subjects") or [])

        listed = u.list()
        assert listed["team"]["tenancy"] == "namespace" and listed["team"]["status"] == "Running"
        assert "namespace" in u.vkube("list").stdout.splitlines()[1].split()
        described = u.describe("team")
        assert described["tenancy"] == described["mode"] == "namespace" and not described["pid"]
        text = u.vkube("describe", "team").stdout  # no control plane of its own to name
        plane = next(line for line in text.splitlines() if line.startswith("Control plane:"))
        assert plane.split(":", 1)[1].strip().startswith("none — a namespace of the host"), text
        # nothing runs here for it: no data directory or log that does not exist is named
        assert "Data dir:" not in text and "Log:" not in text, text
        assert described["dataDir"] == described["log"] == ""
        out = u.vkube("create", "team", "--upgrade", check=False)  # no control plane to upgrade
        assert out.returncode == 1 and "'team' is a namespace tenant: --upgrade does not " \
            "apply" in out.stderr and len(out.stderr.strip().splitlines()) == 1, out.stderr

        kc = tmp_path / "team.yaml"
        kc.write_text(u.vkube("connect", "team", "--print").stdout)
        doc = yaml.safe_load(kc.read_text())
        assert doc["contexts"][0]["context"]["namespace"] == "team"
        token = doc["users"][0]["user"]["token"]
        assert token.count(".") == 2  # a signed ServiceAccount token (TokenRequest)
        kubectl(kc, "apply", "-f", "-", input=DEPLOY)  # lands in its namespace, unqualified
        assert kubectl(shared_host, "get", "deployment", "-n", "team", "web", "-o",
                       "jsonpath={.spec.replicas}").stdout == "2"

        # its Ingresses meet the virtual clusters' Ingress rules on the embedded host: the
        # shared controller's allow-list, and no host another namespace's Ingress claims
        kubectl(shared_host, "apply", "-n", "default", "-f", "-",
                input=_ingress("owners", "owner.team-lc.example.com", "{}"))
        snippet = kubectl(kc, "apply", "-f", "-", check=False, input=_ingress(
            "snip", "snip.team-lc.example.com",
            "{nginx.ingress.kubernetes.io/server-snippet: 'location / {}'}"))
        assert snippet.returncode != 0 and "is forbidden: metadata.annotations[nginx.ingress." \
            "kubernetes.io/server-snippet]: configuration snippets are not allowed" in snippet.stderr, snippet
        taken = kubectl(kc, "apply", "-f", "-", check=False,
                        input=_ingress("steal", "owner.team-lc.example.com", "{}"))
        assert taken.returncode != 0 and 'host "owner.team-lc.example.com" is already claimed' \
            in taken.stderr, taken
        kubectl(kc, "apply", "-f", "-", input=_ingress("mine", "team-lc.example.com", "{}"))
        kubectl(shared_host, "delete", "ingress", "-n", "default", "owners")

        u.vkube("pause", "team")
        assert kubectl(shared_host, "get", "deployment", "-n", "team", "web", "-o",
                       "jsonpath={.spec.replicas}").stdout == "0"
        assert u.list()["team"]["status"] == "Paused"
        assert u.vkube("connect", "team", check=False).returncode != 0
        u.vkube("resume", "team")
        assert kubectl(shared_host, "get", "deployment", "-n", "team", "web", "-o",
                       "jsonpath={.spec.replicas}").stdout == "2"

        u.vkube("connect", "team")
        assert u.current_context() == "vkube_team"
        u.vkube("delete", "team")
        assert u.current_context() == "previous"
        gone = kubectl(shared_host, "get", "namespace", "team", "-o",
                       "jsonpath={.status.phase}", check=False)
        assert gone.returncode != 0 or gone.stdout == "Terminating"
        assert "team" not in u.list()
    finally:
        cleanup(u)


BARE = """
apiVersion: v1
kind: Pod
metadata: {name: %s, labels: {app: %s}}
spec: {containers: [{name: c, image: nginx, ports: [{containerPort: 80}]}]}
"""


def _phases(host, ns: str) -> dict[str, str]:
    items = json.loads(kubectl(host, "get", "pods", "-n", ns, "-o", "json").stdout)["items"]
    return {p["metadata"]["name"]: p["status"].get("phase", "") for p in items
            if not p["metadata"].get("deletionTimestamp")}


def test_namespace_tenant_denies_ingress_from_others_and_pause_stops_bare_pods(shared_host,
                                                                              tmp_path):
    u = make_user(tmp_path / "u")
    try:
        u.vkube("create", "crew", "--tenancy", "namespace", "--host-kubeconfig", str(shared_host),
                "--connect=false")
        kc = tmp_path / "crew.yaml"
        kc.write_text(u.vkube("connect", "crew", "--print").stdout)
        for name in ("web", "client"):  # bare pods, applied by the tenant
            kubectl(kc, "apply", "-f", "-", input=BARE % (name, name))
        kubectl(shared_host, "create", "namespace", "crew-outsider")
        kubectl(shared_host, "apply", "-n", "crew-outsider", "-f", "-",
                input=BARE % ("intruder", "intruder"))
        eventually(lambda: _assert_running(shared_host, "crew", {"web", "client"}), timeout=120)
        eventually(lambda: _assert_running(shared_host, "crew-outsider", {"intruder"}),
                   timeout=120)
        ip = kubectl(shared_host, "get", "pod", "web", "-n", "crew", "-o",
                     "jsonpath={.status.podIP}").stdout
        ok = kubectl(kc, "exec", "client", "--", "nc", "-z", "-w", "2", ip, "80", check=False)
        assert ok.returncode == 0, ok.stderr
        refused = kubectl(shared_host, "exec", "-n", "crew-outsider", "intruder", "--", "nc",
                          "-z", "-w", "2", ip, "80", check=False)
        assert refused.returncode != 0 and "vkube-tenant-ingress" in refused.stderr, refused

        # pause: nothing of the tenant runs, and nothing new starts, until resume
        out = u.vkube("pause", "crew", timeout=180)
        assert "2 bare pods saved and stopped" in out.stdout, out.stdout
        eventually(lambda: _assert_running(shared_host, "crew", set(), phases=False), timeout=120)
        again = kubectl(kc, "apply", "-f", "-", input=BARE % ("late", "late"), check=False)
        assert again.returncode != 0 and "exceeded quota" in again.stderr, again.stderr
        assert u.list()["crew"]["status"] == "Paused"

        out = u.vkube("resume", "crew", timeout=180)
        assert "2 bare pods recreated" in out.stdout, out.stdout
        eventually(lambda: _assert_running(shared_host, "crew", {"web", "client"}), timeout=120)
        quota = json.loads(kubectl(shared_host, "get", "resourcequota", "-n", "crew",
                                   "vkube-tenant-quota", "-o", "json").stdout)
        assert quota["spec"]["hard"]["count/pods"] == "20"
        assert "vkube.io/paused-count-pods" not in (quota["metadata"].get("annotations") or {})
    finally:
        kubectl(shared_host, "delete", "namespace", "crew-outsider", "--wait=false", check=False)
        cleanup(u)


def _assert_running(host, ns: str, names: set[str], phases: bool = True) -> None:
    got = _phases(host, ns)
    assert set(got) == names, got
    if phases:
        assert set(got.values()) <= {"Running"}, got
