"""A background loop: one asyncio task, started by `start()`, ended by `stop()`.

Composition roots start these last and stop them first, so a loop never runs while what it
uses is being opened or closed.
"""

import asyncio
import contextlib


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
