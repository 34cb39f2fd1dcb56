"""On the embedded host ``vkube create`` hands the syncer a host credential confined to its
host namespace (a token of ServiceAccount ``vkube-NAME``, the Role/ClusterRole of
``vkube.syncer.hostrbac``): the syncer still runs pods, logs and isolation with it, and that
credential — read from the cluster's own directory — is Forbidden everywhere else."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from tests.cli.conftest import User, eventually
from tests.conftest import kubectl

NAME = "conf"
NS = f"vkube-{NAME}"
POD = """
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: default}
spec: {containers: [{name: nginx, image: nginx}]}
"""


def _host(u: User) -> Path:
    return u.home / "host" / "kubeconfig"


def _running(u: User) -> None:
    out = kubectl(_host(u), "get", "pods", "-n", NS, "-o", "json").stdout
    pods = json.loads(out)["items"]
    assert len(pods) == 1 and pods[0]["status"].get("phase") == "Running", pods
    assert u.kubectl("get", "pod", "web", "-o", "jsonpath={.status.phase}").stdout == "Running"


def test_syncer_runs_confined_and_its_credential_is_refused_elsewhere(user: User, tmp_path):
    values = tmp_path / "values.yaml"
    values.write_text("isolation: {enabled: true, podSecurityStandard: baseline}\n")
    user.vkube("create", NAME, "-f", str(values))
    cdir = user.home / "clusters" / NAME
    confined = cdir / "host-syncer.kubeconfig"
    assert confined.exists() and (confined.stat().st_mode & 0o777) == 0o600
    assert json.loads((cdir / "host.json").read_text())["kubeconfig"] == str(confined)
    doc = yaml.safe_load(confined.read_text())
    assert set(doc["users"][0]["user"]) == {"token"}  # its ServiceAccount's (no CN limit)

    # the main flows work under it: a pod runs, logs come back, isolation objects exist
    user.kubectl("apply", "-f", "-", input=POD)
    eventually(lambda: _running(user), timeout=120)
    assert "docker-entrypoint" in user.kubectl("logs", "web").stdout
    quota = kubectl(_host(user), "get", "resourcequota,limitrange,networkpolicy", "-n", NS,
                    "-o", "name").stdout
    assert "resourcequota/" in quota and "limitrange/" in quota
    assert "networkpolicy.networking.k8s.io/" in quota

    # its one grant outside its namespace: get default/endpoints/kubernetes (the host API's
    # addresses for the control-plane policy; the embedded host has none: NotFound, not 403)
    one = kubectl(confined, "get", "endpoints", "kubernetes", "-n", "default", check=False)
    assert "Forbidden" not in one.stderr, one.stderr

    def labelled() -> None:
        ns = json.loads(kubectl(_host(user), "get", "ns", NS, "-o", "json").stdout)
        assert ns["metadata"]["labels"].get("pod-security.kubernetes.io/enforce") == "baseline"
    eventually(labelled, timeout=60)

    # who it is, and what it may do
    who = kubectl(confined, "auth", "whoami", "-o", "json")
    assert json.loads(who.stdout)["status"]["userInfo"]["username"] == \
        f"system:serviceaccount:{NS}:vkube-{NAME}"
    assert kubectl(confined, "get", "pods", "-n", NS, "-o", "name").stdout.strip()
    assert kubectl(confined, "get", "nodes", "-o", "name").stdout.strip()  # read-only grant
    for args in (("get", "pods", "-n", "default"),
                 ("get", "endpoints", "-n", "default"),
                 ("get", "secrets", "-n", "kube-system"),
                 ("get", "pods", "--all-namespaces"),
                 ("get", "namespaces"),
                 ("get", "namespace", "default"),
                 ("get", "clusterroles"),
                 ("get", "storageclasses"),
                 ("get", "persistentvolumes"),
                 ("create", "namespace", "evil"),
                 ("delete", "node", "vkube-host-node-1"),
                 ("label", "namespace", "default", "x=y"),
                 ("create", "clusterrolebinding", "evil", "--clusterrole=cluster-admin",
                  f"--serviceaccount={NS}:vkube-{NAME}"),
                 ("create", "rolebinding", "evil", "-n", NS, "--clusterrole=cluster-admin",
                  f"--serviceaccount={NS}:vkube-{NAME}")):
        out = kubectl(confined, *args, check=False)
        assert out.returncode != 0 and "forbidden" in out.stderr.lower(), \
            (args, out.stdout, out.stderr)
    can = kubectl(confined, "auth", "can-i", "create", "pods", "-n", "default", check=False)
    assert can.stdout.strip() == "no"

    # pause/resume keep it confined; delete removes the cluster-scoped grant
    user.vkube("pause", NAME)
    user.vkube("resume", NAME)
    pids = user.describe(NAME)["process"]["pids"]
    cmdlines = [Path(f"/proc/{p}/cmdline").read_bytes().split(b"\0") for p in pids]
    assert any(str(confined).encode() in c and b"--host-kubeconfig" in c for c in cmdlines), \
        cmdlines  # the restarted process is handed the confined file, not the host admin's
    eventually(lambda: _running(user), timeout=120)
    cr = f"vkube-{NS}.{NAME}"
    assert kubectl(_host(user), "get", "clusterrole", cr, "-o", "name").stdout.strip()
    user.vkube("delete", NAME)
    for kind in ("clusterrole", "clusterrolebinding"):
        gone = kubectl(_host(user), "get", kind, cr, check=False)
        assert gone.returncode != 0 and "NotFound" in gone.stderr, gone.stdout
    default_roles = kubectl(_host(user), "get", "role,rolebinding", "-n", "default",
                            "-o", "name").stdout
    assert cr not in default_roles


def test_a_host_without_our_ca_gets_a_service_account_token(tmp_path):
    """A host vkube holds no CA of (here: another user's embedded host, reached through its
    kubeconfig like any cluster): the syncer gets the ServiceAccount's token from a
    service-account-token Secret, works with it, and is confined by the same Role."""
    from tests.cli.conftest import cleanup, make_user

    owner = make_user(tmp_path / "owner")
    owner.vkube("host", "start", timeout=120)
    tenant = make_user(tmp_path / "tenant")
    try:
        tenant.vkube("create", "tok", "--host-kubeconfig", str(_host(owner)))
        path = tenant.home / "clusters" / "tok" / "host-syncer.kubeconfig"
        doc = yaml.safe_load(path.read_text())
        assert doc["users"][0]["user"].get("token") and "client-certificate-data" not in doc["users"][0]["user"]
        assert path.stat().st_mode & 0o777 == 0o600
        who = kubectl(path, "auth", "whoami", "-o", "jsonpath={.status.userInfo.username}").stdout
        assert who == "system:serviceaccount:vkube-tok:vkube-tok"
        tenant.kubectl("run", "web", "--image=nginx")

        def running() -> None:
            out = kubectl(_host(owner), "get", "pods", "-n", "vkube-tok", "-o", "json").stdout
            assert [p["status"].get("phase") for p in json.loads(out)["items"]] == ["Running"]

        eventually(running, timeout=120)
        for args in (("get", "pods", "-n", "default"), ("get", "secrets", "-A"), ("create", "ns", "x")):
            out = kubectl(path, *args, check=False)
            assert out.returncode != 0 and "Forbidden" in out.stderr, (args, out.stderr)
        tenant.vkube("delete", "tok")
        assert not path.exists()
    finally:
        cleanup(tenant)
        cleanup(owner)
