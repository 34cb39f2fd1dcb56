"""Deferring aiohttp's import-time loads of the system trust store.

``import aiohttp`` builds two client SSLContexts in ``aiohttp.connector`` (its defaults for
``ssl=True`` and ``ssl=False``), and each parses the system CA bundle: ~150 certificates,
~55 ms of CPU and ~1.5 MiB of RSS apiece, in every vkube process that speaks HTTP (the CLI,
each control plane, the embedded host). vkube verifies its own clusters against their own
CAs, so those loads are almost never used, but they sat on the critical path of
``vkube create`` twice (the CLI and the new control plane).

:func:`defer_aiohttp_trust_store` installs a one-shot import hook. While ``aiohttp.connector``
runs, ``SSL_CERT_FILE``/``SSL_CERT_DIR`` name nothing, so its contexts are built empty; then
each verifying context it made becomes a :class:`LazyTrustContext`, which loads the system
store (from the real environment) just before its first handshake. ``ssl=True`` therefore
still verifies against the system's CAs; the ``ssl=False`` default never verifies and needs
no store. Only processes that call the function are affected (the ``vkube`` entry point).
"""

from __future__ import annotations

import importlib.machinery
import os
import ssl
import sys
from typing import Any

__all__ = ["LazyTrustContext", "defer_aiohttp_trust_store"]

MODULE = "aiohttp.connector"
_ENV = ("SSL_CERT_FILE", "SSL_CERT_DIR")
_NOWHERE = "/dev/null/vkube-trust-deferred"  # can never exist: /dev/null is no directory


class LazyTrustContext(ssl.SSLContext):
    """A verifying client context whose system trust store is loaded on first use (a
    connection or a handshake), once, instead of when it is created."""

    _trust_loaded = False

    def load_trust(self) -> None:
        """Idempotent: two threads that both load add the same certificates once."""
        if not self._trust_loaded:
            self.load_default_certs(ssl.Purpose.SERVER_AUTH)
            self._trust_loaded = True

    def wrap_bio(self, *args: Any, **kwargs: Any) -> ssl.SSLObject:  # asyncio and uvloop
        self.load_trust()
        return super().wrap_bio(*args, **kwargs)

    def wrap_socket(self, *args: Any, **kwargs: Any) -> ssl.SSLSocket:  # blocking sockets
        self.load_trust()
        return super().wrap_socket(*args, **kwargs)


class _Loader:
    """Runs the real loader of ``aiohttp.connector`` with the trust store out of reach."""

    def __init__(self, real: Any) -> None:
        self.real = real

    def create_module(self, spec: Any) -> Any:
        return self.real.create_module(spec)

    def exec_module(self, module: Any) -> None:
        saved = {k: os.environ.get(k) for k in _ENV}
        os.environ.update({k: _NOWHERE for k in _ENV})
        try:
            self.real.exec_module(module)
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        for value in list(vars(module).values()):
            # every verifying context the module made (whatever aiohttp calls it) loads the
            # store when first used; a non-verifying one (ssl=False) never needs it
            if type(value) is ssl.SSLContext and value.verify_mode != ssl.CERT_NONE:
                value.__class__ = LazyTrustContext


class _Finder:
    """A ``sys.meta_path`` entry that only acts on ``aiohttp.connector``, once."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        if name != MODULE:
            return None
        if self in sys.meta_path:
            sys.meta_path.remove(self)
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        spec.loader = _Loader(spec.loader)
        return spec


def defer_aiohttp_trust_store() -> bool:
    """Install the hook (before anything imports aiohttp); False when it is too late or it is
    installed already. Costs nothing until aiohttp is imported."""
    if MODULE in sys.modules or any(isinstance(f, _Finder) for f in sys.meta_path):
        return False
    sys.meta_path.insert(0, _Finder())
    return True
