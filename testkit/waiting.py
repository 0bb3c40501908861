"""The one way tests wait: poll a condition until it holds or a deadline passes."""

import asyncio
import time
from collections.abc import Awaitable, Callable

NOT_MET = "condition not met before the deadline"


async def eventually(
    predicate: Callable[[], Awaitable[bool]],
    timeout: float = 90.0,
    interval: float = 0.05,
    message: str = NOT_MET,
) -> None:
    """Return once `predicate()` is true; fail the test if `timeout` seconds pass first."""
    deadline = time.monotonic() + timeout
    while not await predicate():
        assert time.monotonic() < deadline, message
        await asyncio.sleep(interval)


def eventually_blocking(
    predicate: Callable[[], bool],
    timeout: float = 90.0,
    interval: float = 0.05,
    message: str = NOT_MET,
) -> None:
    """`eventually` for code outside an event loop (starting processes)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, message
        time.sleep(interval)
