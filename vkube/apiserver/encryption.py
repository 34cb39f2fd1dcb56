"""Encryption at rest with kube-apiserver's ``EncryptionConfiguration`` semantics.

Per resource, an ordered list of providers: the **first writes**, every one can read (chosen by
the prefix of the stored value: ``k8s:enc:aesgcm:v1:KEYNAME:``, ``k8s:enc:aescbc:v1:KEYNAME:``,
``k8s:enc:secretbox:v1:KEYNAME:``; ``identity`` reads what has no prefix). The storage key is
the authenticated data (AES-GCM), so a value copied under another key does not decrypt.

Rotation, as upstream documents it: add the new key second and restart; move it first and
restart; re-write every Secret (``kubectl get secrets -A -o json | kubectl replace -f -`` —
values read through an older provider are re-encrypted even when unchanged); drop the old key.
Without a file of its own a cluster gets ``encryption-config.yaml`` in its data dir: AES-GCM
with a fresh 256-bit key for ``secrets``, identity as fallback for older data."""

from __future__ import annotations

import base64
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import yaml
from vkube.api import yamlio

from vkube.api import errors

PREFIX = b"k8s:enc:"
CONFIG_FILE = "encryption-config.yaml"


class ConfigError(ValueError):
    """An EncryptionConfiguration that cannot be used; the message names the field."""


class Provider(Protocol):
    prefix: bytes

    def encrypt(self, data: bytes, key: str) -> bytes: ...

    def decrypt(self, data: bytes, key: str) -> bytes: ...


class Identity:
    prefix = b""

    def encrypt(self, data: bytes, key: str) -> bytes:
        return data

    def decrypt(self, data: bytes, key: str) -> bytes:
        return data


class AESGCM:
    def __init__(self, name: str, secret: bytes) -> None:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM as _AESGCM

        self.prefix = PREFIX + b"aesgcm:v1:" + name.encode() + b":"
        self._aead = _AESGCM(secret)

    def encrypt(self, data: bytes, key: str) -> bytes:
        nonce = os.urandom(12)
        return self.prefix + nonce + self._aead.encrypt(nonce, data, key.encode())

    def decrypt(self, data: bytes, key: str) -> bytes:
        body = data[len(self.prefix):]
        return self._aead.decrypt(body[:12], body[12:], key.encode())


class AESCBC:
    def __init__(self, name: str, secret: bytes) -> None:
        self.prefix = PREFIX + b"aescbc:v1:" + name.encode() + b":"
        self._secret = secret

    def encrypt(self, data: bytes, key: str) -> bytes:
        from cryptography.hazmat.primitives import padding
        from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

        iv = os.urandom(16)
        padder = padding.PKCS7(128).padder()
        enc = Cipher(algorithms.AES(self._secret), modes.CBC(iv)).encryptor()
        return self.prefix + iv + enc.update(padder.update(data) + padder.finalize()) + enc.finalize()

    def decrypt(self, data: bytes, key: str) -> bytes:
        from cryptography.hazmat.primitives import padding
        from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

        body = data[len(self.prefix):]
        dec = Cipher(algorithms.AES(self._secret), modes.CBC(body[:16])).decryptor()
        unpadder = padding.PKCS7(128).unpadder()
        return unpadder.update(dec.update(body[16:]) + dec.finalize()) + unpadder.finalize()


class SecretBox:
    def __init__(self, name: str, secret: bytes) -> None:
        import nacl.secret

        self.prefix = PREFIX + b"secretbox:v1:" + name.encode() + b":"
        self._box = nacl.secret.SecretBox(secret)

    def encrypt(self, data: bytes, key: str) -> bytes:
        return self.prefix + bytes(self._box.encrypt(data))  # 24-byte nonce + box

    def decrypt(self, data: bytes, key: str) -> bytes:
        return self._box.decrypt(data[len(self.prefix):])


@dataclass(frozen=True)
class Transformer:
    """The providers of one resource, in order: ``providers[0]`` writes."""

    providers: tuple[Any, ...]

    def to_storage(self, data: bytes, key: str) -> bytes:
        return self.providers[0].encrypt(data, key)

    def from_storage(self, data: bytes, key: str) -> bytes:
        for p in self.providers:
            if p.prefix and data.startswith(p.prefix):
                try:
                    return p.decrypt(data, key)
                except Exception:
                    continue  # another key of the same name/type may follow; else fail below
            elif not p.prefix and not data.startswith(PREFIX):
                return data
        raise errors.InternalError(f'unable to transform key "{key}": no matching prefix found or the '
                                   "value could not be decrypted with any configured key")

    def stale(self, data: bytes) -> bool:
        """Written by a provider other than the first: re-written on the next update."""
        first = self.providers[0].prefix
        return not data.startswith(first) if first else data.startswith(PREFIX)


_KEY_SIZES = {"aesgcm": (16, 24, 32), "aescbc": (16, 24, 32), "secretbox": (32,)}
_CLASSES = {"aesgcm": AESGCM, "aescbc": AESCBC, "secretbox": SecretBox}


def _provider(item: Any, path: str) -> list[Any]:
    if not isinstance(item, Mapping) or len(item) != 1:
        raise ConfigError(f"{path}: exactly one provider type must be given per entry")
    kind, body = next(iter(item.items()))
    if kind == "identity":
        return [Identity()]
    if kind in ("kms",):
        raise ConfigError(f"{path}.kms: KMS providers are not supported by vkube; use aesgcm, aescbc or secretbox")
    if kind not in _CLASSES:
        raise ConfigError(f'{path}: Unsupported value: "{kind}": supported values: "aesgcm", "aescbc", '
                          '"secretbox", "identity"')
    keys = (body or {}).get("keys") if isinstance(body, Mapping) else None
    if not keys:
        raise ConfigError(f"{path}.{kind}.keys: Required value")
    out = []
    for i, k in enumerate(keys):
        kp = f"{path}.{kind}.keys[{i}]"
        name, secret = (k or {}).get("name"), (k or {}).get("secret")
        if not name:
            raise ConfigError(f"{kp}.name: Required value")
        try:
            raw = base64.b64decode(str(secret), validate=True)
        except Exception:
            raise ConfigError(f"{kp}.secret: Invalid value: secrets must be base64 encoded") from None
        if len(raw) not in _KEY_SIZES[kind]:
            sizes = ", ".join(str(s) for s in _KEY_SIZES[kind])
            raise ConfigError(f"{kp}.secret: Invalid value: {kind} key must be {sizes} bytes, got {len(raw)}")
        out.append(_CLASSES[kind](str(name), raw))
    return out


class EncryptionConfig:
    """Resource (``secrets``, ``deployments.apps``, ``*.apps``, ``*.*``) → its Transformer."""

    def __init__(self, rules: list[tuple[tuple[str, ...], Transformer]]) -> None:
        self.rules = rules

    @classmethod
    def parse(cls, doc: Any) -> "EncryptionConfig":
        if not isinstance(doc, Mapping) or doc.get("kind") != "EncryptionConfiguration":
            raise ConfigError("kind: must be EncryptionConfiguration (apiVersion apiserver.config.k8s.io/v1)")
        rules = []
        for i, rule in enumerate(doc.get("resources") or []):
            names = tuple(str(r) for r in (rule or {}).get("resources") or [])
            if not names:
                raise ConfigError(f"resources[{i}].resources: Required value")
            providers: list[Any] = []
            for j, item in enumerate((rule or {}).get("providers") or []):
                providers += _provider(item, f"resources[{i}].providers[{j}]")
            if not providers:
                raise ConfigError(f"resources[{i}].providers: Required value")
            rules.append((names, Transformer(tuple(providers))))
        return cls(rules)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> "EncryptionConfig":
        try:
            doc = yamlio.load(Path(path).read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"cannot read encryption config {path}: {exc}") from None
        return cls.parse(doc)

    def for_resource(self, group: str, resource: str) -> Transformer | None:
        """The first rule naming the resource wins; identity-only rules mean no transform."""
        full = f"{resource}.{group}" if group else resource
        for names, t in self.rules:
            if full in names or f"*.{group}" in names or "*.*" in names or (not group and "*." in names):
                return None if all(isinstance(p, Identity) for p in t.providers) else t
        return None


    def decrypt(self, key: str, data: bytes) -> bytes:
        """A stored value in plain text, whichever rule's provider wrote it (snapshots: the
        file must restore into a cluster with other keys); unencrypted values as they are.
        Raises ``errors.InternalError`` when no configured key decrypts it."""
        if not data.startswith(PREFIX):
            return data
        for _, t in self.rules:
            try:
                return t.from_storage(data, key)
            except errors.InternalError:
                continue
        raise errors.InternalError(f'unable to transform key "{key}": no matching prefix found or the '
                                   "value could not be decrypted with any configured key")

    def encrypt(self, key: str, data: bytes) -> bytes:
        """A plain value as this configuration stores it under ``key`` (``/GROUP/RESOURCE/…``,
        ``core`` for the core group); values already encrypted are left as they are."""
        if data.startswith(PREFIX):
            return data
        parts = key.split("/")
        if len(parts) < 3:
            return data
        t = self.for_resource("" if parts[1] == "core" else parts[1], parts[2])
        return t.to_storage(data, key) if t is not None else data


def default_config_for(data_dir: Path) -> Path:
    """The cluster's own config (created once, 0600): AES-GCM for secrets, identity fallback."""
    path = data_dir / CONFIG_FILE
    if not path.exists():
        key = base64.b64encode(os.urandom(32)).decode()
        doc = {"apiVersion": "apiserver.config.k8s.io/v1", "kind": "EncryptionConfiguration",
               "resources": [{"resources": ["secrets"], "providers": [
                   {"aesgcm": {"keys": [{"name": "key1", "secret": key}]}}, {"identity": {}}]}]}
        tmp = path.with_suffix(".tmp")
        tmp.write_text(yamlio.dump(doc, sort_keys=False))
        os.chmod(tmp, 0o600)
        tmp.replace(path)
    return path
