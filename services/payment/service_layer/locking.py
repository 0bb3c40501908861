"""How the payment service serialises work on one wallet: a Redis lock, or row locks.

RedisLocking holds a distributed lock around the work, and its lease's fencing token guards
the writes. DatabaseRowLocking holds nothing outside the database: the unit of work reads
wallets `SELECT ... FOR UPDATE` instead (`row_locks`). FallbackLocking is the Redis lock
that, when the lock service cannot be reached (not when the lock is busy), lets the work
go on under the wallet's row lock: a Redis holder's write still checks its fencing token,
a row-lock holder blocks everyone else on the row, and every write compares the balance it
read, so holders of either kind never lose an update.
"""

import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Protocol

from shared.infra_errors import DEPENDENCY_ERRORS
from shared.lock import Lease, LockService

log = logging.getLogger(__name__)


class Held(Protocol):
    """What a strategy hands the unit of work: a fencing token, whether to lock rows, and a
    liveness check."""

    @property
    def token(self) -> int | None: ...

    @property
    def row_locks(self) -> bool: ...

    def ensure_held(self) -> None: ...


class Locking(Protocol):
    def hold(self, name: str) -> AbstractAsyncContextManager[Held]: ...


@dataclass(frozen=True)
class Leased:
    """A Redis lease: its token fences the writes; rows are read without locks."""

    lease: Lease
    row_locks = False

    @property
    def token(self) -> int | None:
        return self.lease.token

    def ensure_held(self) -> None:
        self.lease.ensure_held()


@dataclass(frozen=True)
class RedisLocking:
    locks: LockService
    wait_time: float
    lease_time: float | None = None

    @contextlib.asynccontextmanager
    async def hold(self, name: str) -> AsyncIterator[Held]:
        async with self.locks.hold(name, self.wait_time, self.lease_time) as lease:
            yield Leased(lease)


class NotHeld:
    """No lock outside the database: no token, nothing that can be lost; rows are locked."""

    token: int | None = None
    row_locks = True

    def ensure_held(self) -> None:
        return None


class DatabaseRowLocking:
    @contextlib.asynccontextmanager
    async def hold(self, name: str) -> AsyncIterator[Held]:
        yield NotHeld()


def _no_count() -> None:
    return None


@dataclass(frozen=True)
class FallbackLocking:
    """`primary` while the lock service answers; the row lock when it cannot be reached."""

    primary: Locking
    on_fallback: Callable[[], None] = field(default=_no_count)

    @contextlib.asynccontextmanager
    async def hold(self, name: str) -> AsyncIterator[Held]:
        entered = self.primary.hold(name)
        try:
            held = await entered.__aenter__()
        except DEPENDENCY_ERRORS as exc:
            log.warning("lock %r: lock service unreachable (%r); using the row lock", name, exc)
            self.on_fallback()
            yield NotHeld()
            return
        try:
            yield held
        except BaseException as exc:
            try:
                if await entered.__aexit__(type(exc), exc, exc.__traceback__):
                    return
            except DEPENDENCY_ERRORS as release_failed:
                log.warning("lock %r: not released (%r)", name, release_failed)
            raise
        try:
            await entered.__aexit__(None, None, None)
        except DEPENDENCY_ERRORS as exc:
            # The work has committed under a fencing token; the lease runs out by itself.
            log.warning("lock %r: not released (%r); its lease runs out by itself", name, exc)
