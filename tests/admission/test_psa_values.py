"""PodSecurity admission configured through `vkube create -f values.yaml`
(``controlPlane.podSecurity``: kube-apiserver's PodSecurityConfiguration defaults and
exemptions), checked with the real kubectl."""

from __future__ import annotations

from pathlib import Path

from tests.cli.conftest import User, user  # noqa: F401 - the fixture

VALUES = """
controlPlane:
  podSecurity:
    defaults: {enforce: restricted, warn: restricted}
    exemptions: {namespaces: [legacy], runtimeClasses: [kata]}
"""

PRIVILEGED = """
apiVersion: v1
kind: Pod
metadata: {name: root}
spec:
  containers: [{name: c, image: nginx, securityContext: {privileged: true}}]
"""


def test_defaults_and_exemptions_from_values(user: User, tmp_path: Path):  # noqa: F811
    values = tmp_path / "values.yaml"
    values.write_text(VALUES)
    user.vkube("create", "psa", "-f", str(values))
    # a namespace without labels gets the configured default: restricted, with its words
    out = user.kubectl("apply", "-f", "-", input=PRIVILEGED, check=False)
    assert out.returncode != 0
    assert 'pods "root" is forbidden: violates PodSecurity "restricted:latest": privileged' in out.stderr, out.stderr
    # an exempt namespace is not checked
    user.kubectl("create", "namespace", "legacy")
    user.kubectl("apply", "-n", "legacy", "-f", "-", input=PRIVILEGED)
    # a namespace label still overrides the default
    user.kubectl("create", "namespace", "tools")
    user.kubectl("label", "namespace", "tools", "pod-security.kubernetes.io/enforce=privileged")
    user.kubectl("apply", "-n", "tools", "-f", "-", input=PRIVILEGED)


def test_bad_pod_security_values_are_refused_in_one_line(user: User, tmp_path: Path):  # noqa: F811
    values = tmp_path / "values.yaml"
    values.write_text("controlPlane: {podSecurity: {defaults: {enforce: strict}}}\n")
    out = user.vkube("create", "bad", "-f", str(values), check=False)
    assert out.returncode != 0
    # refused up front, by the values schema, naming the key and what it accepts
    assert ("controlPlane.podSecurity.defaults.enforce: 'strict': must be one of privileged, "
            "baseline, restricted") in out.stderr, out.stderr
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert "Traceback" not in out.stderr
    values.write_text("controlPlane: {podSecurity: {defaults: {enforcing: baseline}}}\n")
    out = user.vkube("create", "bad2", "-f", str(values), check=False)
    assert out.returncode != 0 and "controlPlane.podSecurity.defaults.enforcing: unknown key" in out.stderr, out.stderr
