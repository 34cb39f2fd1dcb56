"""Async dict-based Kubernetes client (interface; see the docstrings for the contract).

Why our own: the official async clients deserialize into generated model classes (slow, and
they drop unknown fields of custom resources); kopf, a model operator codebase, talks to the API
with aiohttp and dicts for the same reasons. aiohttp does the HTTP; this module only knows the
REST path convention, kubeconfigs, and maps ``Status`` replies to ``vkube.api.errors``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Literal

Obj = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Resource:
    """What the client needs to build a URL: ``Resource("apps", "v1", "deployments", True)``."""

    group: str
    version: str
    plural: str
    namespaced: bool = True
    kind: str = ""

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(self, namespace: str | None = None, name: str | None = None,
             subresource: str | None = None) -> str:
        """``/api/v1/namespaces/ns/pods/name/status`` and friends."""
        raise NotImplementedError


@dataclass(frozen=True, slots=True)
class WatchEvent:
    type: Literal["ADDED", "MODIFIED", "DELETED", "BOOKMARK", "ERROR"]
    object: Obj


def load_kubeconfig(path: str, context: str | None = None) -> "Client":
    """A Client for the kubeconfig's (current or named) context: server, CA / insecure,
    client cert+key or token."""
    raise NotImplementedError


class Client:
    """One aiohttp session per client; use ``async with Client(...)`` or ``await close()``.
    Every error reply raises the matching ``vkube.api.errors.StatusError`` subclass;
    connection failures raise ``vkube.api.errors.ServiceUnavailable``."""

    def __init__(self, server: str, *, token: str | None = None, ssl: Any = None,
                 user_agent: str = "vkube") -> None:
        raise NotImplementedError

    async def close(self) -> None: ...
    async def __aenter__(self) -> "Client": return self
    async def __aexit__(self, *exc: object) -> None: await self.close()

    async def get(self, res: Resource, name: str, *, namespace: str | None = None,
                  subresource: str | None = None) -> Obj: ...
    async def list(self, res: Resource, *, namespace: str | None = None,
                   label_selector: str | None = None, field_selector: str | None = None,
                   limit: int | None = None, continue_: str | None = None,
                   resource_version: str | None = None) -> Obj:
        """The List object (``items``, ``metadata.resourceVersion``, ``metadata.continue``)."""
    async def list_all(self, res: Resource, **kw: Any) -> Obj:
        """Like list() but follows ``continue`` pages; returns one List."""
    async def create(self, res: Resource, obj: Obj, *, namespace: str | None = None,
                     subresource: str | None = None, name: str | None = None,
                     dry_run: bool = False, field_manager: str | None = None) -> Obj:
        """Namespace defaults to obj.metadata.namespace. ``subresource`` (with ``name``) posts
        to e.g. ``pods/NAME/binding`` or ``pods/NAME/eviction``."""
    async def update(self, res: Resource, obj: Obj, *, subresource: str | None = None,
                     field_manager: str | None = None) -> Obj: ...
    async def patch(self, res: Resource, name: str, patch: Any, *, namespace: str | None = None,
                    type: Literal["merge", "strategic", "json", "apply"] = "merge",
                    subresource: str | None = None, field_manager: str | None = None,
                    force: bool = False) -> Obj: ...
    async def delete(self, res: Resource, name: str, *, namespace: str | None = None,
                     propagation_policy: str | None = None,
                     grace_period_seconds: int | None = None,
                     preconditions: Obj | None = None) -> Obj: ...
    async def watch(self, res: Resource, *, namespace: str | None = None,
                    resource_version: str | None = None, label_selector: str | None = None,
                    field_selector: str | None = None, allow_bookmarks: bool = True,
                    timeout_seconds: int | None = None) -> AsyncIterator[WatchEvent]:
        """Streams events until the server closes the stream (or timeout); an ERROR event
        with a 410 Status raises ``vkube.api.errors.Gone``."""
        raise NotImplementedError
        yield  # pragma: no cover
    async def request(self, method: str, path: str, *, params: Obj | None = None,
                      body: Any = None, content_type: str = "application/json",
                      raw: bool = False) -> Any:
        """Escape hatch: JSON reply (or bytes with raw=True), errors mapped as above."""
