"""Per-cluster log files in shared mode (``vkube logs NAME`` of a shared cluster).

A dedicated cluster's process writes one log, all of it that cluster's. In the shared process
every cluster's components log through the same module loggers, so a record is attributed by
the task that emitted it: ``SharedServer`` sets :data:`CLUSTER` before it starts a cluster
(every task the cluster creates copies that context) and while it serves that cluster's
request. :class:`ClusterLogs` is a handler that appends each attributed record to that
cluster's own file as well — the shared log keeps every line, for the operator; a tenant's
log holds only its cluster's."""

from __future__ import annotations

import contextlib
import contextvars
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import IO

#: the shared-mode cluster the current task works for (None: the shared server itself)
CLUSTER: contextvars.ContextVar[str | None] = contextvars.ContextVar("vkube_cluster", default=None)



@contextlib.contextmanager
def attributed(name: str) -> Iterator[None]:
    """Records (and tasks created) inside are ``name``'s."""
    token = CLUSTER.set(name)
    try:
        yield
    finally:
        CLUSTER.reset(token)


FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class ClusterLogs(logging.Handler):
    """``logs.attach()`` on the root logger; ``logs.route(name, path)`` while the cluster runs;
    ``logs.unroute(name)`` closes its file; ``logs.detach()``. Files are opened on a cluster's
    first record, so a quiet or sleeping cluster holds no descriptor."""

    def __init__(self, level: int = logging.NOTSET) -> None:
        super().__init__(level)
        self.setFormatter(logging.Formatter(FORMAT))
        self._paths: dict[str, Path] = {}
        self._files: dict[str, IO[str]] = {}

    def route(self, name: str, path: Path) -> None:
        if self._paths.get(name) != path:
            self.unroute(name)
            self._paths[name] = path

    def unroute(self, name: str) -> None:
        self._paths.pop(name, None)
        f = self._files.pop(name, None)
        if f is not None:
            f.close()

    def close_file(self, name: str) -> None:
        """Close the cluster's file (it sleeps); the next record opens it again."""
        f = self._files.pop(name, None)
        if f is not None:
            f.close()

    def emit(self, record: logging.LogRecord) -> None:
        name = CLUSTER.get()
        if name is None:
            return
        path = self._paths.get(name)
        if path is None:
            return
        try:
            f = self._files.get(name)
            if f is None:
                path.parent.mkdir(parents=True, exist_ok=True)
                f = self._files[name] = open(path, "a", encoding="utf-8")  # noqa: SIM115
            f.write(self.format(record) + "\n")
            f.flush()
        except Exception:
            self.handleError(record)

    def attach(self) -> None:
        logging.getLogger().addHandler(self)

    def detach(self) -> None:
        logging.getLogger().removeHandler(self)
        for name in list(self._files):
            self._files.pop(name).close()
        self._paths.clear()

    def close(self) -> None:
        self.detach()
        super().close()
