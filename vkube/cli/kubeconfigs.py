"""The user's kubeconfig: add, switch to and remove the ``vkube_NAME`` contexts, and remember
the context that was current before so ``vkube disconnect`` can switch back.

The file is the first path of ``$KUBECONFIG`` (or ``~/.kube/config``), created when missing;
writes go through a temp file and a rename so kubectl never sees half a file, and each
read-modify-write holds an advisory lock (``FILE.vkube-lock``; kubectl's own ``FILE.lock`` is
left to kubectl), so concurrent ``vkube`` commands never lose each other's contexts.

A symlinked kubeconfig (dotfiles repositories link ``~/.kube/config``) stays a symlink: the
file written is the link's target, as kubectl writes through the link; the lock is the
target's, so two links to one file share it. The temp file is a fresh one of mode 0600
(``O_CREAT|O_EXCL``), never a file or link someone else left at that name."""

from __future__ import annotations

import contextlib
import fcntl
import functools
import inspect
import json
import os
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import yaml
from vkube.api import yamlio

from vkube.cli import state
from vkube.cli.output import CLIError, read_user_file

CONTEXT_PREFIX = "vkube_"


def context_name(name: str) -> str:
    return CONTEXT_PREFIX + name


def user_kubeconfig_path() -> Path:
    env = os.environ.get("KUBECONFIG")
    if env:
        first = next((p for p in env.split(os.pathsep) if p), None)
        if first:
            return Path(first).expanduser()
    return Path.home() / ".kube" / "config"


def load(path: Path | None = None) -> dict[str, Any]:
    p = path or user_kubeconfig_path()
    try:
        doc = yamlio.load(read_user_file(p, "kubeconfig", "fix KUBECONFIG or move the file")
                          if p.exists() else "") or {}
    except yaml.YAMLError as e:
        raise CLIError(f"cannot read kubeconfig {p}: {e} — fix or move the file") from e
    doc.setdefault("apiVersion", "v1")
    doc.setdefault("kind", "Config")
    for key in ("clusters", "users", "contexts"):
        if doc.get(key) is None:
            doc[key] = []
    return doc


_held = threading.local()  # lock files this thread holds (the lock is re-entrant)
_F = TypeVar("_F", bound=Callable[..., Any])


@contextlib.contextmanager
def _locked(path: Path | None = None) -> Iterator[None]:
    p = _target(path or user_kubeconfig_path())
    held: set[Path] = _held.__dict__.setdefault("paths", set())
    if p in held:
        yield
        return
    p.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(p.with_name(p.name + ".vkube-lock"),
                 os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        held.add(p)
        try:
            yield
        finally:
            held.discard(p)


def _target(path: Path) -> Path:
    """The file a kubeconfig path names: symlinks followed (to a target that need not exist
    yet), so the link itself is never replaced and every link to one file shares its lock."""
    try:
        return path.expanduser().resolve()
    except (RuntimeError, OSError) as e:  # a symlink loop
        raise CLIError(f"cannot follow kubeconfig {path}: {e} — fix the link or set "
                       "KUBECONFIG to a file") from e


def _serialized(fn: _F) -> _F:
    """``fn`` reads, changes and saves the kubeconfig (``path=`` or the user's) under its lock."""
    signature = inspect.signature(fn)

    @functools.wraps(fn)
    def run(*args: Any, **kw: Any) -> Any:
        path = signature.bind(*args, **kw).arguments.get("path")
        with _locked(path):
            return fn(*args, **kw)
    return run  # type: ignore[return-value]


def save(doc: dict[str, Any], path: Path | None = None) -> None:
    """Write ``doc`` to the kubeconfig's target file at once (temp file + rename)."""
    p = _target(path or user_kubeconfig_path())
    p.parent.mkdir(parents=True, exist_ok=True)
    # mkstemp: a new random name opened O_CREAT|O_EXCL with mode 0600
    fd, tmp = tempfile.mkstemp(prefix=f"{p.name}.vkube-tmp.", dir=p.parent)
    try:
        with os.fdopen(fd, "w") as f:
            yamlio.dump(doc, f, sort_keys=False)
        os.replace(tmp, p)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def current_context(path: Path | None = None) -> str | None:
    return load(path).get("current-context") or None


def _upsert(items: list[dict[str, Any]], name: str, key: str, value: dict[str, Any]) -> None:
    for it in items:
        if it.get("name") == name:
            it[key] = value
            return
    items.append({"name": name, key: value})


def _drop(items: list[dict[str, Any]], name: str) -> None:
    items[:] = [it for it in items if it.get("name") != name]


def entry(cluster: dict[str, Any], user: dict[str, Any], ctx: str) -> dict[str, Any]:
    """A standalone kubeconfig with one context (for ``connect --print``)."""
    return {"apiVersion": "v1", "kind": "Config", "preferences": {},
            "clusters": [{"name": ctx, "cluster": cluster}],
            "users": [{"name": ctx, "user": user}],
            "contexts": [{"name": ctx, "context": {"cluster": ctx, "user": ctx}}],
            "current-context": ctx}


def cluster_and_user(data_dir: Path, server: str | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """The virtual API server's cluster entry (address, embedded CA) and admin user entry
    (embedded client certificate and key), from the kubeconfig ``vkube serve`` wrote;
    ``server`` replaces the address (the certificate must name it)."""
    try:
        doc = yamlio.load((data_dir / "kubeconfig").read_text()) or {}
        cluster = dict(doc["clusters"][0]["cluster"])
        user = dict(doc["users"][0]["user"])
        cluster["server"]  # noqa: B018 - a kubeconfig without a server is not written yet
    except (FileNotFoundError, KeyError, IndexError, TypeError) as e:
        raise CLIError(f"the control plane has not written {data_dir / 'kubeconfig'} yet — "
                       "check `vkube list` and `vkube logs`") from e
    if server:
        cluster["server"] = server
    return cluster, user


@_serialized
def add_context(ctx: str, cluster: dict[str, Any], user: dict[str, Any], *, switch: bool) -> None:
    """Add (or refresh) cluster, user and context ``ctx``; with ``switch`` make it current and
    remember the previously current context (another virtual cluster's too)."""
    doc = load()
    _upsert(doc["clusters"], ctx, "cluster", cluster)
    _upsert(doc["users"], ctx, "user", user)
    _upsert(doc["contexts"], ctx, "context", {"cluster": ctx, "user": ctx})
    if switch:
        prev = _current_in(doc)
        if prev and prev != ctx:
            _remember(prev)
        doc["current-context"] = ctx
    save(doc)


@_serialized
def add_entry(entry: dict[str, Any], *, switch: bool) -> None:
    """Merge a standalone one-context kubeconfig (``entry``) into the user's, as
    ``add_context`` does (its cluster entry may carry a CA, its context a namespace)."""
    doc = load()
    ctx = entry["current-context"]
    _upsert(doc["clusters"], ctx, "cluster", entry["clusters"][0]["cluster"])
    _upsert(doc["users"], ctx, "user", entry["users"][0]["user"])
    _upsert(doc["contexts"], ctx, "context", entry["contexts"][0]["context"])
    if switch:
        prev = _current_in(doc)
        if prev and prev != ctx:
            _remember(prev)
        doc["current-context"] = ctx
    save(doc)


@_serialized
def remove_context(ctx: str, path: Path | None = None) -> bool:
    """Remove cluster, user and context ``ctx`` from ``path`` (default: the user's file); if
    it was current, switch back to the remembered context (else the embedded host's). Returns
    whether it was current."""
    path = path or user_kubeconfig_path()
    if not path.exists():
        return False
    doc = load(path)
    if not any(c.get("name") == ctx for c in doc["contexts"]):
        return False
    for key in ("clusters", "users", "contexts"):
        _drop(doc[key], ctx)
    was_current = doc.get("current-context") == ctx
    if was_current:
        doc["current-context"] = _restorable(doc, path, ctx) or _host_context_in(doc) or ""
    save(doc, path)
    return was_current


@_serialized
def switch_back() -> str | None:
    """Make the remembered previous context current again, or else the embedded host's
    context (as after ``kind create cluster``); returns it (None: nothing to switch to)."""
    doc = load()
    prev = _restorable(doc, None, _current_in(doc)) or _host_context_in(doc)
    if prev is None:
        return None
    doc["current-context"] = prev
    save(doc)
    return prev


#: the embedded host's context in the user's kubeconfig (kind names its contexts kind-NAME);
#: not ``vkube_``-prefixed: it is a host, not a virtual cluster
HOST_CONTEXT = "vkube-host"


def _host_context_in(doc: dict[str, Any]) -> str | None:
    names = {c.get("name") for c in doc.get("contexts") or []}
    return HOST_CONTEXT if HOST_CONTEXT in names else None


@_serialized
def add_host_context(host_kubeconfig: Path) -> bool:
    """Copy the embedded host's kubeconfig (current context) into the user's file as context
    ``vkube-host``, refreshed when the host's address or credentials changed. Does not switch.
    Returns whether the user's file changed."""
    try:
        src = yamlio.load(host_kubeconfig.read_text()) or {}
        cur = src.get("current-context")
        ctx = next(c["context"] for c in src["contexts"] if c.get("name") == cur)
        cluster = next(c["cluster"] for c in src["clusters"] if c.get("name") == ctx["cluster"])
        user = next((u["user"] for u in src.get("users") or [] if u.get("name") == ctx.get("user")),
                    {})
    except (OSError, yaml.YAMLError, KeyError, StopIteration, TypeError, AttributeError):
        return False
    # file references are relative to the host's kubeconfig: make them hold in the user's file
    base = host_kubeconfig.resolve().parent
    for entry, keys in ((cluster, ("certificate-authority",)),
                        (user, ("client-certificate", "client-key", "tokenFile"))):
        for k in keys:
            if isinstance(entry.get(k), str) and not os.path.isabs(entry[k]):
                entry[k] = str(base / entry[k])
    doc = load()
    want = {"clusters": ("cluster", cluster), "users": ("user", user),
            "contexts": ("context", {"cluster": HOST_CONTEXT, "user": HOST_CONTEXT})}
    have = {key: next((it.get(field) for it in doc[key] if it.get("name") == HOST_CONTEXT), None)
            for key, (field, _) in want.items()}
    if all(have[key] == value for key, (_, value) in want.items()):
        return False
    for key, (field, value) in want.items():
        _upsert(doc[key], HOST_CONTEXT, field, value)
    save(doc)
    return True


@_serialized
def unset_current() -> None:
    doc = load()
    doc["current-context"] = ""
    save(doc)


def _other_files(path: Path | None = None) -> list[Path]:
    """The other files of ``$KUBECONFIG``, which kubectl merges with the first (vkube writes
    only the first)."""
    env = os.environ.get("KUBECONFIG") or ""
    first = (path or user_kubeconfig_path()).expanduser().resolve()
    out = []
    for p in env.split(os.pathsep):
        if p and Path(p).expanduser().resolve() != first and Path(p).expanduser() not in out:
            out.append(Path(p).expanduser())
    return out


def _others(path: Path | None = None) -> list[dict[str, Any]]:
    docs = []
    for p in _other_files(path):
        with contextlib.suppress(OSError, yaml.YAMLError, CLIError):
            docs.append(load(p))
    return docs


def _current_in(doc: dict[str, Any]) -> str | None:
    """The current context as kubectl sees it: the first file that sets one wins."""
    for d in [doc, *_others()]:
        if d.get("current-context"):
            return str(d["current-context"])
    return None


def _restorable(doc: dict[str, Any], path: Path | None = None, leaving: str | None = None) -> str | None:
    """The most recently remembered context that still exists in any ``$KUBECONFIG`` file
    and is not the one being left; it and those after it are forgotten."""
    names = {c.get("name") for d in [doc, *_others(path)] for c in d.get("contexts") or []}
    names.discard(leaving)
    stack = _remembered(path)
    while stack:
        prev = stack.pop()
        if prev in names:
            _store(path, stack)
            return prev
    _store(path, stack)
    return None


def _memory_file() -> Path:
    return state.home() / "previous-context.json"


def _memory() -> dict[str, Any]:
    try:
        mem = json.loads(_memory_file().read_text())
    except (FileNotFoundError, ValueError):
        return {}
    return mem if isinstance(mem, dict) else {}


def _key(path: Path | None) -> str:
    return str((path or user_kubeconfig_path()).resolve())


def _store(path: Path | None, stack: list[str]) -> None:
    mem = _memory()
    if mem.get(_key(path)) == stack:
        return
    mem[_key(path)] = stack
    f = _memory_file()
    f.parent.mkdir(parents=True, exist_ok=True)
    f.write_text(json.dumps(mem, indent=2) + "\n")


def _remember(ctx: str) -> None:
    """Per kubeconfig file (several users of one VKUBE_HOME may point at different files), the
    contexts switched away from, most recent last: ``connect a``, ``connect b``,
    ``disconnect`` returns to ``a``, ``disconnect`` again to what was current before ``a``."""
    stack = [c for c in _remembered() if c != ctx]
    _store(None, [*stack, ctx][-16:])


def _remembered(path: Path | None = None) -> list[str]:
    value = _memory().get(_key(path))
    if isinstance(value, str):  # an earlier version's single context
        return [value]
    return [str(v) for v in value] if isinstance(value, list) else []
