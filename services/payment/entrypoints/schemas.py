"""Request and response bodies. Amounts are strict JSON integers; ids are 1-64 safe chars."""

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from services.payment.domain.model import Charge, Payment, Wallet
from shared.clock import iso
from shared.fields import Amount, Id


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class WalletRequest(Request):
    user_id: Id


class PaymentRequest(Request):
    order_id: Id
    user_id: Id
    amount: Amount


class ChargeRequest(Request):
    charge_id: Id
    amount: Amount


class ChargeBody(BaseModel):
    charge_id: str
    user_id: str
    amount: int
    status: str
    balance_after: int | None


class WalletBody(BaseModel):
    user_id: str
    balance: int


class PaymentBody(BaseModel):
    payment_id: str
    order_id: str
    user_id: str
    amount: int
    status: str
    balance_after: int
    created_at: datetime
    cancelled_at: datetime | None = None


class ErrorBody(BaseModel):
    code: str
    message: str


def wallet_body(wallet: Wallet) -> dict[str, Any]:
    return {"user_id": wallet.user_id, "balance": wallet.balance}


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else iso(moment)


def payment_body(payment: Payment) -> dict[str, Any]:
    return {
        "payment_id": payment.payment_id,
        "order_id": payment.order_id,
        "user_id": payment.user_id,
        "amount": payment.amount,
        "status": payment.status.value,
        "balance_after": payment.balance_after,
        "created_at": _iso(payment.created_at),
        "cancelled_at": _iso(payment.cancelled_at),
    }


def charge_body(charge: Charge) -> dict[str, Any]:
    return {
        "charge_id": charge.charge_id,
        "user_id": charge.user_id,
        "amount": charge.amount,
        "status": charge.status.value,
        "balance_after": charge.balance_after,
    }
