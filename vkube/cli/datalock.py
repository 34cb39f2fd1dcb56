"""One process per data directory: the embedded host, a dedicated ``vkube serve`` and the shared
server each hold an exclusive ``flock`` on a file in their directory for their whole life, so a
second one started on it (two ``vkube create`` at once, a hand-run ``serve``) refuses to run
instead of serving the same ``state.db`` next to the first. The kernel drops the lock when the
holder exits, however it exits (``kill -9`` included): a stale lock file never blocks a start.
Starters take a second lock (``starting``) around check-then-spawn, so concurrent commands wait
and then use the process the first one started. Standard library only."""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

LOCK_NAME = "owner.lock"


class Busy(Exception):
    """Another live process holds the directory (its pid, when it wrote one)."""

    def __init__(self, directory: Path, pid: int | None) -> None:
        self.directory, self.pid = directory, pid
        who = f" (pid {pid})" if pid else ""
        super().__init__(f"{directory} is in use by another vkube process{who}")


def holder(directory: Path) -> int | None:
    """The pid written by the process that holds (or last held) ``directory``."""
    try:
        return int((directory / LOCK_NAME).read_text().strip() or 0) or None
    except (FileNotFoundError, ValueError):
        return None


def hold(directory: Path, wait: float = 0.0) -> IO[str]:
    """Take ``directory``'s lock for this process (keep the returned file open as long as the
    process serves it). ``wait``: seconds to wait for a holder that is on its way out (a
    restart right after a stop); then ``Busy``."""
    directory.mkdir(parents=True, exist_ok=True)
    f = open(directory / LOCK_NAME, "a+")
    deadline = time.monotonic() + wait
    while True:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() >= deadline:
                f.close()
                raise Busy(directory, holder(directory)) from None
            time.sleep(0.1)
    f.seek(0)
    f.truncate()
    f.write(f"{os.getpid()}\n")
    f.flush()
    return f


def held(directory: Path) -> bool:
    """Whether a live process holds ``directory``'s lock (a probe: taken and dropped at once)."""
    try:
        f = open(directory / LOCK_NAME)
    except FileNotFoundError:
        return False
    with f:
        try:
            fcntl.flock(f, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(f, fcntl.LOCK_UN)
        return False


@contextlib.contextmanager
def starting(directory: Path) -> Iterator[None]:
    """Held by a command while it checks for and starts the process of ``directory``: a second
    command waits here, then finds the first one's process running."""
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / "start.lock", "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield
