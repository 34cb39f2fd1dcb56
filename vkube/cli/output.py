"""Output made for people and scripts: progress steps (rich on a terminal, plain lines
otherwise), tables, JSON, and one error type whose message is a sentence with the fix."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TextIO

from vkube.api.errors import StatusError


class CLIError(Exception):
    """A user-facing failure: printed as one line on stderr, exit code ``code`` (1 error,
    2 usage)."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def read_user_file(path: str | os.PathLike[str], what: str, fix: str) -> str:
    """A file the user named (``-f``, a kubeconfig, …) as text. One that is missing, a
    directory, unreadable or not UTF-8 is one line naming ``what`` and ``path``, then ``fix``
    (the next thing to do), never a traceback."""
    try:
        return Path(path).expanduser().read_text(encoding="utf-8")
    except FileNotFoundError:
        why = "not found"
    except IsADirectoryError:
        why = "is a directory, not a file"
    except UnicodeDecodeError as e:
        why = f"is not UTF-8 text (byte {e.start} is 0x{e.object[e.start]:02x})"
    except OSError as e:
        why = f"cannot be read: {e.strerror or e}"
    raise CLIError(f"{what} {path} {why} — {fix}")


def is_tty(stream: TextIO | None = None) -> bool:
    s = stream or sys.stdout
    return bool(getattr(s, "isatty", lambda: False)())


class Progress:
    """``with progress.step("starting control plane") as done: ...; done("control plane ready")``.

    On a terminal a spinner runs while the step works and a green ✔ line replaces it; otherwise
    one plain line per finished step (stable for scripts and logs)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout
        self._console: Any = None
        if is_tty(self.stream):
            from rich.console import Console

            self._console = Console(file=self.stream, highlight=False)

    @contextlib.contextmanager
    def step(self, working: str) -> Iterator[Callable[[str], None]]:
        final: list[str] = []

        def done(message: str) -> None:
            final.append(message)

        if self._console is not None:
            from rich.markup import escape

            with self._console.status(escape(working) + " …"):
                try:
                    yield done
                except BaseException:
                    self._console.print(f"[red]✘[/red] {escape(working)}")
                    raise
            self._console.print(f"[green]✔[/green] {escape(final[-1] if final else working)}")
        else:
            yield done
            print(f"✔ {final[-1] if final else working}", file=self.stream, flush=True)

    def ok(self, message: str) -> None:
        """A finished step that needed no waiting."""
        if self._console is not None:
            from rich.markup import escape

            self._console.print(f"[green]✔[/green] {escape(message)}")
        else:
            print(f"✔ {message}", file=self.stream, flush=True)

    def info(self, message: str) -> None:
        if self._console is not None:
            self._console.print(message, markup=False)
        else:
            print(message, file=self.stream, flush=True)


def print_table(headers: list[str], rows: list[list[str]], stream: TextIO | None = None) -> None:
    """kubectl-style columns: upper-case headers, three spaces apart, no borders."""
    out = stream or sys.stdout
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(headers)]
    for line in [headers, *rows]:
        print("   ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip(), file=out)


def print_json(doc: Any, stream: TextIO | None = None) -> None:
    print(json.dumps(doc, indent=2, sort_keys=False), file=stream or sys.stdout)


def age(seconds: float) -> str:
    """kubectl's short ages: 45s, 3m, 2h, 5d."""
    s = max(0, int(seconds))
    if s < 120:
        return f"{s}s"
    if s < 3600 * 2:
        return f"{s // 60}m"
    if s < 86400 * 2:
        return f"{s // 3600}h"
    return f"{s // 86400}d"


def guarded(func: Callable[[Any], int | None]) -> Callable[[Any], int]:
    """Wrap a command: CLIError → its message on stderr and its exit code."""

    def run(args: Any) -> int:
        try:
            return int(func(args) or 0)
        except CLIError as e:
            print(f"error: {e}", file=sys.stderr)
            return e.code
        except StatusError as e:  # the host (or virtual) API server refused something
            print(f"error: the API server answered {e.code} {e.reason}: {e} — check the host "
                  "cluster and your permissions there", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return 130

    run.__name__ = getattr(func, "__name__", "command")
    run.__doc__ = func.__doc__
    return run
