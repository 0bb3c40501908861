"""The unit of work: one database transaction; rolled back unless commit() was called."""

import abc
import asyncio
import contextlib
from types import TracebackType

import aiomysql

from services.payment.adapters.balances import BalanceCache
from services.payment.adapters.outbox import MySqlOutbox, OutboxRepository
from services.payment.adapters.repository import (
    ChargeRepository,
    LedgerRepository,
    MySqlCharges,
    MySqlLedger,
    MySqlPayments,
    MySqlWallets,
    PaymentRepository,
    WalletRepository,
)
from services.payment.adapters.writes import Writes
from shared.infra_errors import DEPENDENCY_ERRORS


class UnitOfWork(abc.ABC):
    wallets: WalletRepository
    payments: PaymentRepository
    ledger: LedgerRepository
    charges: ChargeRepository
    outbox: OutboxRepository

    async def __aenter__(self) -> "UnitOfWork":
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.rollback()

    @abc.abstractmethod
    async def commit(self) -> None: ...

    @abc.abstractmethod
    async def rollback(self) -> None: ...


class MySqlUnitOfWork(UnitOfWork):
    """`fence_token` guards every wallet write; `row_locks` reads wallets FOR UPDATE.

    Money writes are queued and sent by `commit()` (adapters/writes.py): with the COMMIT, in
    one round trip, when the pool's connections allow multi-statements (`multi_statements`,
    see db.create_pool), one by one otherwise.
    """

    def __init__(
        self,
        pool: aiomysql.Pool,
        fence_token: int | None,
        row_locks: bool,
        multi_statements: bool = False,
        balances: BalanceCache | None = None,
    ) -> None:
        self.pool = pool
        self.multi_statements = multi_statements
        self.balances = balances
        self.fence_token = fence_token
        self.row_locks = row_locks
        self._conn: aiomysql.Connection | None = None
        self._done = False

    async def __aenter__(self) -> "MySqlUnitOfWork":
        self._conn = await self.pool.acquire()
        # autocommit is off: the transaction begins with the first statement, no BEGIN trip.
        cur = await self._conn.cursor()
        self.writes = Writes(cur, together=self.multi_statements)
        self._wallets = MySqlWallets(
            cur, self.writes, self.fence_token, self.row_locks, self.balances
        )
        self.wallets = self._wallets
        self.payments = MySqlPayments(cur, self.writes)
        self.ledger = MySqlLedger(cur, self.writes)
        self.charges = MySqlCharges(cur)
        self.outbox = MySqlOutbox(self.writes)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._conn is None:
            return
        if isinstance(exc, asyncio.CancelledError):
            self._discard()  # cancelled mid-statement: the connection's state is unknown
            return
        try:
            await self.rollback()
        except DEPENDENCY_ERRORS:
            self._discard()  # a broken connection must not go back to the pool
            return
        self.pool.release(self._conn)
        self._conn = None

    async def commit(self) -> None:
        assert self._conn is not None
        try:
            await self.writes.flush(commit=True)
        except BaseException:
            self._wallets.not_committed()
            raise
        self._done = True
        self._wallets.committed()

    async def rollback(self) -> None:
        if self._conn is not None and not self._done:
            self._done = True
            await self._conn.rollback()

    def _discard(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(*DEPENDENCY_ERRORS):
                self._conn.close()
            self.pool.release(self._conn)
            self._conn = None
