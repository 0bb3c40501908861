"""What every use-case class shares: the locking strategy, units of work, the clock.

`locked_transaction(name)` is this service's equivalent of Spring's `@DistributedLock`
aspect with `AopForTransaction` (REQUIRES_NEW): the lock is taken, a new unit of work
begins, the block runs, the unit of work commits, and only then is the lock released. An
exception of any class rolls the unit of work back. A lease lost while the block ran fails
it before the commit.

`retried(work)` runs a locked use case again when its write found the wallet changed
under it (ConcurrentUpdate: nothing was written). That happens when holders of two kinds
meet, a Redis lock's holder and a row lock's holder while the lock service fails over, or
when a lease was lost; the next attempt takes the lock afresh.
"""

import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from typing import TypeVar

from services.payment.adapters.uow import UnitOfWork
from services.payment.domain.errors import ConcurrentUpdate, WalletNotFound
from services.payment.domain.model import LedgerEntry, LedgerKind, Wallet
from services.payment.service_layer.locking import Locking
from shared.clock import utcnow

log = logging.getLogger(__name__)

UnitOfWorkFactory = Callable[[int | None, bool], UnitOfWork]  # (fence token, row locks)
T = TypeVar("T")


class UseCases:
    conflict_retries = 3  # attempts of a use case whose write met a changed wallet

    def __init__(
        self,
        locking: Locking,
        unit_of_work_factory: UnitOfWorkFactory,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.locking = locking
        self.uow_factory = unit_of_work_factory
        self.clock = clock

    @contextlib.asynccontextmanager
    async def locked_transaction(self, name: str) -> AsyncIterator[UnitOfWork]:
        """A unit of work under the lock `name`, committed when the block ends normally."""
        async with (
            self.locking.hold(name) as held,
            self.uow_factory(held.token, held.row_locks) as uow,
        ):
            yield uow
            held.ensure_held()
            await uow.commit()

    async def retried(self, work: Callable[[], Awaitable[T]]) -> T:
        """`work()`, run again while it fails with ConcurrentUpdate, up to conflict_retries."""
        for attempt in range(1, self.conflict_retries):
            try:
                return await work()
            except ConcurrentUpdate as exc:
                log.info("attempt %d: %s; running it again", attempt, exc)
        return await work()

    @staticmethod
    async def wallet(uow: UnitOfWork, user_id: str, covering: int = 0) -> Wallet:
        """The wallet; `covering`: the amount a debit will be refused on if it is short."""
        wallet = await uow.wallets.get(user_id, covering)
        if wallet is None:
            raise WalletNotFound(user_id)
        return wallet

    @staticmethod
    async def book(
        uow: UnitOfWork,
        before: Wallet,
        after: Wallet,
        kind: LedgerKind,
        reference: str,
        now: datetime,
    ) -> None:
        """Write a new balance and its ledger entry: balance == the sum of the entries."""
        await uow.wallets.update_balance(before, after, now)
        entry = LedgerEntry(
            after.user_id, after.balance - before.balance, kind, reference, after.balance
        )
        await uow.ledger.add(entry, now)

    @contextlib.asynccontextmanager
    async def reading(self) -> AsyncIterator[UnitOfWork]:
        """A unit of work outside any lock: for reads and for writes that need none."""
        async with self.uow_factory(None, False) as uow:
            yield uow
