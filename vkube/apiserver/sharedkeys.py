"""Key material shared by the replicas of one highly available cluster.

Why: replicas (``enableHA``) serve one cluster from one store, so a client certificate, a
service-account token or an encrypted Secret written through one replica must be valid on every
other. kube-apiserver leaves distributing the CA, the token key and the EncryptionConfiguration
to the operator; vkube replicas each start from their own data dir, so the first replica to reach
the store puts its key material there (outside every resource prefix) and every later one adopts
it and rewrites its own files.

The trade-off, stated in the docs: a dump of that store then holds the CA key, the token key and
— unless every replica is given the same ``--encryption-provider-config`` — the Secrets' key.
"""

from __future__ import annotations

from pathlib import Path

import orjson

from vkube.apiserver.encryption import CONFIG_FILE, default_config_for
from vkube.pki.certs import write_private, write_public
from vkube.pki.cluster import ClusterPKI
from vkube.store.base import KeyExists, RevisionMismatch, Store

#: where the bundle lives in the store (no resource prefix starts with /vkube/)
CLUSTER_KEYS = "/vkube/cluster-keys"
_FRONT_PROXY = ("front-proxy-ca.crt", "front-proxy-ca.key")
_FILES = {"ca.crt": False, "ca.key": True, "sa.key": True, "front-proxy-ca.crt": False, "front-proxy-ca.key": True}


async def share_cluster_keys(store: Store, pki_dir: Path, data_dir: Path | None, pki: ClusterPKI,
                             name: str, with_encryption: bool) -> ClusterPKI:
    """Agree on one key bundle through ``store``; returns the PKI to serve with (a fresh one
    read from ``pki_dir`` when the stored bundle differed from ours). ``with_encryption``: the
    EncryptionConfiguration is the data dir's generated one and is shared too."""
    local = {"ca.crt": pki.ca.cert_pem.decode(), "ca.key": pki.ca.key_pem.decode(),
             "sa.key": pki.signing_key.private_pem().decode(),
             "front-proxy-ca.crt": pki.front_proxy_ca.cert_pem.decode(),
             "front-proxy-ca.key": pki.front_proxy_ca.key_pem.decode()}
    if with_encryption and data_dir is not None:
        local[CONFIG_FILE] = default_config_for(data_dir).read_text()
    kv = await store.get(CLUSTER_KEYS)
    if kv is None:
        try:
            kv = await store.create(CLUSTER_KEYS, orjson.dumps(local))
        except KeyExists:
            kv = await store.get(CLUSTER_KEYS)
    assert kv is not None
    shared: dict[str, str] = orjson.loads(kv.value)
    while any(f not in shared for f in _FRONT_PROXY):  # a bundle from before the front-proxy CA
        merged = {**shared, **{f: local[f] for f in _FRONT_PROXY}}
        try:
            await store.update(CLUSTER_KEYS, orjson.dumps(merged), expected_mod_revision=kv.mod_revision)
            shared = merged
        except RevisionMismatch:  # another replica completed it first: adopt theirs
            kv = await store.get(CLUSTER_KEYS)
            assert kv is not None
            shared = orjson.loads(kv.value)
    if shared == local:
        return pki
    for f, private in _FILES.items():
        if f in shared:
            (write_private if private else write_public)(pki_dir / f, shared[f].encode())
    if CONFIG_FILE in shared and data_dir is not None and with_encryption:
        write_private(data_dir / CONFIG_FILE, shared[CONFIG_FILE].encode())
    # the serving certificate came from our old CA: issue a new one from the shared CA
    for stale in ("apiserver.crt", "apiserver.key"):
        (pki_dir / stale).unlink(missing_ok=True)
    return ClusterPKI(pki_dir, name=name)
