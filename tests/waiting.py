"""The one way tests wait: poll a condition until it holds or a deadline passes."""

import asyncio
import time
from collections.abc import Awaitable, Callable


async def eventually(
    predicate: Callable[[], Awaitable[bool]], timeout: float = 90.0, interval: float = 0.05
) -> None:
    """Return once `predicate()` is true; fail the test if `timeout` seconds pass first."""
    deadline = time.monotonic() + timeout
    while not await predicate():
        assert time.monotonic() < deadline, "condition not met before the deadline"
        await asyncio.sleep(interval)
