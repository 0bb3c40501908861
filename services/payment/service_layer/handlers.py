"""The payment service's use cases. Each money movement runs under the wallet's lock, in a
transaction of its own that commits before the lock is released (see locked_transaction).
"""

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from services.payment.adapters.uow import UnitOfWork
from services.payment.domain.commands import CancelPayment, CreditWallet, Pay
from services.payment.domain.errors import (
    CreditReferenceReused,
    IdempotencyKeyReused,
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
from services.payment.service_layer.locking import Locking
from shared.clock import iso, utcnow


@dataclass(frozen=True)
class CreditResult:
    wallet: Wallet
    replayed: bool  # the reference was credited before: nothing was added now


@dataclass(frozen=True)
class PaymentResult:
    payment: Payment
    replayed: bool  # found in the database under the same order_id: nothing was charged


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
    ) -> None:
        super().__init__(locking, unit_of_work_factory, clock)
        self.events_topic = events_topic
        self.events_committed = events_committed  # e.g. wake the outbox relay

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
            payment = await uow.payments.get(payment_id)
        if payment is None:
            raise PaymentNotFound(payment_id)
        return payment

    async def find_payment(self, order_id: str) -> Payment:
        async with self.reading() as uow:
            payment = await uow.payments.by_order_id(order_id)
        if payment is None:
            raise PaymentNotFound(order_id)
        return payment

    async def pay(self, cmd: Pay) -> PaymentResult:
        """Debit the wallet once per order_id; a repeat returns the first payment."""
        result = await self._debit(cmd)
        if not result.replayed:
            self.events_committed()
        return result

    async def _debit(self, cmd: Pay) -> PaymentResult:
        async with self.locked_transaction(f"wallet:{cmd.user_id}") as uow:
            wallet = await self.wallet(uow, cmd.user_id)
            existing = await uow.payments.by_order_id(cmd.order_id)
            if existing is not None:
                if not existing.same_request(cmd.user_id, cmd.amount):
                    raise IdempotencyKeyReused(cmd.order_id)
                return PaymentResult(existing, replayed=True)
            debited = wallet.debited(cmd.amount)
            now = self.clock()
            payment = Payment(
                str(uuid.uuid4()),
                cmd.order_id,
                cmd.user_id,
                cmd.amount,
                PaymentStatus.COMPLETED,
                debited.balance,
                now,
            )
            await self.book(uow, wallet, debited, LedgerKind.PAYMENT, payment.payment_id, now)
            await uow.payments.add(payment)
            await self._announce(uow, payment)
            return PaymentResult(payment, replayed=False)

    async def _announce(self, uow: UnitOfWork, payment: Payment) -> None:
        """Put the payment's event in the outbox, in the transaction that changed it."""
        event = payment.event(str(uuid.uuid4()), iso(self.clock()))
        await uow.outbox.add(self.events_topic, event, self.clock())

    async def cancel(self, cmd: CancelPayment) -> Payment:
        """Refund a payment once, however often it is called."""
        payment = await self.get_payment(cmd.payment_id)
        if not payment.cancellable:
            return payment
        refunded = await self._refund(payment.user_id, cmd.payment_id)
        self.events_committed()
        return refunded

    async def _refund(self, user_id: str, payment_id: str) -> Payment:
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
            await self._announce(uow, cancelled)
            return cancelled

    async def credit(self, cmd: CreditWallet) -> CreditResult:
        """Add money to a wallet once per reference (operators); a repeat adds nothing."""
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
