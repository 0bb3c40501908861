"""Wallets and payments. Money is integer won."""

from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

from services.payment.domain.errors import InsufficientBalance
from shared.events import PAYMENT_CANCELLED, PAYMENT_COMPLETED, PaymentEvent


class PaymentStatus(StrEnum):
    COMPLETED = "COMPLETED"
    CANCELLED = "CANCELLED"


class LedgerKind(StrEnum):
    PAYMENT = "PAYMENT"
    REFUND = "REFUND"
    CREDIT = "CREDIT"
    CHARGE = "CHARGE"


class ChargeStatus(StrEnum):
    PENDING = "PENDING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"


class FailureReason(StrEnum):
    DECLINED = "DECLINED"  # final: the bank said no
    BANK_UNAVAILABLE = "BANK_UNAVAILABLE"  # the bank was never asked; a retry may run it
    NOT_AT_BANK = "NOT_AT_BANK"  # the bank never received it; a retry may run it

    @property
    def retriable(self) -> bool:
        return self is not FailureReason.DECLINED


@dataclass(frozen=True)
class Wallet:
    user_id: str
    balance: int

    def debited(self, amount: int) -> "Wallet":
        if amount > self.balance:
            raise InsufficientBalance(self.user_id, self.balance, amount)
        return replace(self, balance=self.balance - amount)

    def credited(self, amount: int) -> "Wallet":
        return replace(self, balance=self.balance + amount)

    @property
    def unused(self) -> bool:
        return self.balance == 0


@dataclass(frozen=True)
class Payment:
    payment_id: str
    order_id: str
    user_id: str
    amount: int
    status: PaymentStatus
    balance_after: int
    created_at: datetime
    cancelled_at: datetime | None = None

    def same_request(self, user_id: str, amount: int) -> bool:
        return self.user_id == user_id and self.amount == amount

    @property
    def cancellable(self) -> bool:
        return self.status is PaymentStatus.COMPLETED

    def cancelled(self, at: datetime) -> "Payment":
        return replace(self, status=PaymentStatus.CANCELLED, cancelled_at=at)

    def event(self, event_id: str, occurred_at: str) -> PaymentEvent:
        """The event this payment's current state announces."""
        kind = PAYMENT_COMPLETED if self.status is PaymentStatus.COMPLETED else PAYMENT_CANCELLED
        return PaymentEvent(
            event_id, kind, occurred_at, self.payment_id, self.order_id, self.user_id, self.amount
        )


@dataclass(frozen=True)
class LedgerEntry:
    """One balance change. For every wallet, balance == sum of its entries' deltas."""

    user_id: str
    delta: int
    kind: LedgerKind
    reference: str
    balance_after: int


@dataclass(frozen=True)
class Charge:
    """Money from the user's bank account into the wallet, once per charge_id."""

    charge_id: str
    user_id: str
    amount: int
    status: ChargeStatus
    created_at: datetime
    failure_reason: FailureReason | None = None
    balance_after: int | None = None

    def same_request(self, user_id: str, amount: int) -> bool:
        return self.user_id == user_id and self.amount == amount

    @property
    def retriable(self) -> bool:
        """FAILED without the bank having moved money, so a retry may run it again."""
        return self.status is ChargeStatus.FAILED and bool(
            self.failure_reason and self.failure_reason.retriable
        )

    def succeeded(self, balance_after: int) -> "Charge":
        return replace(self, status=ChargeStatus.SUCCEEDED, balance_after=balance_after)

    def failed(self, reason: FailureReason) -> "Charge":
        return replace(self, status=ChargeStatus.FAILED, failure_reason=reason)

    def rearmed(self) -> "Charge":
        return replace(self, status=ChargeStatus.PENDING, failure_reason=None)
