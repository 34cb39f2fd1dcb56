"""When an answer means "later", and how long to wait: one policy for the client and every
component built on it.

client-go sends a request again, up to 10 times, when the server answers 429 (or 5xx) with a
``Retry-After`` header, after waiting that many seconds (``rest.checkWait``); its reflectors
back off exponentially on failures, but a throttled watch or list is not a failure that grows
the back-off. vkube follows that, with one difference: the wait is jittered (``Retry-After`` to
twice it), so the dozens of informers a starting cluster refused at the same moment do not
come back at the same moment and be refused again.

A *throttling* refusal is one a filter answers before any handler ran — kube-apiserver's APF
and max-in-flight, shared mode's fairness and watch caps: 429, ``Retry-After``, a plain-text
body ("Too many requests, please try again later."). Nothing happened, so any verb may be sent
again. A 429 a handler decided (an eviction a PodDisruptionBudget blocks) comes as a
``Status`` and is its caller's to handle.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TypeVar

from vkube.api import errors

__all__ = ["TRANSIENT", "MAX_RETRIES", "BACKOFF", "retry_after_of", "throttled", "jittered",
           "delay_for", "until_done"]

log = logging.getLogger(__name__)

T = TypeVar("T")

#: answers that mean "later", not "never": a 429 (APF, fairness), an API still starting or a
#: connection refused (503), a timeout (504)
TRANSIENT = (errors.TooManyRequests, errors.ServiceUnavailable, errors.Timeout)
#: client-go's ``maxRetries`` for throttled requests
MAX_RETRIES = 10
#: seconds between attempts after an answer without Retry-After (kopf's ``error_backoffs``)
BACKOFF = (0.05, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)


def retry_after_of(headers: Mapping[str, str] | None) -> int | None:
    """The ``Retry-After`` seconds of a reply, as client-go reads them (an integer, else none)."""
    if not headers:
        return None
    raw = headers.get("Retry-After")
    if raw is None:
        return None
    try:
        seconds = int(raw.strip())
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


def throttled(status: int, body_is_status: bool, retry_after: int | None) -> bool:
    """Is this reply a throttling filter's refusal (module docstring), safe to send again?"""
    return status == 429 and retry_after is not None and not body_is_status


def jittered(seconds: float) -> float:
    """``seconds`` to twice that, at random (client-go's jitter factor 1.0)."""
    return seconds * (1.0 + random.random())


def delay_for(exc: BaseException, failures: int, backoff: Sequence[float] = BACKOFF) -> tuple[float, bool]:
    """How long to wait before the next attempt after ``exc``, and whether the wait is the
    server's (``Retry-After``: does not count as a failure, so back-off does not grow)."""
    retry_after = getattr(exc, "retry_after", None)
    if retry_after is not None:
        return jittered(float(retry_after)), True
    if isinstance(exc, errors.TooManyRequests):  # a 429 without Retry-After: one second
        return jittered(1.0), True
    return backoff[min(failures, len(backoff) - 1)], False


async def until_done(call: Callable[[], Awaitable[T]], what: str,
                     backoff: Sequence[float] = BACKOFF) -> T:
    """``await call()`` until it answers something other than ``TRANSIENT``; start-up steps
    use it so that a 429, 503 or 504 delays a component instead of ending its cluster."""
    failures = 0
    while True:
        try:
            return await call()
        except TRANSIENT as e:
            delay, told = delay_for(e, failures, backoff)
            failures += 0 if told else 1
            log.warning("%s: %s %s (again in %.1fs)", what, type(e).__name__, e, delay)
            await asyncio.sleep(delay)
