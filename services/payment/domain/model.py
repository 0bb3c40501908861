"""Wallets and payments. Money is integer won."""

from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

from services.payment.domain.errors import InsufficientBalance

MIN_AMOUNT = 1
MAX_AMOUNT = 100_000_000
ID_PATTERN = r"^[A-Za-z0-9_.:-]{1,64}$"


class PaymentStatus(StrEnum):
    COMPLETED = "COMPLETED"
    CANCELLED = "CANCELLED"


class LedgerKind(StrEnum):
    PAYMENT = "PAYMENT"
    REFUND = "REFUND"
    CREDIT = "CREDIT"


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


@dataclass(frozen=True)
class LedgerEntry:
    """One balance change. For every wallet, balance == sum of its entries' deltas."""

    user_id: str
    delta: int
    kind: LedgerKind
    reference: str
    balance_after: int
