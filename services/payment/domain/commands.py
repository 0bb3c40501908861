"""What callers ask the payment service to do."""

from dataclasses import dataclass


@dataclass(frozen=True)
class Pay:
    order_id: str
    user_id: str
    amount: int


@dataclass(frozen=True)
class CancelPayment:
    payment_id: str


@dataclass(frozen=True)
class CreditWallet:
    user_id: str
    amount: int
    reference: str


@dataclass(frozen=True)
class ChargeWallet:
    charge_id: str
    user_id: str
    amount: int


@dataclass(frozen=True)
class RefundPayment:
    """Give a payment's amount back to its wallet, once (CancelPayment, under the lock)."""

    user_id: str
    payment_id: str
