"""How a service serialises work on one key: a Redis lock, or the database's row locks."""

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from shared.lock.client import Lease, LockService


@dataclass
class RedisLocking:
    """Hold a Redis lock around the work; the lease's fencing token guards the writes."""

    service: LockService
    wait_time: float
    lease_time: float | None = None
    row_locks = False

    @contextlib.asynccontextmanager
    async def hold(self, name: str) -> AsyncIterator[Lease]:
        async with self.service.hold(name, self.wait_time, self.lease_time) as lease:
            yield lease


class NotHeld:
    """No lock outside the database: no token, nothing that can be lost."""

    token: int | None = None

    def ensure_held(self) -> None:
        return None


class DatabaseRowLocking:
    """No Redis: the unit of work takes `SELECT ... FOR UPDATE` row locks instead."""

    row_locks = True

    @contextlib.asynccontextmanager
    async def hold(self, name: str) -> AsyncIterator[NotHeld]:
        yield NotHeld()
