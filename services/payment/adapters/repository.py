"""Repositories: an abstract base each, the MariaDB/MySQL adapter, and (in fakes.py) a fake.

Writes to a wallet are compare-and-set: they name the balance they read and, under the Redis
lock, the fencing token of the lock held; a write by a holder whose lock was lost finds
either a newer token or another balance, changes nothing and raises ConcurrentUpdate.
"""

import abc
from datetime import datetime

from aiomysql import Cursor

from services.payment.domain.errors import ConcurrentUpdate
from services.payment.domain.model import LedgerEntry, Payment, PaymentStatus, Wallet


class WalletRepository(abc.ABC):
    @abc.abstractmethod
    async def get(self, user_id: str) -> Wallet | None: ...

    @abc.abstractmethod
    async def add(self, user_id: str, now: datetime) -> bool:
        """Create an empty wallet; False when it already exists."""

    @abc.abstractmethod
    async def update_balance(self, old: Wallet, new: Wallet, now: datetime) -> None: ...


class PaymentRepository(abc.ABC):
    @abc.abstractmethod
    async def get(self, payment_id: str) -> Payment | None: ...

    @abc.abstractmethod
    async def by_order_id(self, order_id: str) -> Payment | None: ...

    @abc.abstractmethod
    async def add(self, payment: Payment) -> None: ...

    @abc.abstractmethod
    async def mark_cancelled(self, payment: Payment) -> None: ...


class LedgerRepository(abc.ABC):
    @abc.abstractmethod
    async def add(self, entry: LedgerEntry, now: datetime) -> None: ...


class MySqlWallets(WalletRepository):
    def __init__(self, cur: Cursor, fence_token: int | None, row_locks: bool) -> None:
        self.cur = cur
        self.fence_token = fence_token
        self.row_locks = row_locks

    async def get(self, user_id: str) -> Wallet | None:
        lock = " FOR UPDATE" if self.row_locks else ""
        await self.cur.execute(
            f"SELECT user_id, balance FROM wallets WHERE user_id = %s{lock}", (user_id,)
        )
        row = await self.cur.fetchone()
        return Wallet(row[0], row[1]) if row else None

    async def add(self, user_id: str, now: datetime) -> bool:
        await self.cur.execute(
            "INSERT INTO wallets (user_id, balance, created_at, updated_at)"
            " VALUES (%s, 0, %s, %s) ON DUPLICATE KEY UPDATE user_id = user_id",
            (user_id, now, now),
        )
        return self.cur.rowcount == 1

    async def update_balance(self, old: Wallet, new: Wallet, now: datetime) -> None:
        if self.fence_token is None:
            await self.cur.execute(
                "UPDATE wallets SET balance = %s, updated_at = %s"
                " WHERE user_id = %s AND balance = %s",
                (new.balance, now, old.user_id, old.balance),
            )
        else:
            await self.cur.execute(
                "UPDATE wallets SET balance = %s, fence_token = %s, updated_at = %s"
                " WHERE user_id = %s AND balance = %s AND fence_token <= %s",
                (new.balance, self.fence_token, now, old.user_id, old.balance, self.fence_token),
            )
        if self.cur.rowcount != 1:
            raise ConcurrentUpdate(old.user_id)


_PAYMENT_COLUMNS = (
    "payment_id, order_id, user_id, amount, status, balance_after, created_at, cancelled_at"
)


def _payment(row: tuple | None) -> Payment | None:
    if row is None:
        return None
    return Payment(row[0], row[1], row[2], row[3], PaymentStatus(row[4]), row[5], row[6], row[7])


class MySqlPayments(PaymentRepository):
    def __init__(self, cur: Cursor) -> None:
        self.cur = cur

    async def get(self, payment_id: str) -> Payment | None:
        await self.cur.execute(
            f"SELECT {_PAYMENT_COLUMNS} FROM payments WHERE payment_id = %s", (payment_id,)
        )
        return _payment(await self.cur.fetchone())

    async def by_order_id(self, order_id: str) -> Payment | None:
        await self.cur.execute(
            f"SELECT {_PAYMENT_COLUMNS} FROM payments WHERE order_id = %s", (order_id,)
        )
        return _payment(await self.cur.fetchone())

    async def add(self, payment: Payment) -> None:
        await self.cur.execute(
            f"INSERT INTO payments ({_PAYMENT_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
            (
                payment.payment_id,
                payment.order_id,
                payment.user_id,
                payment.amount,
                payment.status.value,
                payment.balance_after,
                payment.created_at,
                payment.cancelled_at,
            ),
        )

    async def mark_cancelled(self, payment: Payment) -> None:
        await self.cur.execute(
            "UPDATE payments SET status = %s, cancelled_at = %s"
            " WHERE payment_id = %s AND status = %s",
            (
                PaymentStatus.CANCELLED.value,
                payment.cancelled_at,
                payment.payment_id,
                PaymentStatus.COMPLETED.value,
            ),
        )
        if self.cur.rowcount != 1:
            raise ConcurrentUpdate(payment.user_id)


class MySqlLedger(LedgerRepository):
    def __init__(self, cur: Cursor) -> None:
        self.cur = cur

    async def add(self, entry: LedgerEntry, now: datetime) -> None:
        await self.cur.execute(
            "INSERT INTO ledger_entries"
            " (user_id, delta, kind, reference, balance_after, created_at)"
            " VALUES (%s, %s, %s, %s, %s, %s)",
            (
                entry.user_id,
                entry.delta,
                entry.kind.value,
                entry.reference,
                entry.balance_after,
                now,
            ),
        )
