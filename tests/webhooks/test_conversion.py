"""CRD conversion webhooks through ``vkube create`` and the real kubectl: ``v1`` (stored) keeps
``spec.size``, ``v2`` calls it ``spec.replicas``; the test's HTTPS server converts. Reads,
writes, lists and watches in the non-storage version go through the webhook; a webhook that is
down gives kube-apiserver's 500 and writes nothing."""

from __future__ import annotations

import json
import subprocess
import time

from tests.cli.conftest import User, eventually
from tests.conftest import KUBECTL
from tests.webhooks.server import WebhookServer


def crd(server: WebhookServer, *, url: str | None = None, ca: str | None = None) -> dict:
    def version(name: str, field: str, storage: bool) -> dict:
        return {"name": name, "served": True, "storage": storage, "schema": {"openAPIV3Schema": {
            "type": "object", "properties": {"spec": {"type": "object", "properties": {field: {"type": "integer"}}}}}}}
    return {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "widgets.example.com"},
            "spec": {"group": "example.com", "scope": "Namespaced",
                     "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
                     "versions": [version("v1", "size", True), version("v2", "replicas", False)],
                     "conversion": {"strategy": "Webhook", "webhook": {
                         "conversionReviewVersions": ["v1"],
                         "clientConfig": {"url": url or server.url + "/convert",
                                          "caBundle": server.ca_bundle if ca is None else ca}}}}}


def raw(u: User, path: str) -> dict:
    return json.loads(u.kubectl("get", "--raw", path).stdout)


def test_conversion_webhook_serves_every_version(vc: User, server: WebhookServer):
    vc.kubectl("apply", "-f", "-", input=json.dumps(crd(server)))
    eventually(lambda: vc.kubectl("get", "widgets.v2.example.com"), timeout=60, delay=0.5)
    base = "/apis/example.com/{}/namespaces/default/widgets"
    watch = subprocess.Popen([KUBECTL, "get", "--raw", base.format("v2") + "?watch=1"], env=vc.env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(1)  # the watch is open before the write
        vc.kubectl("apply", "-f", "-", input=json.dumps({
            "apiVersion": "example.com/v2", "kind": "Widget", "metadata": {"name": "w"}, "spec": {"replicas": 3}}))
        as_v1 = raw(vc, base.format("v1") + "/w")
        as_v2 = raw(vc, base.format("v2") + "/w")
        assert as_v1["apiVersion"] == "example.com/v1" and as_v1["spec"] == {"size": 3}
        assert as_v2["apiVersion"] == "example.com/v2" and as_v2["spec"] == {"replicas": 3}
        assert as_v1["metadata"]["uid"] == as_v2["metadata"]["uid"]
        listed = raw(vc, base.format("v2"))["items"]
        assert [i["spec"] for i in listed] == [{"replicas": 3}]
        line = watch.stdout.readline()  # type: ignore[union-attr]
        event = json.loads(line)
        assert event["type"] == "ADDED" and event["object"]["spec"] == {"replicas": 3}
        # what the webhook was asked: v2 → v1 on the write, v1 → v2 on the reads
        asked = [d["request"]["desiredAPIVersion"] for p, d in server.requests if p == "/convert"]
        assert "example.com/v1" in asked and "example.com/v2" in asked
        review = next(d for p, d in server.requests if p == "/convert")
        assert review["apiVersion"] == "apiextensions.k8s.io/v1" and review["kind"] == "ConversionReview"
    finally:
        watch.kill()
        watch.wait()

    # the webhook down: reads and writes in the other version fail with upstream's 500, nothing is written
    vc.kubectl("apply", "-f", "-", input=json.dumps(crd(server, url="https://127.0.0.1:1/convert")))

    def refused():
        out = vc.kubectl("get", "widgets.v2.example.com", "w", check=False)
        assert "conversion webhook for example.com/v1, Kind=Widget failed: " in out.stderr, out.stderr
    eventually(refused, timeout=60, delay=0.5)
    out = vc.kubectl("apply", "-f", "-", check=False, input=json.dumps({
        "apiVersion": "example.com/v2", "kind": "Widget", "metadata": {"name": "w2"}, "spec": {"replicas": 1}}))
    assert out.returncode == 1 and "Internal error occurred: conversion webhook for example.com/v2, Kind=Widget failed" in out.stderr
    assert raw(vc, base.format("v1"))["items"][0]["spec"] == {"size": 3}  # the storage version needs no webhook
    assert len(raw(vc, base.format("v1"))["items"]) == 1


def test_conversion_webhook_configuration_is_validated(vc: User, server: WebhookServer):
    bad = crd(server, url="http://127.0.0.1:1/convert")
    bad["metadata"]["name"] = "gadgets.example.com"
    bad["spec"]["names"] = {"plural": "gadgets", "singular": "gadget", "kind": "Gadget"}
    bad["spec"]["conversion"]["webhook"]["conversionReviewVersions"] = []
    out = vc.kubectl("apply", "-f", "-", input=json.dumps(bad), check=False)
    assert out.returncode == 1
    assert ("spec.conversion.webhookClientConfig.url: Invalid value: \"http://127.0.0.1:1/convert\": 'https' is the "
            "only allowed URL scheme") in out.stderr, out.stderr
    assert "spec.conversion.conversionReviewVersions: Required value: must include at least one of v1, v1beta1" in out.stderr
