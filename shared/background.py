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
