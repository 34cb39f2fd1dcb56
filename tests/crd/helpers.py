"""Helpers for the CRD integration tests: kubectl off the event loop, waiting for Established."""

from __future__ import annotations

import asyncio
import json
from typing import Any


async def run(cp: Any, *args: str, input: str | None = None, check: bool = True):  # noqa: ANN201
    return await asyncio.to_thread(cp.kubectl, *args, input=input, check=check)


async def install(cp: Any, crd: dict[str, Any]) -> None:
    """Apply a CRD and wait until kubectl sees it Established (as a user would)."""
    await run(cp, "apply", "-f", "-", input=json.dumps(crd))
    await run(cp, "wait", "--for=condition=Established", f"crd/{crd['metadata']['name']}", "--timeout=60s")


async def get_json(cp: Any, *args: str) -> dict[str, Any]:
    return json.loads((await run(cp, "get", *args, "-o", "json")).stdout)
