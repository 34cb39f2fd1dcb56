"""Every name length works on the embedded host, and a failed ``create`` leaves nothing.

The syncer's confined host credential once was a client certificate whose CN is
``system:serviceaccount:vkube-NAME:vkube-NAME``: X.509 caps a CN at 64 characters, so any name
of 15 characters or more crashed ``vkube create`` after it had applied host RBAC that
``vkube delete`` then never found. Driven through the CLI as a user runs it: a 52-character
(the longest) dedicated ``--isolate`` cluster and a 52-character shared one in a 63-character
host namespace run pods; a ``create`` the host refuses half-way removes what it applied; a
``delete`` of a name neither side knows removes the RBAC an earlier version's crash left."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli.conftest import User, eventually
from tests.conftest import kubectl

LONG = "long-" + "a" * 42 + "-name"  # 52: NAME_MAX
SHARED = "shared-" + "b" * 40 + "-name"
HOSTNS = "n" * 63  # a DNS label's longest
VKUBE_KINDS = "clusterrole,clusterrolebinding,role,rolebinding,serviceaccount,secret"


def _host(u: User) -> Path:
    return u.home / "host" / "kubeconfig"


def _ours(u: User, selector: str = "app.kubernetes.io/name=vkube") -> list[str]:
    out = kubectl(_host(u), "get", VKUBE_KINDS, "-A", "-l", selector, "-o", "json").stdout
    return sorted(f"{o['kind']}/{o['metadata'].get('namespace', '')}/{o['metadata']['name']}"
                  for o in json.loads(out)["items"])


def _host_pod_running(u: User, ns: str) -> None:
    pods = json.loads(kubectl(_host(u), "get", "pods", "-n", ns, "-o", "json").stdout)["items"]
    assert [p["status"].get("phase") for p in pods] == ["Running"], pods


@pytest.mark.timeout(600)
def test_longest_names_run_and_failures_leave_nothing_on_the_host(user: User):
    assert len(LONG) == len(SHARED) == 52
    for create in ((LONG, "--isolate"), (SHARED, "--shared", "-n", HOSTNS)):
        user.vkube("create", *create, timeout=180)  # and connects to it
        assert user.current_context() == f"vkube_{create[0]}"
        assert "namespace/kube-system" in user.kubectl("get", "ns", "-o", "name").stdout
        user.kubectl("run", "web", "--image=nginx")
    # the syncer is its ServiceAccount, whatever the length of its name
    confined = user.home / "clusters" / LONG / "host-syncer.kubeconfig"
    who = kubectl(confined, "auth", "whoami", "-o", "jsonpath={.status.userInfo.username}").stdout
    assert who == f"system:serviceaccount:vkube-{LONG}:vkube-{LONG}"
    forbidden = kubectl(confined, "get", "pods", "-n", "default", check=False)
    assert forbidden.returncode != 0 and "forbidden" in forbidden.stderr.lower()
    eventually(lambda: _host_pod_running(user, f"vkube-{LONG}"), timeout=180)
    eventually(lambda: _host_pod_running(user, HOSTNS), timeout=180)

    # a create the host refuses after its namespace was claimed: its RBAC goes with the claim
    kubectl(_host(user), "create", "ns", "pre")
    kubectl(_host(user), "create", "clusterrolebinding", "vkube-pre.fails", "--clusterrole=view",
            "--user=nobody")  # not ours: applying this cluster's binding over it is refused
    failed = user.vkube("create", "fails", "-n", "pre", "--isolate", "--connect=false",
                        check=False, timeout=180)
    assert failed.returncode != 0 and "Traceback" not in failed.stderr, failed.stderr
    assert "cannot change roleRef" in failed.stderr, failed.stderr
    assert _ours(user, "vkube.io/vcluster=fails") == []
    assert "fails" not in user.list()
    kubectl(_host(user), "get", "ns", "pre")  # it existed before: kept

    # what an earlier version's crash left (labelled, no namespace claimed): delete finds it
    ghost = "ghost"
    labels = "app.kubernetes.io/name=vkube,vkube.io/vcluster=ghost,app.kubernetes.io/instance=ghost"
    cr = "vkube-vkube-ghost.ghost"
    for args in (("create", "clusterrole", cr, "--verb=get", "--resource=nodes"),
                 ("create", "clusterrolebinding", cr, f"--clusterrole={cr}",
                  "--serviceaccount=vkube-ghost:vkube-ghost"),
                 ("create", "role", cr, "-n", "default", "--verb=get", "--resource=endpoints"),
                 ("create", "rolebinding", cr, "-n", "default", f"--role={cr}",
                  "--serviceaccount=vkube-ghost:vkube-ghost")):
        kubectl(_host(user), *args)
        kind = args[1]
        ns = ("-n", "default") if kind in ("role", "rolebinding") else ()
        kubectl(_host(user), "label", kind, cr, *ns, *labels.split(","))
    assert len(_ours(user, "vkube.io/vcluster=ghost")) == 4
    gone = user.vkube("delete", ghost)
    assert cr in gone.stdout, gone.stdout
    assert _ours(user, "vkube.io/vcluster=ghost") == []
    again = user.vkube("delete", ghost, check=False)
    assert again.returncode != 0 and "not found" in again.stderr, again.stderr

    for name in (LONG, SHARED):
        user.vkube("delete", name, timeout=180)
    assert _ours(user) == []
