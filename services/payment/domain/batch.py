"""One batch of a wallet's money movements, applied in memory in arrival order.

Each job is judged on its own, exactly as it would be alone (its own idempotency check,
its own balance check); a job that fails answers with its error and changes nothing. What
the batch collected is then written in one transaction: new payment rows (in their final
state), payments cancelled, one ledger entry per movement with its own `balance_after`,
the payments whose events go to the outbox, and the wallet's final balance.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from services.payment.domain.commands import CreditWallet, Pay, RefundPayment
from services.payment.domain.errors import (
    CreditReferenceReused,
    DomainError,
    IdempotencyKeyReused,
    PaymentNotFound,
)
from services.payment.domain.model import (
    LedgerEntry,
    LedgerKind,
    Payment,
    PaymentStatus,
    Wallet,
)

Job = Pay | RefundPayment | CreditWallet


@dataclass(frozen=True)
class Paid:
    payment: Payment
    replayed: bool  # the order_id was paid before (or earlier in this batch)


@dataclass(frozen=True)
class Credited:
    wallet: Wallet
    replayed: bool


Answer = Paid | Payment | Credited  # Payment: the state after a refund


@dataclass
class WalletBatch:
    """Reads first (`known_*`), then `apply` each job, then write what it collected."""

    wallet: Wallet
    now: datetime
    new_id: Callable[[], str]
    known_orders: dict[str, Payment] = field(default_factory=dict)  # order_id -> payment
    known_payments: dict[str, Payment] = field(default_factory=dict)  # payment_id -> payment
    known_credits: dict[str, LedgerEntry] = field(default_factory=dict)  # reference -> entry
    start: Wallet = field(init=False)
    new_payments: dict[str, Payment] = field(default_factory=dict)  # inserted, final state
    cancelled: list[Payment] = field(default_factory=list)  # existing rows cancelled now
    entries: list[LedgerEntry] = field(default_factory=list)
    announced: list[Payment] = field(default_factory=list)  # one event each, in order

    def __post_init__(self) -> None:
        self.start = self.wallet

    @property
    def changed(self) -> bool:
        return bool(self.entries)

    def apply(self, job: Job) -> Answer | DomainError:
        try:
            if isinstance(job, Pay):
                return self._pay(job)
            if isinstance(job, RefundPayment):
                return self._refund(job)
            return self._credit(job)
        except DomainError as exc:
            return exc

    def _pay(self, cmd: Pay) -> Paid:
        existing = self.known_orders.get(cmd.order_id)
        if existing is not None:
            if not existing.same_request(cmd.user_id, cmd.amount):
                raise IdempotencyKeyReused(cmd.order_id)
            return Paid(existing, replayed=True)
        debited = self.wallet.debited(cmd.amount)
        payment = Payment(
            self.new_id(),
            cmd.order_id,
            cmd.user_id,
            cmd.amount,
            PaymentStatus.COMPLETED,
            debited.balance,
            self.now,
        )
        self._book(debited, LedgerKind.PAYMENT, payment.payment_id)
        self.new_payments[payment.payment_id] = payment
        self.known_orders[cmd.order_id] = payment
        self.known_payments[payment.payment_id] = payment
        self.announced.append(payment)
        return Paid(payment, replayed=False)

    def _refund(self, cmd: RefundPayment) -> Payment:
        payment = self.known_payments.get(cmd.payment_id)
        if payment is None or payment.user_id != self.wallet.user_id:
            raise PaymentNotFound(cmd.payment_id)
        if not payment.cancellable:
            return payment
        cancelled = payment.cancelled(self.now)
        self._book(self.wallet.credited(payment.amount), LedgerKind.REFUND, payment.payment_id)
        self.known_payments[payment.payment_id] = cancelled
        self.known_orders[payment.order_id] = cancelled
        if payment.payment_id in self.new_payments:
            self.new_payments[payment.payment_id] = cancelled  # inserted cancelled at once
        else:
            self.cancelled.append(cancelled)
        self.announced.append(cancelled)
        return cancelled

    def _credit(self, cmd: CreditWallet) -> Credited:
        earlier = self.known_credits.get(cmd.reference)
        if earlier is not None:
            if (earlier.user_id, earlier.delta) != (cmd.user_id, cmd.amount):
                raise CreditReferenceReused(cmd.reference, earlier.user_id, earlier.delta)
            return Credited(self.wallet, replayed=True)
        self._book(self.wallet.credited(cmd.amount), LedgerKind.CREDIT, cmd.reference)
        self.known_credits[cmd.reference] = self.entries[-1]
        return Credited(self.wallet, replayed=False)

    def _book(self, after: Wallet, kind: LedgerKind, reference: str) -> None:
        delta = after.balance - self.wallet.balance
        self.entries.append(LedgerEntry(after.user_id, delta, kind, reference, after.balance))
        self.wallet = after
