"""The wake check decrypts a sleeping cluster's Secrets with its encryption config, parsed once
per change of the file rather than once per token (a flood of bootstrap-shaped tokens at a
sleeping cluster would otherwise parse YAML and build ciphers per request)."""

import base64
import os
import time

import orjson
import yaml

from vkube.apiserver import encryption
from vkube.cluster.wakeauth import WakeCredentials

KEY = "/core/secrets/kube-system/bootstrap-token-abcdef"


def _config(path, name: str) -> encryption.EncryptionConfig:
    secret = base64.b64encode(os.urandom(32)).decode()
    path.write_text(yaml.safe_dump({
        "apiVersion": "apiserver.config.k8s.io/v1", "kind": "EncryptionConfiguration",
        "resources": [{"resources": ["secrets"], "providers": [
            {"aesgcm": {"keys": [{"name": name, "secret": secret}]}}, {"identity": {}}]}]}))
    return encryption.EncryptionConfig.load(path)


async def test_encryption_config_is_parsed_once_per_change(tmp_path, monkeypatch):
    path = tmp_path / "encryption.yaml"
    secret = {"kind": "Secret", "metadata": {"name": "bootstrap-token-abcdef"}, "data": {"token-id": "YWJjZGVm"}}
    stored = {"value": _config(path, "k1").encrypt(KEY, orjson.dumps(secret))}

    async def read(key: str) -> bytes | None:
        return stored["value"] if key == KEY else None

    loads = []
    real_load = encryption.EncryptionConfig.load.__func__
    monkeypatch.setattr(encryption.EncryptionConfig, "load",
                        classmethod(lambda cls, p: loads.append(p) or real_load(cls, p)))
    creds = WakeCredentials(None, read=read, encryption_config=path)
    for _ in range(5):
        assert (await creds._object(KEY))["data"] == secret["data"]
    assert len(loads) == 1

    # keys rotated: the new file is read, and a value only the new key wrote decrypts
    monkeypatch.setattr(encryption.EncryptionConfig, "load", classmethod(real_load))
    rotated = _config(path, "k2")
    os.utime(path, (time.time() + 5, time.time() + 5))
    stored["value"] = rotated.encrypt(KEY, orjson.dumps(secret))
    assert (await creds._object(KEY))["data"] == secret["data"]

    # an unreadable config or a value no key decrypts: no object (no wake), never an exception
    path.write_text("kind: EncryptionConfiguration\nresources: [{resources: [secrets], providers: [{kms: {}}]}]\n")
    os.utime(path, (time.time() + 10, time.time() + 10))
    assert await creds._object(KEY) is None
    path.unlink()
    assert await creds._object(KEY) is None  # encrypted value, no config: cannot be read
