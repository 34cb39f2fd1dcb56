"""Which host cluster a command talks to: an explicit kubeconfig/context, else the user's
current context if it answers within a second (and is not a virtual cluster of ours), else the
embedded host (started on demand through ``vkube host start``)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import os
from dataclasses import dataclass
from pathlib import Path

from vkube.api import errors
from vkube.cli import kubeconfigs
from vkube.cli.output import CLIError
from vkube.client import Client
from vkube.client.resources import NODES

REACH_TIMEOUT = 1.0


@dataclass(frozen=True)
class HostRef:
    kubeconfig: str
    context: str | None
    kind: str  # "embedded" | "kubeconfig"

    def client(self, timeout: float = 30.0) -> Client:
        from vkube.client.kubeconfig import client_from_kubeconfig

        try:
            return client_from_kubeconfig(self.kubeconfig, self.context, user_agent="vkube-cli",
                                          timeout=timeout)
        except (OSError, ValueError, KeyError) as e:
            raise CLIError(f"cannot use host kubeconfig {self.kubeconfig}"
                           f"{f' (context {self.context})' if self.context else ''}: {e} — "
                           "pass a working --host-kubeconfig/--host-context") from e

    def describe(self) -> str:
        return f"{self.kubeconfig}" + (f" (context {self.context})" if self.context else "")


def embedded_kubeconfig() -> Path:
    from vkube.cli.hosting import host_dir

    return host_dir() / "kubeconfig"


async def reachable(host: HostRef, timeout: float = REACH_TIMEOUT) -> bool:
    try:
        client = host.client(timeout=timeout)
    except CLIError:
        return False
    try:
        await client.request("GET", "/version")
        return True
    except (errors.StatusError, OSError):
        return False
    finally:
        await client.close()


async def node_count(host: HostRef) -> int:
    async with host.client() as c:
        return len((await c.list(NODES)).get("items") or [])


def _current_context_host() -> HostRef | None:
    path = kubeconfigs.user_kubeconfig_path()
    ctx = kubeconfigs.current_context(path) if path.exists() else None
    if not ctx or ctx.startswith(kubeconfigs.CONTEXT_PREFIX):
        return None
    return HostRef(str(path), ctx, "kubeconfig")


def _start_embedded() -> None:
    from vkube.cli import host_cmd

    args = argparse.Namespace(nodes=int(os.environ.get("VKUBE_HOST_NODES", "3")),
                              node_cpu="4", node_memory="8Gi", timeout=60.0)
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        rc = host_cmd.cmd_start(args)
    if rc != 0:
        raise CLIError("could not start the embedded host — see `vkube host status` and "
                       f"{embedded_kubeconfig().parent / 'host.log'}:\n{out.getvalue().strip()}")


async def resolve(kubeconfig: str | None, context: str | None, *, start_embedded: bool = True,
                  known: HostRef | None = None) -> HostRef:
    """The host to use. ``known`` is the host a virtual cluster was created on (it wins over
    the current context); the embedded host is started if needed and allowed."""
    if kubeconfig or context:
        path = kubeconfig or str(kubeconfigs.user_kubeconfig_path())
        ref = HostRef(str(Path(path).expanduser().resolve()), context, "kubeconfig")
        if not await reachable(ref, timeout=5.0):
            raise CLIError(f"no host cluster reachable at {ref.describe()} — start one with "
                           "`vkube host start` or pass a working --host-kubeconfig")
        return ref
    if known is not None:
        if known.kind == "embedded" and start_embedded and not await reachable(known):
            _start_embedded()
        if not await reachable(known, timeout=5.0):
            raise CLIError(f"no host cluster reachable at {known.describe()} — start one with "
                           "`vkube host start` or pass --host-kubeconfig")
        return known
    current = _current_context_host()
    if current is not None and await reachable(current):
        return current
    embedded = HostRef(str(embedded_kubeconfig()), None, "embedded")
    if embedded_kubeconfig().exists() and await reachable(embedded):
        return embedded
    if not start_embedded:
        where = current.describe() if current else str(kubeconfigs.user_kubeconfig_path())
        raise CLIError(f"no host cluster reachable at {where} — start one with "
                       "`vkube host start` or pass --host-kubeconfig")
    await asyncio.to_thread(_start_embedded)
    return embedded
