"""What every long-running vkube process shares: logging, uvloop, SIGTERM/SIGINT → stop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Awaitable, Callable


def run_async(main: Callable[[], Awaitable[int]]) -> int:
    """Run ``main`` on uvloop (when installed) with the usual log format; Ctrl-C is exit 0."""
    # VKUBE_LOG_TAG: which of several processes sharing one log wrote a line (HA replicas)
    tag = os.environ.get("VKUBE_LOG_TAG")
    logging.basicConfig(level=os.environ.get("VKUBE_LOG_LEVEL", "INFO"),
                        format="%(asctime)s " + (f"[{tag}] " if tag else "")
                        + "%(levelname)s %(name)s: %(message)s")
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
