"""Batched debits against the real MariaDB and Redis: the jobs queued for one wallet are
applied in one transaction, each judged alone, and a failed batch runs again one by one."""

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field

import aiomysql
import pytest

from services.payment.adapters.repository import MySqlPayments
from services.payment.adapters.uow import MySqlUnitOfWork
from services.payment.bootstrap import open_store
from services.payment.domain.batch import Credited, Paid
from services.payment.domain.commands import CancelPayment, CreditWallet, Pay, RefundPayment
from services.payment.domain.errors import (
    IdempotencyKeyReused,
    InsufficientBalance,
    PaymentNotFound,
)
from services.payment.domain.model import Payment, PaymentStatus
from services.payment.service_layer.handlers import Batching, PaymentService
from services.payment.settings import PaymentSettings
from shared.infra_errors import DEPENDENCY_ERRORS

pytestmark = pytest.mark.integration


@dataclass
class Batched:
    service: PaymentService
    pool: aiomysql.Pool
    sizes: list[int] = field(default_factory=list)

    async def wallet(self, balance: int) -> str:
        user_id = f"b-{uuid.uuid4().hex[:16]}"
        await self.service.create_wallet(user_id)
        await self.service.credit(CreditWallet(user_id, balance, f"seed-{user_id}"))
        return user_id

    async def scalar(self, sql: str, *args: object) -> int:
        async with self.pool.acquire() as conn, conn.cursor() as cur:
            await cur.execute(sql, args)
            (value,) = await cur.fetchone()
            await conn.rollback()
            return int(value or 0)

    async def assert_invariants(self, user_id: str) -> int:
        """balance == ledger sum; one debit and one outbox event per payment; the balance."""
        balance = await self.scalar("SELECT balance FROM wallets WHERE user_id = %s", user_id)
        ledger = await self.scalar(
            "SELECT SUM(delta) FROM ledger_entries WHERE user_id = %s", user_id
        )
        assert balance == ledger >= 0
        payments = await self.scalar("SELECT COUNT(*) FROM payments WHERE user_id = %s", user_id)
        debits = await self.scalar(
            "SELECT COUNT(DISTINCT l.reference) FROM ledger_entries l JOIN payments p"
            " ON p.payment_id = l.reference WHERE l.kind = 'PAYMENT' AND p.user_id = %s",
            user_id,
        )
        all_debits = await self.scalar(
            "SELECT COUNT(*) FROM ledger_entries WHERE kind = 'PAYMENT' AND user_id = %s", user_id
        )
        refunds = await self.scalar(
            "SELECT COUNT(*) FROM ledger_entries WHERE kind = 'REFUND' AND user_id = %s", user_id
        )
        cancelled = await self.scalar(
            "SELECT COUNT(*) FROM payments WHERE status = 'CANCELLED' AND user_id = %s", user_id
        )
        events = await self.scalar("SELECT COUNT(*) FROM outbox WHERE event_key = %s", user_id)
        assert payments == debits == all_debits
        assert refunds == cancelled
        assert events == payments + cancelled
        return balance


UnitOfWorkClass = type[MySqlUnitOfWork]


@contextlib.asynccontextmanager
async def batched(uow_class: UnitOfWorkClass = MySqlUnitOfWork) -> AsyncIterator[Batched]:
    settings = PaymentSettings()
    async with AsyncExitStack() as stack:
        store = await open_store(stack, settings, migrate=True)
        sizes: list[int] = []

        def unit_of_work(token: int | None, row_locks: bool) -> MySqlUnitOfWork:
            return uow_class(store.pool, token, row_locks, multi_statements=True)

        service = PaymentService(
            store.locking,
            unit_of_work,
            events_topic=settings.events_topic,
            # With a linger every job queues, so jobs handed in together form one batch; without
            # one, the first job for an idle wallet runs alone (tests/unit/test_batching.py).
            batching=Batching(max_size=200, linger=0.001, observe=sizes.append),
        )
        stack.push_async_callback(service.close)
        yield Batched(service, store.pool, sizes)


def order() -> str:
    return f"o-{uuid.uuid4().hex}"


async def test_a_batch_judges_each_payment_alone_and_commits_once():
    async with batched() as b:
        user = await b.wallet(10_000)
        first, second = order(), order()
        b.sizes.clear()
        answers = await asyncio.gather(
            b.service.pay(Pay(first, user, 4_000)),
            b.service.pay(Pay(second, user, 4_000)),
            b.service.pay(Pay(order(), user, 4_000)),  # overdraft: 2,000 left
            b.service.pay(Pay(order(), user, 1_000)),
            b.service.pay(Pay(first, user, 4_000)),  # the same order again: a replay
            b.service.pay(Pay(second, user, 3_000)),  # the order with another body
            b.service.credit(CreditWallet(user, 500, f"top-up-{user}")),
            return_exceptions=True,
        )
        assert b.sizes == [7]
        paid_first, paid_second, overdraft, small, again, reused, credit = answers
        assert isinstance(paid_first, Paid) and isinstance(paid_second, Paid)
        assert isinstance(small, Paid)
        assert [p.payment.balance_after for p in (paid_first, paid_second, small)] == [
            6_000,
            2_000,
            1_000,
        ]
        assert isinstance(overdraft, InsufficientBalance)
        assert isinstance(again, Paid) and again.replayed
        assert again.payment == paid_first.payment
        assert isinstance(reused, IdempotencyKeyReused)
        assert isinstance(credit, Credited) and not credit.replayed
        assert await b.assert_invariants(user) == 1_500
        assert await b.scalar("SELECT COUNT(*) FROM payments WHERE user_id = %s", user) == 3


async def test_cancels_join_a_batch_and_refund_once():
    async with batched() as b:
        user = await b.wallet(10_000)
        paid = await b.service.pay(Pay(order(), user, 3_000))
        payment_id = paid.payment.payment_id
        key = f"wallet:{user}"
        assert b.service.batches is not None
        b.sizes.clear()
        answers = await asyncio.gather(
            b.service.batches.submit(key, Pay(order(), user, 2_000)),
            b.service.batches.submit(key, RefundPayment(user, payment_id)),
            b.service.batches.submit(key, RefundPayment(user, payment_id)),
            b.service.batches.submit(key, RefundPayment(user, str(uuid.uuid4()))),
            b.service.batches.submit(key, Pay(order(), user, 8_000)),  # fits after the refund
            return_exceptions=True,
        )
        assert b.sizes == [5]
        debit, refund, refund_again, unknown, big = answers
        assert isinstance(refund, Payment) and refund.status is PaymentStatus.CANCELLED
        assert refund_again == refund
        assert isinstance(unknown, PaymentNotFound)
        assert isinstance(debit, Paid) and debit.payment.balance_after == 5_000
        assert isinstance(big, Paid) and big.payment.balance_after == 0
        assert await b.service.cancel(CancelPayment(payment_id)) == refund
        assert await b.assert_invariants(user) == 0


class CountingPayments(MySqlPayments):
    most = 0  # the most payment rows one insert carried

    async def add_many(self, payments: list[Payment]) -> None:
        self.most = max(self.most, len(payments))
        await super().add_many(payments)


class CrashingBatches(MySqlUnitOfWork):
    """Kills its own database session after a batch's writes reached the server and before
    its commit: the server rolls the transaction back, as when a process or a link dies."""

    always = False

    async def __aenter__(self) -> "CrashingBatches":
        await super().__aenter__()
        self.payments = self.counting = CountingPayments(self.wallets.cur, self.writes)  # type: ignore[attr-defined]
        return self

    async def commit(self) -> None:
        await self.writes.flush()
        if self.counting.most > 1 or self.always:
            await self.counting.cur.execute("KILL CONNECTION_ID()")
        await super().commit()


async def test_a_batch_cut_off_mid_transaction_runs_again_one_by_one(caplog):
    async with batched(CrashingBatches) as b:
        user = await b.wallet(10_000)
        b.sizes.clear()
        answers = await asyncio.gather(
            *(b.service.pay(Pay(order(), user, 1_000)) for _ in range(6)),
            b.service.pay(Pay(order(), user, 20_000)),
            return_exceptions=True,
        )
        assert b.sizes == [7]
        assert "batch of 7" in caplog.text and "running it one by one" in caplog.text
        assert all(isinstance(a, Paid) and not a.replayed for a in answers[:6])
        assert isinstance(answers[6], InsufficientBalance)
        balances = sorted(a.payment.balance_after for a in answers[:6] if isinstance(a, Paid))
        assert balances == list(range(4_000, 10_000, 1_000))
        assert await b.assert_invariants(user) == 4_000


class AlwaysCrashing(CrashingBatches):
    always = True


async def test_a_batch_that_cannot_commit_answers_every_member_unavailable_and_writes_nothing():
    async with batched() as setup:
        user = await setup.wallet(10_000)
    async with batched(AlwaysCrashing) as b:
        b.sizes.clear()
        answers = await asyncio.gather(
            *(b.service.pay(Pay(order(), user, 1_000)) for _ in range(5)),
            return_exceptions=True,
        )
        assert b.sizes == [5]
        assert all(isinstance(a, DEPENDENCY_ERRORS) for a in answers), answers
        assert await b.assert_invariants(user) == 10_000
        assert await b.scalar("SELECT COUNT(*) FROM payments WHERE user_id = %s", user) == 0
