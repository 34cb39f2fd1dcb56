"""Values that would fail (or do nothing) once a cluster starts are refused up front by
`vkube render` and `vkube create`, one line naming the key, before anything runs or the host
is touched; numbers are quantities."""

from __future__ import annotations

import pytest

from tests.cli.conftest import make_user

BAD = [
    ("controlPlane: {store: 'mysql://x'}", "controlPlane.store: 'mysql://x'"),
    ("controlPlane: {podSecurity: {defaults: {enforce: strict}}}",
     "controlPlane.podSecurity.defaults.enforce: 'strict'"),
    ("isolation: {runtimeClassName: Not_Valid}", "isolation.runtimeClassName: 'Not_Valid'"),
    ("isolation: {nodeSelector: 'a=b=c'}", "isolation.nodeSelector: 'a=b=c'"),
    ("isolation: {enabled: true, podSecurityStandard: privileged}",
     "isolation.podSecurityStandard: 'privileged' cannot hold with isolation.enabled"),
    ("enableHA: true\nreplicas: 1\ncontrolPlane: {store: 'etcd://127.0.0.1:2379'}",
     "enableHA: true with replicas: 1 runs a single API server"),
]


@pytest.mark.parametrize("doc, where", BAD)
def test_render_and_create_refuse_naming_the_key(tmp_path, doc, where):
    u = make_user(tmp_path / "u")
    f = tmp_path / "values.yaml"
    f.write_text(doc + "\n")
    for cmd in (["render", "bad", "-f", str(f)], ["create", "bad", "-f", str(f)]):
        out = u.vkube(*cmd, check=False)
        assert out.returncode != 0, (cmd, out.stdout)
        assert where in out.stderr, (cmd, out.stderr)
        assert len(out.stderr.strip().splitlines()) == 1 and "Traceback" not in out.stderr
    # nothing was left running or written: no cluster, no embedded host started for it
    assert not (u.home / "clusters" / "bad").exists()
    assert not (u.home / "host").exists()


def test_namespace_tenant_refuses_what_it_would_ignore(tmp_path):
    u = make_user(tmp_path / "u")
    for doc, where in (("sync: {nodes: {enabled: true, syncAllNodes: true}}", "sync.nodes.enabled:"),
                       ("isolation: {runtimeClassName: gvisor}", "isolation.runtimeClassName:"),
                       ("isolation: {limitRange: {enabled: false}}",
                        "isolation.limitRange.enabled: a namespace tenant always has")):
        f = tmp_path / "values.yaml"
        f.write_text(doc + "\n")
        out = u.vkube("create", "team", "--tenancy", "namespace", "-f", str(f), check=False)
        assert out.returncode == 1 and where in out.stderr, (doc, out.stderr)
        assert len(out.stderr.strip().splitlines()) == 1
    assert not (u.home / "clusters" / "team").exists() and not (u.home / "host").exists()


def test_a_number_is_a_quantity(tmp_path):
    u = make_user(tmp_path / "u")
    f = tmp_path / "values.yaml"
    f.write_text("isolation: {enabled: true, resourceQuota: {cpu: 4, memory: 0.5}}\n")
    out = u.vkube("render", "q", "-f", str(f))
    assert out.returncode == 0 and "kind: StatefulSet" in out.stdout


def test_pod_security_privileged_is_refused_under_isolation(tmp_path):
    """Isolation always rejects host access: ``privileged`` would be accepted and then not
    enforced (the syncer keeps baseline's host-access checks), so every way to ask for it is
    refused, naming what was asked, before anything runs."""
    u = make_user(tmp_path / "u")
    f = tmp_path / "values.yaml"
    f.write_text("isolation: {podSecurityStandard: privileged}\n")
    full = tmp_path / "full.yaml"
    full.write_text("isolation: {enabled: true, podSecurityStandard: privileged}\n")
    for cmd, where in (
            (["create", "p", "--isolate", "--pod-security", "privileged"], "--pod-security privileged"),
            (["create", "p", "--tenancy", "namespace", "--pod-security", "privileged"],
             "--pod-security privileged"),
            (["create", "p", "--shared", "--isolate", "--pod-security", "privileged"],
             "--pod-security privileged"),
            (["create", "p", "--isolate", "-f", str(f)], "isolation.podSecurityStandard"),
            (["create", "p", "--tenancy", "namespace", "-f", str(f)],
             "isolation.podSecurityStandard"),
            (["render", "p", "-f", str(full)], "isolation.podSecurityStandard")):
        out = u.vkube(*cmd, check=False)
        assert out.returncode != 0 and where in out.stderr, (cmd, out.stderr)
        assert "baseline or restricted" in out.stderr, out.stderr
        assert len(out.stderr.strip().splitlines()) == 1 and "Traceback" not in out.stderr
    assert not (u.home / "clusters" / "p").exists() and not (u.home / "host").exists()
