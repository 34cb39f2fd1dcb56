"""The lifecycle commands of virtual clusters: ``create connect disconnect list pause resume
delete describe logs render values``. This module only declares the command line; the work lives in
``ops`` (changes) and ``inspect_cmds`` (read-only views)."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Coroutine
from typing import Any

from vkube.cli.output import CLIError, guarded

_RAW = argparse.RawDescriptionHelpFormatter


def _bool(text: str) -> bool:
    v = text.strip().lower()
    if v in ("true", "yes", "1", "on"):
        return True
    if v in ("false", "no", "0", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, not {text!r}")


def run_coroutine(coro: Coroutine[Any, Any, int]) -> int:
    """Run a command's coroutine on uvloop (asyncio is imported only here: ~40 ms)."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover
        import asyncio

        return asyncio.run(_quiet_transports(coro))
    return uvloop.run(_quiet_transports(coro))


async def _quiet_transports(coro: Coroutine[Any, Any, int]) -> int:
    """``coro`` with the loop's reports of broken connections kept off the terminal: a
    connection that fails mid-command (Ctrl-C while a TLS request is in flight: "Fatal error
    on SSL protocol" and a traceback) already fails the request that used it, which the
    command reports in one line; anything else still goes to the default handler."""
    import asyncio

    loop = asyncio.get_running_loop()

    def handler(loop: Any, context: dict[str, Any]) -> None:
        if "transport" in context or "protocol" in context:
            return
        loop.default_exception_handler(context)

    loop.set_exception_handler(handler)
    return await coro


def _async(fn: Callable[[argparse.Namespace], Coroutine[Any, Any, int]]) -> Callable[[Any], int]:
    def run(args: argparse.Namespace) -> int:
        return run_coroutine(fn(args))
    run.__name__ = fn.__name__
    return guarded(run)


def _lazy(module: str, name: str) -> Callable[[Any], int]:
    """Import the command's module only when it runs: `vkube serve` must start fast."""

    async def call(args: argparse.Namespace) -> int:
        import importlib

        return await getattr(importlib.import_module(module), name)(args)

    call.__name__ = name
    return _async(call)


def _op(name: str) -> Callable[[Any], int]:
    return _lazy("vkube.cli.ops", name)


def _view(name: str) -> Callable[[Any], int]:
    return _lazy("vkube.cli.inspect_cmds", name)


def _create(args: argparse.Namespace) -> int:
    """Synchronous up to the spawn of the control plane: see ``create_cmd``."""
    from vkube.cli import create_cmd

    return create_cmd.main(args)


def _host_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host-kubeconfig", metavar="FILE", default=None,
                   help="kubeconfig of the host cluster (default: current context if reachable, "
                        "else the embedded host)")
    p.add_argument("--host-context", metavar="CTX", default=None,
                   help="context in the host kubeconfig")


def _cmd(sub: Any, name: str, help: str, examples: str, func: Callable[[Any], int],
         description: str | None = None) -> argparse.ArgumentParser:
    p = sub.add_parser(name, help=help, description=description or help,
                       epilog="examples:\n" + examples, formatter_class=_RAW)
    p.set_defaults(func=func)
    return p


def register(sub: Any) -> None:
    p = _cmd(sub, "create", "create a virtual cluster (or change one with --upgrade)",
             "  vkube create my-vcluster\n"
             "  vkube create team-a -n tenants-a -f values.yaml --connect=false\n"
             "  vkube create my-vcluster --upgrade -f nodes.yaml\n"
             "  vkube create my-vcluster --host-kubeconfig ~/.kube/prod --host-context admin",
             guarded(_create),
             "Start a virtual cluster's control plane as a supervised background process, "
             "wait until it is ready and (by default) switch kubectl to it. With no host "
             "given, the current kubeconfig context is used if it answers, else the embedded "
             "host is started. Every values key, with its default and meaning: `vkube values`.")
    p.add_argument("name", metavar="NAME")
    p.add_argument("-n", "--namespace", default=None,
                   help="host namespace for its workloads (default vkube-NAME)")
    p.add_argument("-f", "--values", action="append", default=[], metavar="FILE",
                   help="values.yaml (repeatable; later files win); the keys: `vkube values`")
    _host_flags(p)
    p.add_argument("--connect", type=_bool, nargs="?", const=True, default=None,
                   metavar="true|false", help="add and switch to context vkube_NAME (default "
                   "true; with --upgrade false: the current context stays)")
    p.add_argument("--expose", action="store_true",
                   help="make the API server reachable from outside the host namespace (a host "
                        "Service of type LoadBalancer, NodePort without one; on the embedded "
                        "host a loopback port); the kubeconfig uses that address")
    p.add_argument("--upgrade", action="store_true",
                   help="apply new values to an existing virtual cluster, keeping its objects")
    p.add_argument("--shared", action="store_true",
                   help="serve it in the shared server (one process for many clusters, started "
                        "on first use) at https://HOST:PORT/clusters/NAME "
                        "(= controlPlane.mode: shared)")
    p.add_argument("--in-cluster", action="store_true",
                   help="run the control plane inside the host (applies `vkube render`)")
    p.add_argument("--tenancy", choices=("vcluster", "namespace"), default="vcluster",
                   help="vcluster (default): its own control plane; namespace: a host namespace "
                        "with a tenant admin account, quota and guard rails (-n: its name, "
                        "default NAME)")
    p.add_argument("--isolate", action="store_true",
                   help="guard rails on the host namespace: Pod Security enforced by the "
                        "syncer, ResourceQuota, LimitRange, NetworkPolicies "
                        "(= isolation.enabled: true)")
    p.add_argument("--pod-security", choices=("baseline", "restricted", "privileged"),
                   default=None, help="Pod Security level with --isolate: baseline (default) "
                   "or restricted; privileged is refused (isolation always rejects host "
                   "access)")
    p.add_argument("--cpu", metavar="C", default=None,
                   help="quota CPU with --isolate: limits C, requests C/2 (default 20)")
    p.add_argument("--memory", metavar="M", default=None,
                   help="quota memory with --isolate: limits M, requests M/2 (default 40Gi)")

    p = _cmd(sub, "connect", "switch kubectl to a virtual cluster (or print its kubeconfig)",
             "  vkube connect my-vcluster\n"
             "  vkube connect my-vcluster --print > vc.yaml\n"
             "  vkube connect my-vcluster --kube-config-context-name dev", _op("connect"))
    p.add_argument("name", metavar="NAME")
    p.add_argument("--print", action="store_true", help="print a kubeconfig instead of switching")
    p.add_argument("--kube-config-context-name", metavar="X", default=None,
                   help="context name to use (default vkube_NAME)")
    p.add_argument("--server", metavar="URL", default=None,
                   help="API server address to put in the kubeconfig")

    _cmd(sub, "disconnect", "switch kubectl back to the context used before `vkube connect`",
         "  vkube disconnect", _op("disconnect"))

    p = _cmd(sub, "list", "list virtual clusters (local and on the host)",
             "  vkube list\n  vkube list -o json | jq -r '.[].name'", _view("list_"))
    p.add_argument("-o", "--output", choices=("table", "json"), default="table")
    _host_flags(p)

    p = _cmd(sub, "pause", "stop a virtual cluster and remove its workloads from the host "
                           "(data kept)", "  vkube pause my-vcluster", _op("pause"))
    p.add_argument("name", metavar="NAME")
    p = _cmd(sub, "resume", "start a paused virtual cluster again",
             "  vkube resume my-vcluster", _op("resume"))
    p.add_argument("name", metavar="NAME")

    p = _cmd(sub, "sleep", "put a shared virtual cluster to sleep: host workloads to zero, "
                           "memory freed, data kept; the next request wakes it",
             "  vkube sleep my-vcluster", _op("sleep"))
    p.add_argument("name", metavar="NAME")
    p = _cmd(sub, "wake", "wake a sleeping virtual cluster (any request to it does too)",
             "  vkube wake my-vcluster", _op("wake"))
    p.add_argument("name", metavar="NAME")

    p = _cmd(sub, "delete", "delete a virtual cluster: control plane, synced objects, host "
                            "namespace, data and context",
             "  vkube delete my-vcluster\n  vkube delete my-vcluster --keep-namespace\n"
             "  vkube delete my-vcluster --force   # the host is gone for good",
             _op("delete"))
    p.add_argument("name", metavar="NAME")
    p.add_argument("--keep-namespace", action="store_true",
                   help="keep the host namespace (vkube only deletes one it created)")
    p.add_argument("--force", action="store_true",
                   help="delete even when the host does not answer (what it holds of the "
                        "cluster is left there and named)")
    _host_flags(p)

    p = _cmd(sub, "describe", "show a virtual cluster's configuration, address, sync counts "
                              "and resource use",
             "  vkube describe my-vcluster\n  vkube describe my-vcluster -o json",
             _view("describe"))
    p.add_argument("name", metavar="NAME")
    p.add_argument("-o", "--output", choices=("text", "json"), default="text")

    p = _cmd(sub, "logs", "print a virtual cluster's control plane logs",
             "  vkube logs my-vcluster\n  vkube logs my-vcluster --tail 50 --follow\n  vkube logs my-vcluster --audit",
             _view("logs"))
    p.add_argument("name", metavar="NAME")
    p.add_argument("--tail", type=int, default=None, metavar="N", help="only the last N lines")
    p.add_argument("--follow", action="store_true", help="keep printing new lines")
    p.add_argument("--audit", action="store_true",
                   help="the API server's audit log instead (audit.k8s.io/v1 events, JSON lines)")

    p = _cmd(sub, "render", "print manifests that run a virtual cluster inside a host cluster",
             "  vkube render my-vcluster -f values.yaml | kubectl apply -f -\n"
             "  vkube render my-vcluster -n tenants --image registry.local/vkube:dev",
             guarded(_render))
    p.add_argument("name", metavar="NAME")
    p.add_argument("-n", "--namespace", default=None, help="host namespace (default vkube-NAME)")
    p.add_argument("-f", "--values", action="append", default=[], metavar="FILE")
    p.add_argument("--image", default=None, help="control plane image (built by the Dockerfile)")
    p.add_argument("--storage", default="5Gi", help="size of the data volume (default 5Gi)")

    _cmd(sub, "values", "print every values key with its default and meaning (commented YAML)",
         "  vkube values\n  vkube values > values.yaml   # edit, then: vkube create NAME -f "
         "values.yaml", guarded(_values))


def _values(args: argparse.Namespace) -> int:
    from vkube.syncer.values import schema_yaml

    print(schema_yaml(), end="")
    return 0


def _render(args: argparse.Namespace) -> int:
    from vkube.cli import render, state, values_files

    name = state.validate_name(args.name)
    values = values_files.load_files(args.values) if args.values else {}
    if args.namespace and not state._DNS_LABEL.match(args.namespace):
        raise CLIError(f"invalid host namespace {args.namespace!r}: it must be a DNS label")
    render.refuse_shared_mode(values, "`vkube render`")
    render.refuse_long_name(name, "`vkube render`")
    render.dump(render.manifests(name, args.namespace or f"vkube-{name}", values,
                                 image=args.image or render.DEFAULT_IMAGE, storage=args.storage))
    return 0
