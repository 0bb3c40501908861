"""Last releases that missed a lock node, run again until the node has them.

A hold's last release that a node did not get (down, or too slow) leaves the hold on it:
the node keeps it until its lease runs out, or brings it back from its data when it comes
back, and with another such node it makes a majority held by nobody, for a whole lease.
Waiters of other processes cannot tell it from a hold in use (its process lives), so the
process that released it finishes the job: every `retry_after` seconds it runs, on each
node it owes, the drops it owes there, until the node answers or the hold's lease would
have run out anyway. An owner id belongs to one hold (client.py) and no task uses it after
that hold's release, so a drop never robs a live holder, this process's later holds of the
same lock included, and it leaves the fence counter alone.
"""

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from shared.infra_errors import DEPENDENCY_ERRORS

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Drop:
    key: str
    channel: str
    owner: str


RunDrop = Callable[[int, Drop], Awaitable[None]]  # raises a dependency error if not run


class Janitor:
    def __init__(self, run: RunDrop, retry_after: float, on_missed: Callable[[], None]) -> None:
        self.run = run
        self.retry_after = retry_after
        self.on_missed = on_missed
        self._owed: dict[int, dict[Drop, float]] = {}  # node -> drop -> give up at (monotonic)
        self._task: asyncio.Task[None] | None = None

    def owe(self, node: int, drop: Drop, lease_ms: int) -> None:
        """Run `drop` on `node` later; the hold ends by itself within `lease_ms` anyway."""
        self.on_missed()
        until = time.monotonic() + lease_ms / 1000
        owed = self._owed.setdefault(node, {})
        owed[drop] = max(until, owed.get(drop, until))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._work(), name="lock-janitor")

    def owed(self) -> int:
        return sum(len(drops) for drops in self._owed.values())

    async def _work(self) -> None:
        while self._owed:
            await asyncio.sleep(self.retry_after)  # a node that missed a release is away
            for node in list(self._owed):
                drops = self._owed[node]
                now = time.monotonic()
                for drop in [d for d, until in drops.items() if until <= now]:
                    del drops[drop]  # its lease has run out on the node by now
                await self._run_on(node, drops)
                if not drops:
                    del self._owed[node]

    async def _run_on(self, node: int, drops: dict[Drop, float]) -> None:
        done = 0
        for drop in list(drops):
            try:
                await self.run(node, drop)
            except DEPENDENCY_ERRORS:
                break  # still away: the next round tries again
            drops.pop(drop, None)
            done += 1
        if done:
            log.info("lock node %d: released %d holds whose last release it had missed",
                     node + 1, done)  # fmt: skip

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
