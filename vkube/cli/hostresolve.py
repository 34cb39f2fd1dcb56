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
from vkube.cli.output import CLIError, read_user_file
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


def check_kubeconfig(path: str, context: str | None, *, given: bool = True) -> None:
    """A host kubeconfig that cannot work is named with what is wrong, in one line: a file
    that is missing, not YAML, not a kubeconfig, or lacks the context asked for."""
    import yaml
    from vkube.api import yamlio

    flag = "--host-kubeconfig" if given else "KUBECONFIG"
    text = read_user_file(path, "host kubeconfig", f"check the path given to {flag}")
    try:
        doc = yamlio.load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        problem = getattr(e, "problem", None) or "parse error"
        raise CLIError(f"host kubeconfig {path} is not valid YAML{where}: {problem} — pass a "
                       f"kubeconfig file to {flag}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("contexts") or [], list):
        raise CLIError(f"host kubeconfig {path} is not a kubeconfig (no contexts) — pass a "
                       f"kubeconfig file to {flag}")
    names = [c.get("name") for c in doc.get("contexts") or [] if isinstance(c, dict)]
    listed = ", ".join(str(n) for n in names) or "none"
    want = context or doc.get("current-context")
    if not want:
        raise CLIError(f"host kubeconfig {path} has no current context — pick one with "
                       f"--host-context (its contexts: {listed})")
    if want not in names:
        what = f"context {want!r}" if context else f"current context {want!r}"
        raise CLIError(f"{what} not found in host kubeconfig {path} (its contexts: {listed}) — "
                       "pass one of them to --host-context")


async def runs_no_images(host: HostRef) -> bool:
    """A vkube embedded host (any user's, however it is named): its nodes are simulated
    (annotated ``vkube.io/simulated``), their kubelets run no container image."""
    if host.kind == "embedded":
        return True
    async with host.client() as c:
        nodes = (await c.list(NODES)).get("items") or []
    return bool(nodes) and all(
        ((n.get("metadata") or {}).get("annotations") or {}).get("vkube.io/simulated") == "true"
        for n in nodes)


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
    if not ctx or ctx.startswith(kubeconfigs.CONTEXT_PREFIX) or ctx == kubeconfigs.HOST_CONTEXT:
        return None  # a virtual cluster of ours, or the embedded host (found below as such)
    return HostRef(str(path), ctx, "kubeconfig")


def _start_embedded() -> None:
    from vkube.cli import host_cmd

    args = argparse.Namespace(nodes=int(os.environ.get("VKUBE_HOST_NODES", "3")),
                              node_cpu="4", node_memory="8Gi", node_devices="", timeout=60.0)
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        rc = host_cmd.cmd_start(args)
    if rc != 0:
        said = [line.strip() for line in out.getvalue().splitlines() if line.strip()]
        why = f" ({said[-1].removeprefix('error: ')})" if said else ""
        raise CLIError(f"could not start the embedded host{why} — see `vkube host status` and "
                       f"{embedded_kubeconfig().parent / 'host.log'}")


async def resolve(kubeconfig: str | None, context: str | None, *, start_embedded: bool = True,
                  known: HostRef | None = None) -> HostRef:
    """The host to use. ``known`` is the host a virtual cluster was created on (it wins over
    the current context); the embedded host is started if needed and allowed. An embedded
    host gets (or refreshes) its context ``vkube-host`` in the user's kubeconfig."""
    ref = await _resolve(kubeconfig, context, start_embedded=start_embedded, known=known)
    if ref.kind == "embedded":
        kubeconfigs.add_host_context(Path(ref.kubeconfig))
    return ref


async def _resolve(kubeconfig: str | None, context: str | None, *, start_embedded: bool,
                   known: HostRef | None) -> HostRef:
    if kubeconfig or context:
        path = kubeconfig or str(kubeconfigs.user_kubeconfig_path())
        ref = HostRef(str(Path(path).expanduser().resolve()), context, "kubeconfig")
        check_kubeconfig(ref.kubeconfig, context, given=bool(kubeconfig))
        if not await reachable(ref, timeout=5.0):
            raise CLIError(f"no host cluster reachable at {ref.describe()} — check it with "
                           "`kubectl --kubeconfig FILE get nodes`, start the embedded one with "
                           "`vkube host start`, or pass another --host-kubeconfig")
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
