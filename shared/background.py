"""A background loop: one asyncio task, started by `start()`, ended by `stop()`.

Composition roots start these last and stop them first, so a loop never runs while what it
uses is being opened or closed.
"""

import asyncio
import contextlib
from collections.abc import Callable, Coroutine
from typing import Any


class BackgroundLoop:
    """Subclasses write `_run`; it may end early through `pause()` when `stop()` is called."""

    task_name = "background-loop"

    def __init__(self) -> None:
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=self.task_name)

    async def stop(self) -> None:
        self._stopping.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def pause(self, seconds: float) -> None:
        """Sleep `seconds`, or less when `stop()` is called meanwhile."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    async def _run(self) -> None:
        raise NotImplementedError


async def set_within(event: asyncio.Event, seconds: float) -> bool:
    """Whether `event` is set within `seconds` (True at once if it is set already).

    A loop that another task ends sets an event and checks it after every await, rather
    than relying on the cancel alone: on Python 3.11 a cancel can be lost inside a library
    (redis-py sends each command under asyncio.wait_for, which returns a finished write
    instead of raising the cancel), and the loop would run on.
    """
    if event.is_set():
        return True
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await event.wait()
    return event.is_set()


class Deferred:
    """A background task started only once it is due, `delay` seconds from now.

    A lease renewer or a lock watchdog has nothing to do before its first renewal, and most
    holders finish long before that: until then this is a timer, and `cancel()` costs a timer
    cancel instead of a task created, cancelled and awaited on every request. The loop it
    starts must still stop on its holder's flag (see set_within), not on the cancel alone.
    """

    def __init__(
        self, delay: float, start: Callable[[], Coroutine[Any, Any, None]], name: str
    ) -> None:
        self.task: asyncio.Task[None] | None = None
        self._start = start
        self._name = name
        self._cancelled = False
        self._timer = asyncio.get_running_loop().call_later(delay, self._due)

    def _due(self) -> None:
        if not self._cancelled:
            self.task = asyncio.create_task(self._start(), name=self._name)

    def cancel(self) -> None:
        self._cancelled = True
        self._timer.cancel()
        if self.task is not None:
            self.task.cancel()

    def done(self) -> bool:
        """Cancelled before it was due, or its task has ended."""
        if self.task is None:
            return self._cancelled
        return self.task.done()

    async def stop(self) -> None:
        """Cancel, and wait for the task if it had started; a cancel of the caller propagates."""
        self.cancel()
        if self.task is not None:
            await asyncio.gather(self.task, return_exceptions=True)
