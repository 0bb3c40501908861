"""What every use-case class shares: the locking strategy, units of work, the clock."""

import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime
from typing import Protocol

from services.payment.adapters.uow import UnitOfWork
from shared.lock import Held


class Locking(Protocol):
    row_locks: bool

    def hold(self, name: str) -> AbstractAsyncContextManager[Held]: ...


UnitOfWorkFactory = Callable[[int | None, bool], UnitOfWork]


def utcnow() -> datetime:
    """Naive UTC, as DATETIME columns store it."""
    return datetime.now(UTC).replace(tzinfo=None)


class LockedService:
    """Gives @distributed_lock methods their lock and their unit of work."""

    def __init__(
        self,
        locking: Locking,
        unit_of_work_factory: UnitOfWorkFactory,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.locking = locking
        self.uow_factory = unit_of_work_factory
        self.clock = clock
        self.events_topic = "payment.events"
        self.events_committed: Callable[[], None] = lambda: None  # e.g. wake the outbox relay

    def hold_lock(self, name: str) -> AbstractAsyncContextManager[Held]:
        return self.locking.hold(name)

    def unit_of_work(self, held: Held) -> UnitOfWork:
        return self.uow_factory(held.token, self.locking.row_locks)

    @contextlib.asynccontextmanager
    async def reading(self) -> AsyncIterator[UnitOfWork]:
        """A unit of work outside any lock: for reads and for writes that need none."""
        async with self.uow_factory(None, False) as uow:
            yield uow
