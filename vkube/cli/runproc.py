"""What every long-running vkube process shares: logging, uvloop, SIGTERM/SIGINT → stop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Awaitable, Callable


#: third-party loggers whose INFO lines say nothing to a vkube user (kept at DEBUG)
QUIET_LIBRARIES = ("celpy",)


def configure_logging() -> None:
    """The usual log format and level; libraries' internals stay out of the log."""
    # VKUBE_LOG_TAG: which of several processes sharing one log wrote a line (HA replicas)
    tag = os.environ.get("VKUBE_LOG_TAG")
    logging.basicConfig(level=os.environ.get("VKUBE_LOG_LEVEL", "INFO"),
                        format="%(asctime)s " + (f"[{tag}] " if tag else "")
                        + "%(levelname)s %(name)s: %(message)s")
    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        for name in QUIET_LIBRARIES:  # their INFO is their internals (celpy: each transpile)
            logging.getLogger(name).setLevel(logging.WARNING)


def run_async(main: Callable[[], Awaitable[int]]) -> int:
    """Run ``main`` on uvloop (when installed) with the usual log format; Ctrl-C is exit 0."""
    configure_logging()
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover
        pass
    try:
        return asyncio.run(main())  # type: ignore[arg-type]
    except KeyboardInterrupt:
        return 0


def stop_event() -> asyncio.Event:
    """An event set by SIGTERM or SIGINT (call inside the running loop)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    return stop
