"""A tenant cannot reach another tenant's (or the host's) objects through the syncer's
translation: names that line up, and references in a pod spec, driven with the real kubectl."""

from __future__ import annotations

import asyncio
import base64
import json
import sys
from pathlib import Path

from vkube.client.resources import INGRESSES, NAMESPACES, PODS, SECRETS
from vkube.syncer.podrewrite import host_pod_name
from vkube.syncer.translate import Translator

from .conftest import HOST_NS, VC, Pair, eventually, getter

KUBECTL = str(Path(sys.executable).parent / "kubectl")
TR = Translator(VC, HOST_NS)


async def kubectl(kubeconfig: Path, *args: str, stdin: str = "") -> tuple[int, str]:
    """The pinned kubectl, without blocking the loop the control planes run on."""
    proc = await asyncio.create_subprocess_exec(
        KUBECTL, "--kubeconfig", str(kubeconfig), *args, stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(proc.communicate(stdin.encode()), 90)
    return proc.returncode or 0, out.decode()


def _sub(token_b64: str) -> str:
    payload = base64.b64decode(token_b64).decode().split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["sub"]


def _docs(*docs: dict) -> str:
    return "\n---\n".join(json.dumps(d) for d in docs)


def _pod(ns: str, sa: str) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": ns},
            "spec": {"serviceAccountName": sa, "containers": [{"name": "c", "image": "x"}]}}


async def test_service_accounts_whose_names_line_up_get_their_own_tokens(synced: Pair, planes):
    """``s`` in ``n-x-m`` and ``s-x-n`` in ``m`` once shared the host Secret
    ``s-x-n-x-m-x-VC-token``: the second pod ran with the first one's (cluster-admin) token."""
    vcp, _ = planes
    kubeconfig = vcp.data_dir / "kubeconfig"
    sas = [("n-x-m", "s"), ("m", "s-x-n")]
    docs = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}} for ns, _ in sas]
    docs += [{"apiVersion": "v1", "kind": "ServiceAccount",
              "metadata": {"name": sa, "namespace": ns}} for ns, sa in sas]
    rc, out = await kubectl(kubeconfig, "apply", "-f", "-", stdin=_docs(*docs))
    assert rc == 0, out
    rc, out = await kubectl(kubeconfig, "apply", "-f", "-",
                            stdin=_docs(*(_pod(ns, sa) for ns, sa in sas)))
    assert rc == 0, out
    h = synced.host
    seen = set()
    for ns, sa in sas:
        hpod = await eventually(getter(h, PODS, host_pod_name(TR, "p", ns)), attempts=600)
        names = [v["secret"]["secretName"] for v in hpod["spec"]["volumes"]
                 if (v.get("secret") or {}).get("secretName", "").endswith("-token")]
        assert names == [TR.token_secret_name(ns, sa)], hpod["spec"]["volumes"]
        seen.add(names[0])

        async def filled(name: str = names[0]) -> dict:
            sec = await h.get(SECRETS, name, namespace=HOST_NS)
            assert sec["data"]["token"], "token not filled yet"
            return sec
        sec = await eventually(filled, attempts=600)
        assert _sub(sec["data"]["token"]) == f"system:serviceaccount:{ns}:{sa}"
        assert base64.b64decode(sec["data"]["namespace"]).decode() == ns
    assert len(seen) == 2


async def test_volume_secret_refs_go_to_the_tenants_copies_host_access_is_refused(
        synced: Pair, planes):
    """A csi volume's nodePublishSecretRef once named any host Secret of the namespace (the
    syncer's own, other service accounts' tokens); an nfs volume was mounted by the node."""
    vcp, _ = planes
    kubeconfig = vcp.data_dir / "kubeconfig"
    victim = TR.token_secret_name("demo", "default")
    csi = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "csi", "namespace": "demo"},
           "spec": {"containers": [{"name": "c", "image": "x"}], "volumes": [
               {"name": "v", "csi": {"driver": "d.example.com",
                                     "nodePublishSecretRef": {"name": victim}}}]}}
    nfs = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "nfs", "namespace": "demo"},
           "spec": {"containers": [{"name": "c", "image": "x"}], "volumes": [
               {"name": "share", "nfs": {"server": "10.0.0.1", "path": "/exports"}}]}}
    priv = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "priv", "namespace": "demo"},
            "spec": {"containers": [{"name": "c", "image": "x", "securityContext": {
                "privileged": True, "capabilities": {"add": ["SYS_ADMIN"]}}}]}}
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": victim,
                                                                 "namespace": "demo"},
              "stringData": {"k": "tenant's own"}}
    rc, out = await kubectl(kubeconfig, "apply", "-f", "-", stdin=_docs(secret, csi, nfs, priv))
    assert rc == 0, out
    h = synced.host
    hpod = await eventually(getter(h, PODS, host_pod_name(TR, "csi", "demo")), attempts=600)
    ref = hpod["spec"]["volumes"][0]["csi"]["nodePublishSecretRef"]["name"]
    assert ref == TR.host_name(victim, "demo") != victim
    copy = await eventually(getter(h, SECRETS, ref), attempts=600)
    assert base64.b64decode(copy["data"]["k"]).decode() == "tenant's own"

    expect = {"nfs": "SyncRejected: host access is not allowed: volume 'share' uses nfs",
              "priv": 'SyncRejected: host access is not allowed (sync.pods.hostAccess: '
                      'reject): violates PodSecurity "baseline:latest": non-default '
                      'capabilities (container "c" must not include "SYS_ADMIN" in '
                      'securityContext.capabilities.add), privileged (container "c" must not '
                      'set securityContext.privileged=true)'}
    for name, message in expect.items():
        async def refused(name: str = name, message: str = message) -> None:
            rc, out = await kubectl(kubeconfig, "get", "pod", name, "-n", "demo", "-o",
                                    "jsonpath={.status.reason}: {.status.message}")
            assert rc == 0, out
            assert out.startswith(message), out
        await eventually(refused, attempts=100, delay=0.3)
        rc, out = await kubectl(kubeconfig, "get", "events", "-n", "demo",
                                "--field-selector", f"involvedObject.name={name}")
        assert message.split(": ", 1)[1][:60] in out, out
    host_pods = {p["metadata"]["name"] for p in (await h.list(PODS, namespace=HOST_NS))["items"]}
    assert not host_pods & {host_pod_name(TR, name, "demo") for name in expect}, host_pods


def _ingress(name: str, host: str, **annotations: str) -> dict:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": name, "namespace": "demo", "annotations": annotations},
            "spec": {"rules": [{"host": host, "http": {"paths": [{
                "path": "/", "pathType": "Prefix",
                "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}}


async def test_ingress_hosts_of_other_tenants_and_snippets_are_refused(synced: Pair, planes):
    """Another virtual cluster's synced Ingress (here: one in its host namespace) keeps its
    host name; configuration snippets never reach the host's ingress controller."""
    vcp, _ = planes
    kubeconfig = vcp.data_dir / "kubeconfig"
    h = synced.host
    await h.create(NAMESPACES, {"metadata": {"name": "vkube-other"}})
    await h.create(INGRESSES, {**_ingress("shop-x-team-x-other", "shop.example.com"),
                               "metadata": {"name": "shop-x-team-x-other",
                                            "namespace": "vkube-other",
                                            "labels": {"vkube.io/managed-by": "other"}}},
                   namespace="vkube-other")
    docs = [_ingress("steal", "shop.example.com"),
            _ingress("snip", "snip.example.com", **{
                "nginx.ingress.kubernetes.io/server-snippet": "location /x { return 200; }"}),
            _ingress("mine", "mine.example.com")]
    rc, out = await kubectl(kubeconfig, "apply", "-f", "-", stdin=_docs(*docs))
    assert rc == 0, out
    await eventually(getter(h, INGRESSES, TR.host_name("mine", "demo")), attempts=600)

    async def said(name: str, text: str) -> None:
        rc, out = await kubectl(kubeconfig, "get", "events", "-n", "demo", "--field-selector",
                                f"involvedObject.name={name}")
        assert text in out, out
    await eventually(lambda: said("steal", 'host "shop.example.com" is already claimed by '
                                  "another Ingress on the host"), attempts=100, delay=0.3)
    await eventually(lambda: said("snip", "metadata.annotations[nginx.ingress.kubernetes.io/"
                                  "server-snippet]: configuration snippets are not allowed"),
                     attempts=100, delay=0.3)
    rc, out = await kubectl(kubeconfig, "get", "events", "-n", "demo", "--field-selector",
                            "involvedObject.name=steal", "-o", "jsonpath={.items[*].reason}")
    assert "HostRefused" in out, out
    names = {i["metadata"]["name"] for i in (await h.list(INGRESSES, namespace=HOST_NS))["items"]}
    assert names == {TR.host_name("mine", "demo")}, names
