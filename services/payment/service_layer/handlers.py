"""The payment service's use cases. Each money movement runs under the wallet's lock, in a
transaction that commits before the lock is released (see locked_transaction).

With batching on (`batch_max` > 1) payments, refunds and credits of one wallet queue in
this process and are applied in batches: one lock hold, one transaction, one commit for
the whole batch, each job judged on its own (domain/batch.py). When a batch's transaction
fails, its jobs are run again one by one, each in a transaction of its own, so one bad job
never fails the others. With `batch_max` = 1 each job takes the lock by itself.
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from services.payment.adapters.uow import UnitOfWork
from services.payment.domain.batch import Answer, Credited, Job, Paid, WalletBatch
from services.payment.domain.commands import CancelPayment, CreditWallet, Pay, RefundPayment
from services.payment.domain.errors import (
    CreditReferenceReused,
    IdempotencyKeyReused,
    InsufficientBalance,
    OrderTaken,
    PaymentNotFound,
    WalletExists,
)
from services.payment.domain.model import (
    LedgerKind,
    Payment,
    PaymentStatus,
    Wallet,
)
from services.payment.service_layer.base import UnitOfWorkFactory, UseCases
from services.payment.service_layer.locking import Held, Locking
from shared import ids
from shared.batching import Batcher
from shared.clock import iso, utcnow

log = logging.getLogger(__name__)

CreditResult = Credited  # replayed: the reference was credited before, nothing added now
PaymentResult = Paid  # replayed: found under the same order_id, nothing was charged


@dataclass(frozen=True)
class Batching:
    max_size: int = 1  # 1: no batches, every job takes the lock by itself
    linger: float = 0.0  # seconds a small batch waits for company
    observe: Callable[[int], None] | None = None  # told each batch's size


def no_one_to_tell() -> None:
    return None


class PaymentService(UseCases):
    def __init__(
        self,
        locking: Locking,
        unit_of_work_factory: UnitOfWorkFactory,
        *,
        events_topic: str,
        events_committed: Callable[[], None] = no_one_to_tell,
        clock: Callable[[], datetime] = utcnow,
        batching: Batching = Batching(),
    ) -> None:
        super().__init__(locking, unit_of_work_factory, clock)
        self.events_topic = events_topic
        self.events_committed = events_committed  # e.g. wake the outbox relay
        self.batches: Batcher[Job, Answer] | None = None
        if batching.max_size > 1:
            self.batches = Batcher(
                self._run_batch,
                max_size=batching.max_size,
                linger=batching.linger,
                observe=batching.observe,
            )

    async def close(self) -> None:
        """Let queued batches finish."""
        if self.batches is not None:
            await self.batches.close()

    async def create_wallet(self, user_id: str) -> tuple[Wallet, bool]:
        """The wallet and whether it was created now; WalletExists if it exists and was used."""
        async with self.reading() as uow:
            created = await uow.wallets.add(user_id, self.clock())
            await uow.commit()
        wallet = await self.get_wallet(user_id)
        if not created and not wallet.unused:
            raise WalletExists(user_id)
        return wallet, created

    async def get_wallet(self, user_id: str) -> Wallet:
        async with self.reading() as uow:
            return await self.wallet(uow, user_id)

    async def get_payment(self, payment_id: str) -> Payment:
        async with self.reading() as uow:
            return found(await uow.payments.get(payment_id), payment_id)

    async def find_payment(self, order_id: str) -> Payment:
        async with self.reading() as uow:
            return found(await uow.payments.by_order_id(order_id), order_id)

    async def pay(self, cmd: Pay) -> PaymentResult:
        """Debit the wallet once per order_id; a repeat returns the first payment."""
        if self.batches is not None:
            answer = await self.batches.submit(f"wallet:{cmd.user_id}", cmd)
            assert isinstance(answer, Paid)
            return answer
        result = await self.retried(lambda: self._debit(cmd))
        if not result.replayed:
            self.events_committed()
        return result

    async def _debit(self, cmd: Pay) -> PaymentResult:
        """A new order is the common case: the unique key on order_id finds a repeat (Redis
        answers most repeats before this), which saves a SELECT on every payment."""
        try:
            return await self._debit_new(cmd)
        except (OrderTaken, InsufficientBalance):
            existing = await self._payment_of_order(cmd.order_id)
            if existing is None:
                raise
        if not existing.same_request(cmd.user_id, cmd.amount):
            raise IdempotencyKeyReused(cmd.order_id)
        return PaymentResult(existing, replayed=True)

    async def _payment_of_order(self, order_id: str) -> Payment | None:
        async with self.reading() as uow:
            return await uow.payments.by_order_id(order_id)

    async def _debit_new(self, cmd: Pay) -> PaymentResult:
        async with self.locked_transaction(f"wallet:{cmd.user_id}") as uow:
            wallet = await self.wallet(uow, cmd.user_id, covering=cmd.amount)
            debited = wallet.debited(cmd.amount)
            now = self.clock()
            payment = Payment(
                str(ids.uuid4()),
                cmd.order_id,
                cmd.user_id,
                cmd.amount,
                PaymentStatus.COMPLETED,
                debited.balance,
                now,
            )
            await uow.payments.add(payment)
            await self.book(uow, wallet, debited, LedgerKind.PAYMENT, payment.payment_id, now)
            await self._announce(uow, payment, now)
            return PaymentResult(payment, replayed=False)

    async def _announce(self, uow: UnitOfWork, payment: Payment, now: datetime) -> None:
        """Put the payment's event in the outbox, in the transaction that changed it, at
        the moment the change is booked (as a batch does)."""
        event = payment.event(str(ids.uuid4()), iso(now))
        await uow.outbox.add(self.events_topic, event, now)

    async def cancel(self, cmd: CancelPayment) -> Payment:
        """Refund a payment once, however often it is called."""
        payment = await self.get_payment(cmd.payment_id)
        if not payment.cancellable:
            return payment
        refund = RefundPayment(payment.user_id, cmd.payment_id)
        if self.batches is not None:
            answer = await self.batches.submit(f"wallet:{payment.user_id}", refund)
            assert isinstance(answer, Payment)
            return answer
        refunded = await self.retried(lambda: self._refund(refund))
        self.events_committed()
        return refunded

    async def _refund(self, cmd: RefundPayment) -> Payment:
        user_id, payment_id = cmd.user_id, cmd.payment_id
        async with self.locked_transaction(f"wallet:{user_id}") as uow:
            payment = await uow.payments.get(payment_id)
            wallet = await uow.wallets.get(user_id)
            if payment is None or wallet is None:
                raise PaymentNotFound(payment_id)
            if not payment.cancellable:
                return payment
            now = self.clock()
            cancelled = payment.cancelled(now)
            credited = wallet.credited(payment.amount)
            await uow.payments.mark_cancelled(cancelled)
            await self.book(uow, wallet, credited, LedgerKind.REFUND, payment_id, now)
            await self._announce(uow, cancelled, now)
            return cancelled

    async def credit(self, cmd: CreditWallet) -> CreditResult:
        """Add money to a wallet once per reference (operators); a repeat adds nothing."""
        if self.batches is not None:
            answer = await self.batches.submit(f"wallet:{cmd.user_id}", cmd)
            assert isinstance(answer, Credited)
            return answer
        return await self.retried(lambda: self._credit(cmd))

    async def _credit(self, cmd: CreditWallet) -> CreditResult:
        async with self.locked_transaction(f"wallet:{cmd.user_id}") as uow:
            wallet = await self.wallet(uow, cmd.user_id)
            earlier = await uow.ledger.by_reference(LedgerKind.CREDIT, cmd.reference)
            if earlier is not None:
                if (earlier.user_id, earlier.delta) != (cmd.user_id, cmd.amount):
                    raise CreditReferenceReused(cmd.reference, earlier.user_id, earlier.delta)
                return CreditResult(wallet, replayed=True)
            credited = wallet.credited(cmd.amount)
            now = self.clock()
            await self.book(uow, wallet, credited, LedgerKind.CREDIT, cmd.reference, now)
            return CreditResult(credited, replayed=False)

    async def _run_batch(self, name: str, jobs: list[Job]) -> list[Answer | Exception]:
        """One batch under one lock hold and one transaction; alone again if that fails."""
        if len(jobs) == 1:
            return [await self._alone(jobs[0])]
        async with self.locking.hold(name) as held:
            try:
                answers = await self._apply_batch(jobs, held)
            except Exception as exc:  # noqa: BLE001 - rolled back; each job runs again alone
                log.warning(
                    "batch of %d on %s failed, running it one by one: %r", len(jobs), name, exc
                )
                answers = None
        if answers is None:
            return [await self._alone(job) for job in jobs]
        self.events_committed()
        return answers

    async def _alone(self, job: Job) -> Answer | Exception:
        """A job in a locked transaction of its own; its error is its answer."""
        try:
            if isinstance(job, Pay):
                answer: Answer = await self.retried(lambda: self._debit(job))
            elif isinstance(job, RefundPayment):
                answer = await self.retried(lambda: self._refund(job))
            else:
                answer = await self.retried(lambda: self._credit(job))
        except Exception as exc:  # noqa: BLE001 - the caller gets it as its answer
            return exc
        if not isinstance(answer, Credited | Paid) or not answer.replayed:
            self.events_committed()
        return answer

    async def _apply_batch(self, jobs: list[Job], held: Held) -> list[Answer | Exception]:
        user_id = jobs[0].user_id
        async with self.uow_factory(held.token, held.row_locks) as uow:
            debits = sum(job.amount for job in jobs if isinstance(job, Pay))
            wallet = await self.wallet(uow, user_id, covering=debits)
            batch = WalletBatch(wallet, self.clock(), _new_id)
            batch.known_orders = await uow.payments.by_order_ids(
                [job.order_id for job in jobs if isinstance(job, Pay)]
            )
            batch.known_payments = await uow.payments.by_ids(
                [job.payment_id for job in jobs if isinstance(job, RefundPayment)]
            )
            for job in jobs:
                if isinstance(job, CreditWallet) and job.reference not in batch.known_credits:
                    earlier = await uow.ledger.by_reference(LedgerKind.CREDIT, job.reference)
                    if earlier is not None:
                        batch.known_credits[job.reference] = earlier
            answers: list[Answer | Exception] = [batch.apply(job) for job in jobs]
            if batch.changed:
                await self._write(uow, batch)
                held.ensure_held()
                await uow.commit()
            return answers

    async def _write(self, uow: UnitOfWork, batch: WalletBatch) -> None:
        await uow.wallets.update_balance(batch.start, batch.wallet, batch.now)
        if batch.new_payments:
            await uow.payments.add_many(list(batch.new_payments.values()))
        for cancelled in batch.cancelled:
            await uow.payments.mark_cancelled(cancelled)
        await uow.ledger.add_many(batch.entries, batch.now)
        if batch.announced:
            occurred_at = iso(batch.now)
            events = [p.event(_new_id(), occurred_at) for p in batch.announced]
            await uow.outbox.add_many(self.events_topic, events, batch.now)


def _new_id() -> str:
    return str(ids.uuid4())


def found(payment: Payment | None, reference: str) -> Payment:
    if payment is None:
        raise PaymentNotFound(reference)
    return payment
