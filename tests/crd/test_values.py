"""``sync.toHost`` / ``sync.fromHost.customResources`` in values: parsed, dumped, bad keys named."""

from __future__ import annotations

import pytest
import yaml

from vkube.syncer.values import ValuesError, dump_values, load_values


def test_custom_resource_kinds_parse_and_dump() -> None:
    v = load_values("sync:\n  toHost: {customResources: {Certificate.cert-manager.io: {enabled: true}}}\n"
                    "  fromHost: {customResources: {ClusterIssuer.cert-manager.io: {}}}\n")
    assert v.sync.to_host.custom_resources["Certificate.cert-manager.io"].enabled is True
    assert v.sync.from_host.custom_resources["ClusterIssuer.cert-manager.io"].enabled is True
    dumped = dump_values(v)["sync"]
    assert dumped["toHost"] == {"customResources": {"Certificate.cert-manager.io": {"enabled": True, "patches": []}}}
    assert load_values(yaml.safe_dump(dump_values(v))) == v  # the dump loads back
    assert load_values("").sync.to_host.custom_resources == {}


@pytest.mark.parametrize("text, message", [
    ("sync: {toHost: {customResources: {certificates: {}}}}",
     "sync.toHost.customResources.certificates: must be KIND.GROUP"),
    ("sync: {fromHost: {customResources: {Issuer: {}}}}", "sync.fromHost.customResources.Issuer: must be KIND.GROUP"),
    ("sync: {toHost: {customResources: {A.b.io: {enabled: yes please}}}}",
     "sync.toHost.customResources.A.b.io.enabled: must be true or false"),
    ("sync: {toHost: {customResources: [A.b.io]}}", "sync.toHost.customResources: must be a mapping"),
    ("sync: {toHost: {crds: {}}}", "sync.toHost.crds: unknown key"),
    ("sync: {toHost: {customResources: {A.b.io: {}}}, fromHost: {customResources: {A.b.io: {}}}}",
     "a kind syncs one way only"),
])
def test_bad_custom_resource_values_name_the_key(text: str, message: str) -> None:
    with pytest.raises(ValuesError, match=message.replace(".", r"\.")):
        load_values(text)
