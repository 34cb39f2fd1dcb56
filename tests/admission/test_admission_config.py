"""--admission-control-config-file: PodSecurity defaults for unlabelled namespaces and
exemptions, through the real kubectl."""

from __future__ import annotations

import asyncio

import pytest
import yaml

from tests.conftest import RunningControlPlane, kubectl
from vkube.apiserver.admission.config import AdmissionConfigError, load
from vkube.apiserver.server import ControlPlane

PRIVILEGED = """
apiVersion: v1
kind: Pod
metadata: {name: priv}
spec:
  containers: [{name: c, image: nginx, securityContext: {privileged: true}}]
"""


def write(path, doc) -> str:
    path.write_text(yaml.safe_dump(doc))
    return str(path)


def admission_doc(ps: dict) -> dict:
    return {"apiVersion": "apiserver.config.k8s.io/v1", "kind": "AdmissionConfiguration",
            "plugins": [{"name": "PodSecurity", "configuration": {
                "apiVersion": "pod-security.admission.config.k8s.io/v1",
                "kind": "PodSecurityConfiguration", **ps}}]}


async def test_defaults_and_exemptions(tmp_path):
    cfg = write(tmp_path / "adm.yaml", admission_doc({
        "defaults": {"enforce": "baseline", "enforce-version": "latest", "warn": "restricted"},
        "exemptions": {"namespaces": ["free"], "usernames": [], "runtimeClasses": ["kata"]}}))
    cp = ControlPlane(data_dir=tmp_path / "cp", admission_config=cfg)
    await cp.start()
    rcp = RunningControlPlane(cp, tmp_path / "cp" / "kubeconfig")

    async def kc(*args: str, **kw):
        return await asyncio.to_thread(kubectl, rcp.kubeconfig, *args, **kw)
    try:
        out = await kc("apply", "-f", "-", input=PRIVILEGED, check=False)
        assert ('pods "priv" is forbidden: violates PodSecurity "baseline:latest": privileged '
                '(container "c" must not set securityContext.privileged=true)') in out.stderr
        await kc("create", "namespace", "free")
        out = await kc("apply", "-n", "free", "-f", "-", input=PRIVILEGED)
        assert "pod/priv created" in out.stdout
        kata = PRIVILEGED.replace("spec:\n", "spec:\n  runtimeClassName: kata\n")
        # RuntimeClass admission refuses a pod naming a class that does not exist
        await kc("create", "-f", "-", input="{apiVersion: node.k8s.io/v1, kind: RuntimeClass, "
                                            "metadata: {name: kata}, handler: kata}")
        out = await kc("apply", "-f", "-", input=kata)
        assert "pod/priv created" in out.stdout
        # a namespace may still loosen its own policy by label
        await kc("create", "namespace", "loose")
        await kc("label", "namespace", "loose", "pod-security.kubernetes.io/enforce=privileged",
                 "pod-security.kubernetes.io/warn=privileged")
        out = await kc("apply", "-n", "loose", "-f", "-", input=PRIVILEGED)
        assert "pod/priv created" in out.stdout and "Warning" not in out.stderr
    finally:
        await cp.stop()


@pytest.mark.parametrize("doc, message", [
    ({"kind": "Nope"}, "kind: must be AdmissionConfiguration"),
    ({"kind": "AdmissionConfiguration", "plugins": [{"name": "EventRateLimit", "configuration": {}}]},
     'plugins[0].name: configuration of "EventRateLimit" is not supported'),
    (admission_doc({"defaults": {"enforce": "strict"}}),
     'plugins[0].configuration.defaults[enforce]: Invalid value: "strict"'),
    (admission_doc({"defaults": {"enforce-level": "baseline"}}),
     'plugins[0].configuration.defaults: Unsupported value: "enforce-level"'),
])
def test_bad_admission_configs(tmp_path, doc, message):
    with pytest.raises(AdmissionConfigError) as exc:
        load(write(tmp_path / "a.yaml", doc))
    assert message in str(exc.value)


def test_plugin_configuration_from_a_path(tmp_path):
    write(tmp_path / "ps.yaml", {"kind": "PodSecurityConfiguration", "defaults": {"enforce": "restricted"}})
    got = load(write(tmp_path / "a.yaml", {"kind": "AdmissionConfiguration",
                                           "plugins": [{"name": "PodSecurity", "path": "ps.yaml"}]}))
    assert str(got["PodSecurity"].psa.defaults.enforce) == "restricted:latest"
