"""The local queue: tasks of one process waiting for the same lock, first come first served.

Only the task at the head talks to Redis. When it leaves it hands its Redis lock straight
to the next task (one script instead of a release and an acquire) or, when that is not
possible, wakes it to acquire by itself. A task that gives up while a lock is being handed
to it still receives it, and passes it on through `on_abandon`.
"""

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass
class Turn(Generic[T]):
    owner: str
    handed: "asyncio.Future[T | None]"
    reserved: bool = False  # a hand-over to this turn is in flight: it cannot withdraw


class LocalQueue(Generic[T]):
    def __init__(self) -> None:
        self._queues: dict[str, deque[Turn[T]]] = {}
        self._abandoned: set[asyncio.Task] = set()

    async def enter(
        self,
        name: str,
        owner: str,
        timeout: float | None,
        on_abandon: Callable[[T | None], Awaitable[None]],
    ) -> T | None:
        """Wait until this task heads the queue; what the previous head handed over, or None.

        Raises TimeoutError after `timeout` seconds. After a return the caller must call
        `leave(name, ...)` once, whatever happens next.
        """
        queue = self._queues.setdefault(name, deque())
        turn: Turn[T] = Turn(owner, asyncio.get_running_loop().create_future())
        queue.append(turn)
        if len(queue) == 1:
            return None
        try:
            await asyncio.wait({turn.handed}, timeout=timeout)
            if not turn.handed.done() and turn.reserved:
                await asyncio.shield(turn.handed)
        except asyncio.CancelledError:
            if turn.handed.done() or turn.reserved:
                self._abandon(turn, on_abandon)
            else:
                self._withdraw(name, turn)
            raise
        if not turn.handed.done():
            self._withdraw(name, turn)
            raise TimeoutError
        return turn.handed.result()

    def _abandon(self, turn: Turn[T], on_abandon: Callable[[T | None], Awaitable[None]]) -> None:
        async def pass_on() -> None:
            await on_abandon(await turn.handed)

        task = asyncio.create_task(pass_on())
        self._abandoned.add(task)
        task.add_done_callback(self._abandoned.discard)

    def _withdraw(self, name: str, turn: Turn[T]) -> None:
        turn.handed.cancel()
        queue = self._queues[name]
        queue.remove(turn)
        if not queue:
            del self._queues[name]

    def reserve_next(self, name: str) -> Turn[T] | None:
        """The task next in line, which can no longer withdraw; None if nobody waits."""
        queue = self._queues.get(name)
        if not queue or len(queue) < 2:
            return None
        queue[1].reserved = True
        return queue[1]

    def leave(self, name: str, handed: T | None = None) -> None:
        """The head leaves; the next task in line gets `handed`."""
        queue = self._queues[name]
        queue.popleft()
        if queue:
            queue[0].handed.set_result(handed)
        else:
            del self._queues[name]
