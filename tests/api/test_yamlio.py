"""vkube.api.yamlio: libyaml speed, the same documents and text as PyYAML's safe functions."""

from __future__ import annotations

import base64
import io

import pytest
import yaml

from vkube.api import yamlio

KUBECONFIG = {
    "apiVersion": "v1", "kind": "Config", "preferences": {},
    "clusters": [{"name": f"vkube_c{i}", "cluster": {
        "server": f"https://127.0.0.1:{40000 + i}",
        "certificate-authority-data": base64.b64encode(bytes(range(256)) * 3).decode()}}
        for i in range(5)],
    "users": [{"name": "admin", "user": {"client-key-data": "LS0t" * 200, "token": "a:b c"}}],
    "contexts": [{"name": "vkube_c0", "context": {"cluster": "vkube_c0", "user": "admin",
                                                   "namespace": "default"}}],
    "current-context": "vkube_c0",
}
VALUES = {"sync": {"toHost": {"pods": {"enabled": True}}, "fromHost": {"nodes": {"selector": {"all": False}}}},
          "controlPlane": {"store": None, "podSecurity": {"enforce": "baseline"}},
          "empty": [], "text": "multi\nline\n", "quoted": "yes", "number": "0123", "unicode": "é ☃",
          "float": 1.5, "big": 2**40, "nested": [{"a": [1, {"b": None}]}, "x: y"]}


@pytest.mark.parametrize("doc", [KUBECONFIG, VALUES, {}, []], ids=["kubeconfig", "values", "empty-map", "empty-list"])
def test_dump_writes_what_safe_dump_writes_and_load_reads_it_back(doc):
    for kw in ({"sort_keys": False}, {}, {"default_flow_style": True, "width": 1 << 16}):
        text = yamlio.dump(doc, **kw)
        assert text == yaml.safe_dump(doc, **kw)
        assert yamlio.load(text) == yaml.safe_load(text) == doc
    out = io.StringIO()
    yamlio.dump_all([doc, VALUES], out, sort_keys=False)
    assert out.getvalue() == yaml.safe_dump_all([doc, VALUES], sort_keys=False)
    assert list(yamlio.load_all(out.getvalue())) == [doc, VALUES]


def test_a_bare_scalar_reads_back_without_the_document_end_marker():
    # PyYAML's Python emitter ends a lone plain scalar with "...", libyaml does not
    assert yamlio.load(yamlio.dump("plain")) == "plain"


def test_it_is_safe_and_uses_libyaml_when_pyyaml_has_it():
    with pytest.raises(yaml.YAMLError):  # no arbitrary Python objects
        yamlio.load("!!python/object/apply:os.system ['true']")
    with pytest.raises(yaml.YAMLError):
        yamlio.dump(object())
    if hasattr(yaml, "CSafeLoader"):
        assert yamlio.Loader is yaml.CSafeLoader and yamlio.Dumper is yaml.CSafeDumper
