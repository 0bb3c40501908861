"""Repositories: an abstract base each and the MariaDB/MySQL adapter (tests/ has fakes).

Writes are queued on the unit of work's Writes and sent together when it commits (writes.py).
Writes to a wallet are compare-and-set: they name the balance they read and, under the Redis
lock, the fencing token of the lock held; a write by a holder whose lock was lost finds
either a newer token or another balance, changes nothing and raises ConcurrentUpdate.
"""

import abc
from datetime import datetime

from aiomysql import Cursor

from services.payment.adapters.balances import BalanceCache
from services.payment.adapters.writes import Writes
from services.payment.domain.errors import ConcurrentUpdate, OrderTaken
from services.payment.domain.model import (
    Charge,
    ChargeStatus,
    FailureReason,
    LedgerEntry,
    LedgerKind,
    Payment,
    PaymentStatus,
    Wallet,
)


class WalletRepository(abc.ABC):
    @abc.abstractmethod
    async def get(self, user_id: str, covering: int = 0) -> Wallet | None:
        """The wallet; a debit of `covering` asks for a balance it may refuse on (402)."""

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

    async def by_order_ids(self, order_ids: list[str]) -> dict[str, Payment]:
        """The payments of these order_ids that exist, by order_id."""
        found = {order_id: await self.by_order_id(order_id) for order_id in set(order_ids)}
        return {order_id: p for order_id, p in found.items() if p is not None}

    async def by_ids(self, payment_ids: list[str]) -> dict[str, Payment]:
        found = {payment_id: await self.get(payment_id) for payment_id in set(payment_ids)}
        return {payment_id: p for payment_id, p in found.items() if p is not None}

    @abc.abstractmethod
    async def add(self, payment: Payment) -> None:
        """Insert a payment; OrderTaken when its order_id has one (a unique key)."""

    async def add_many(self, payments: list[Payment]) -> None:
        for payment in payments:
            await self.add(payment)

    @abc.abstractmethod
    async def mark_cancelled(self, payment: Payment) -> None: ...


class LedgerRepository(abc.ABC):
    @abc.abstractmethod
    async def add(self, entry: LedgerEntry, now: datetime) -> None: ...

    async def add_many(self, entries: list[LedgerEntry], now: datetime) -> None:
        for entry in entries:
            await self.add(entry, now)

    @abc.abstractmethod
    async def by_reference(self, kind: LedgerKind, reference: str) -> LedgerEntry | None:
        """The entry of `kind` written for `reference` (unique per kind), if any."""


class ChargeRepository(abc.ABC):
    @abc.abstractmethod
    async def get(self, charge_id: str) -> Charge | None: ...

    @abc.abstractmethod
    async def add(self, charge: Charge) -> bool:
        """Record a new charge; False when the charge_id exists already."""

    @abc.abstractmethod
    async def move(self, before: Charge, after: Charge, now: datetime) -> bool:
        """Change the charge's state only if it is still `before`'s; True if it did."""

    @abc.abstractmethod
    async def pending(self, created_before: datetime, limit: int) -> list[Charge]: ...


class MySqlWallets(WalletRepository):
    """Balance writes are queued on `writes` and sent with the unit of work's commit."""

    def __init__(
        self,
        cur: Cursor,
        writes: Writes,
        fence_token: int | None,
        row_locks: bool,
        balances: BalanceCache | None = None,
    ) -> None:
        """With `balances` and a fencing token, a balance this process saw under the lock's
        previous token is reused instead of read (balances.py says why that is safe)."""
        self.cur = cur
        self.writes = writes
        self.fence_token = fence_token
        self.row_locks = row_locks
        self.balances = balances if fence_token is not None and not row_locks else None
        self.written: dict[str, int] = {}  # balances queued for the commit

    async def get(self, user_id: str, covering: int = 0) -> Wallet | None:
        if self.balances is not None:
            assert self.fence_token is not None
            balance = self.balances.get(user_id, self.fence_token, covering)
            if balance is not None:
                return Wallet(user_id, balance)
        lock = " FOR UPDATE" if self.row_locks else ""
        await self.cur.execute(
            f"SELECT user_id, balance FROM wallets WHERE user_id = %s{lock}", (user_id,)
        )
        row = await self.cur.fetchone()
        if row is None:
            return None
        if self.balances is not None:
            assert self.fence_token is not None
            self.balances.put(user_id, row[1], self.fence_token)  # read under the lock
        return Wallet(row[0], row[1])

    def committed(self) -> None:
        """The balances written are the wallets' now."""
        if self.balances is not None:
            assert self.fence_token is not None
            for user_id, balance in self.written.items():
                self.balances.put(user_id, balance, self.fence_token)
        self.written.clear()

    def not_committed(self) -> None:
        """A write that failed may have started from a stale balance: read it next time."""
        if self.balances is not None:
            for user_id in self.written:
                self.balances.forget(user_id)
        self.written.clear()

    async def add(self, user_id: str, now: datetime) -> bool:
        await self.cur.execute(
            "INSERT INTO wallets (user_id, balance, created_at, updated_at)"
            " VALUES (%s, 0, %s, %s) ON DUPLICATE KEY UPDATE user_id = user_id",
            (user_id, now, now),
        )
        return self.cur.rowcount == 1

    async def update_balance(self, old: Wallet, new: Wallet, now: datetime) -> None:
        self.written[old.user_id] = new.balance
        if self.fence_token is None:
            self.writes.add(
                "UPDATE wallets SET balance = %s, updated_at = %s"
                " WHERE user_id = %s AND balance = %s",
                (new.balance, now, old.user_id, old.balance),
                must_change_one=ConcurrentUpdate(old.user_id),
            )
        else:
            self.writes.add(
                "UPDATE wallets SET balance = %s, fence_token = %s, updated_at = %s"
                " WHERE user_id = %s AND balance = %s AND fence_token <= %s",
                (new.balance, self.fence_token, now, old.user_id, old.balance, self.fence_token),
                must_change_one=ConcurrentUpdate(old.user_id),
            )


_PAYMENT_COLUMNS = (
    "payment_id, order_id, user_id, amount, status, balance_after, created_at, cancelled_at"
)


def _payment(row: tuple | None) -> Payment | None:
    if row is None:
        return None
    return Payment(row[0], row[1], row[2], row[3], PaymentStatus(row[4]), row[5], row[6], row[7])


_INSERT_PAYMENT = f"INSERT INTO payments ({_PAYMENT_COLUMNS})"
_PAYMENT_ROW = "(%s, %s, %s, %s, %s, %s, %s, %s)"


def _payment_values(p: Payment) -> tuple[object, ...]:
    return (
        p.payment_id,
        p.order_id,
        p.user_id,
        p.amount,
        p.status.value,
        p.balance_after,
        p.created_at,
        p.cancelled_at,
    )


class MySqlPayments(PaymentRepository):
    def __init__(self, cur: Cursor, writes: Writes) -> None:
        self.cur = cur
        self.writes = writes

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

    async def by_order_ids(self, order_ids: list[str]) -> dict[str, Payment]:
        rows = await self._select_in("order_id", order_ids)
        return {p.order_id: p for p in rows}

    async def by_ids(self, payment_ids: list[str]) -> dict[str, Payment]:
        rows = await self._select_in("payment_id", payment_ids)
        return {p.payment_id: p for p in rows}

    async def _select_in(self, column: str, values: list[str]) -> list[Payment]:
        if not values:
            return []
        marks = ", ".join(["%s"] * len(values))
        await self.cur.execute(
            f"SELECT {_PAYMENT_COLUMNS} FROM payments WHERE {column} IN ({marks})", values
        )
        return [p for p in map(_payment, await self.cur.fetchall()) if p is not None]

    async def add(self, payment: Payment) -> None:
        await self.add_many([payment])

    async def add_many(self, payments: list[Payment]) -> None:
        taken = OrderTaken(payments[0].order_id if len(payments) == 1 else "of this batch")
        self.writes.add_rows(
            _INSERT_PAYMENT,
            _PAYMENT_ROW,
            [_payment_values(p) for p in payments],
            on_duplicate=taken,
            duplicate_key="payments_order_id",
        )

    async def mark_cancelled(self, payment: Payment) -> None:
        self.writes.add(
            "UPDATE payments SET status = %s, cancelled_at = %s"
            " WHERE payment_id = %s AND status = %s",
            (
                PaymentStatus.CANCELLED.value,
                payment.cancelled_at,
                payment.payment_id,
                PaymentStatus.COMPLETED.value,
            ),
            must_change_one=ConcurrentUpdate(payment.user_id),
        )


_INSERT_ENTRY = (
    "INSERT INTO ledger_entries (user_id, delta, kind, reference, balance_after, created_at)"
)
_ENTRY_ROW = "(%s, %s, %s, %s, %s, %s)"


def _entry_values(e: LedgerEntry, now: datetime) -> tuple[object, ...]:
    return (e.user_id, e.delta, e.kind.value, e.reference, e.balance_after, now)


class MySqlLedger(LedgerRepository):
    def __init__(self, cur: Cursor, writes: Writes) -> None:
        self.cur = cur
        self.writes = writes

    async def by_reference(self, kind: LedgerKind, reference: str) -> LedgerEntry | None:
        await self.cur.execute(
            "SELECT user_id, delta, kind, reference, balance_after FROM ledger_entries"
            " WHERE kind = %s AND reference = %s",
            (kind.value, reference),
        )
        row = await self.cur.fetchone()
        return LedgerEntry(row[0], row[1], LedgerKind(row[2]), row[3], row[4]) if row else None

    async def add(self, entry: LedgerEntry, now: datetime) -> None:
        await self.add_many([entry], now)

    async def add_many(self, entries: list[LedgerEntry], now: datetime) -> None:
        self.writes.add_rows(_INSERT_ENTRY, _ENTRY_ROW, [_entry_values(e, now) for e in entries])


_CHARGE_COLUMNS = "charge_id, user_id, amount, status, created_at, failure_reason, balance_after"


def _charge(row: tuple | None) -> Charge | None:
    if row is None:
        return None
    reason = FailureReason(row[5]) if row[5] else None
    return Charge(row[0], row[1], row[2], ChargeStatus(row[3]), row[4], reason, row[6])


class MySqlCharges(ChargeRepository):
    def __init__(self, cur: Cursor) -> None:
        self.cur = cur

    async def get(self, charge_id: str) -> Charge | None:
        await self.cur.execute(
            f"SELECT {_CHARGE_COLUMNS} FROM charges WHERE charge_id = %s", (charge_id,)
        )
        return _charge(await self.cur.fetchone())

    async def add(self, charge: Charge) -> bool:
        await self.cur.execute(
            "INSERT INTO charges (charge_id, user_id, amount, status, created_at, updated_at)"
            " VALUES (%s, %s, %s, %s, %s, %s) ON DUPLICATE KEY UPDATE charge_id = charge_id",
            (
                charge.charge_id,
                charge.user_id,
                charge.amount,
                charge.status.value,
                charge.created_at,
                charge.created_at,
            ),
        )
        return self.cur.rowcount == 1

    async def move(self, before: Charge, after: Charge, now: datetime) -> bool:
        await self.cur.execute(
            "UPDATE charges SET status = %s, failure_reason = %s, balance_after = %s,"
            " updated_at = %s WHERE charge_id = %s AND status = %s",
            (
                after.status.value,
                after.failure_reason.value if after.failure_reason else None,
                after.balance_after,
                now,
                before.charge_id,
                before.status.value,
            ),
        )
        return self.cur.rowcount == 1

    async def pending(self, created_before: datetime, limit: int) -> list[Charge]:
        await self.cur.execute(
            f"SELECT {_CHARGE_COLUMNS} FROM charges WHERE status = 'PENDING'"
            " AND created_at < %s ORDER BY created_at LIMIT %s",
            (created_before, limit),
        )
        return [c for c in map(_charge, await self.cur.fetchall()) if c is not None]
