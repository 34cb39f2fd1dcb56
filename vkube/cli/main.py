"""``vkube``: virtual Kubernetes clusters. Each subcommand lives in its own module with a
``register(subparsers)`` function."""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys

_COMMANDS = ("vkube.cli.serve", "vkube.cli.host_cmd", "vkube.cli.lifecycle", "vkube.cli.snapshot_cmd")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vkube",
        description="Virtual Kubernetes clusters whose workloads run in one namespace of a host cluster.",
        epilog="examples:\n  vkube create my-vcluster\n  vkube list\n  vkube delete my-vcluster",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    from vkube import __version__

    parser.add_argument("--version", action="version", version=f"vkube {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _COMMANDS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        module.register(sub)
    return parser


def main(argv: list[str] | None = None, parser: argparse.ArgumentParser | None = None) -> int:
    """``parser``: one ``build_parser`` made earlier (the spare's, vkube.cli.spare)."""
    if argv is None:  # the command line: a lifecycle command runs in a child of the spare
        from vkube.cli.forward import forward

        code = forward(sys.argv[1:])
        if code is not None:
            return code
    from vkube.netio.trust import defer_aiohttp_trust_store

    # before anything imports aiohttp: its import-time trust-store loads (~0.1 s of CPU in
    # each of create's two processes) wait until a connection needs the system's CAs
    defer_aiohttp_trust_store()
    parser = parser or build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    from vkube.cli.state import secure_home

    secure_home()
    try:
        code = int(args.func(args) or 0)
        sys.stdout.flush()
        return code
    except BrokenPipeError:
        # the reader went away (``vkube list | head -1``): stop quietly, as a tool killed by
        # SIGPIPE does, and keep the interpreter's final flush from raising again
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 128 + signal.SIGPIPE


if __name__ == "__main__":
    sys.exit(main())
