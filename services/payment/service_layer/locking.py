"""How the payment service serialises work on one wallet: a Redis lock, or row locks.

RedisLocking holds a distributed lock around the work, and its lease's fencing token guards
the writes. DatabaseRowLocking holds nothing outside the database: the unit of work reads
wallets `SELECT ... FOR UPDATE` instead (`row_locks`).
"""

import contextlib
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Protocol

from shared.lock import Lease, LockService


class Held(Protocol):
    """What a strategy hands the unit of work: a fencing token and a liveness check."""

    @property
    def token(self) -> int | None: ...

    def ensure_held(self) -> None: ...


class Locking(Protocol):
    @property
    def row_locks(self) -> bool: ...

    def hold(self, name: str) -> AbstractAsyncContextManager[Held]: ...


@dataclass(frozen=True)
class RedisLocking:
    locks: LockService
    wait_time: float
    lease_time: float | None = None
    row_locks = False

    @contextlib.asynccontextmanager
    async def hold(self, name: str) -> AsyncIterator[Lease]:
        async with self.locks.hold(name, self.wait_time, self.lease_time) as lease:
            yield lease


class NotHeld:
    """No lock outside the database: no token, nothing that can be lost."""

    token: int | None = None

    def ensure_held(self) -> None:
        return None


class DatabaseRowLocking:
    row_locks = True

    @contextlib.asynccontextmanager
    async def hold(self, name: str) -> AsyncIterator[NotHeld]:
        yield NotHeld()
