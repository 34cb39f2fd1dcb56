"""Raw HTTP to one cluster of a shared server, as its own kubeconfig reaches it: that
cluster's CA and admin certificate, and its TLS server name (SNI)."""

from __future__ import annotations

from typing import Any

import aiohttp

from vkube.cluster.shared import SharedServer, sni_name


class ClusterSession:
    """``async with ClusterSession(server, "a") as s: await s.get(path)`` — ``get`` and
    ``post`` take a path below the server's base URL and send cluster ``name``'s SNI
    (``sni=`` overrides it, ``None`` sends none)."""

    def __init__(self, server: SharedServer, name: str, *, sni: str | None = "",
                 user: tuple[str, tuple[str, ...]] | None = None) -> None:
        member = server.members[name]
        assert member.vc is not None, f"{name} is not running"
        self.server = server
        self.sni = sni_name(name) if sni == "" else sni
        # the cluster's admin, or ``user`` = (name, groups) with a certificate of its CA
        self._ssl = member.vc.control_plane.client_ssl(*(user or ()))
        if self.sni is None:
            self._ssl.check_hostname = False
            import ssl

            self._ssl.verify_mode = ssl.CERT_NONE
        self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=self._ssl))

    def _kw(self) -> dict[str, Any]:
        return {"server_hostname": self.sni} if self.sni else {}

    def get(self, path: str, **kw: Any) -> Any:
        return self.session.get(self.server.base_url + path if isinstance(path, str) else path,
                                **self._kw(), **kw)

    def post(self, path: str, **kw: Any) -> Any:
        return self.session.post(self.server.base_url + path, **self._kw(), **kw)

    async def __aenter__(self) -> "ClusterSession":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.session.close()
