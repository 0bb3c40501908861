"""HTTP routes: parse, build a command, call the service, shape the answer.

One router per API key scope (app.py puts the key check on each): `reads` (read),
`payments` (pay), `refunds` (refund). /health and /health/live are shared.health's.
"""

import logging
from collections.abc import Awaitable
from typing import Annotated, Any

from fastapi import APIRouter, Query

from services.payment.domain.commands import CancelPayment, ChargeWallet, Pay
from services.payment.domain.model import ChargeStatus
from services.payment.entrypoints.deps import (
    ChargeIdempotencyDep,
    ChargeServiceDep,
    IdempotencyDep,
    MetricsDep,
    ServiceDep,
)
from services.payment.entrypoints.errors import status_of
from services.payment.entrypoints.idempotent import Idempotency, run_once
from services.payment.entrypoints.schemas import (
    ChargeBody,
    ChargeRequest,
    ErrorBody,
    PaymentBody,
    PaymentRequest,
    WalletBody,
    WalletRequest,
    charge_body,
    payment_body,
    wallet_body,
)
from services.payment.metrics import PaymentMetrics
from services.payment.service_layer.handlers import PaymentService
from shared import tracing
from shared.contract import ID_MAX_LENGTH, ID_PATTERN
from shared.fields import PathId
from shared.http import JsonResponse
from shared.idempotency import fingerprint

ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody} for status in (401, 402, 403, 404, 409, 413, 422, 502, 503)
}

log = logging.getLogger(__name__)

reads = APIRouter(responses=ERRORS)
payments = APIRouter(responses=ERRORS)
refunds = APIRouter(responses=ERRORS)


@payments.post("/wallets", status_code=201, response_model=WalletBody)
async def create_wallet(request: WalletRequest, service: ServiceDep) -> JsonResponse:
    """Create an empty wallet (201); the same again answers 200."""
    wallet, created = await service.create_wallet(request.user_id)
    return JsonResponse(wallet_body(wallet), status_code=201 if created else 200)


@reads.get("/wallets/{user_id}", response_model=WalletBody)
async def get_wallet(user_id: PathId, service: ServiceDep) -> JsonResponse:
    """A wallet and its balance."""
    return JsonResponse(wallet_body(await service.get_wallet(user_id)))


@payments.post("/payments", status_code=201, response_model=PaymentBody)
async def create_payment(
    request: PaymentRequest, service: ServiceDep, store: IdempotencyDep, metrics: MetricsDep
) -> JsonResponse:
    """Pay an order from a wallet, once per order_id."""
    return await pay_order(request, service, store, metrics)


async def pay_order(
    request: PaymentRequest, service: PaymentService, store: Idempotency, metrics: PaymentMetrics
) -> JsonResponse:
    """POST /payments once parsed: by the route above, or by hot_path.py's, which serves it
    by default."""
    tracing.bind(order_id=request.order_id, user_id=request.user_id)
    command = Pay(request.order_id, request.user_id, request.amount)

    async def pay() -> tuple[int, dict, bool]:
        result = await service.pay(command)
        return 201, payment_body(result.payment), result.replayed

    body_fingerprint = fingerprint({"user_id": request.user_id, "amount": request.amount})
    answer = run_once(store, request.order_id, body_fingerprint, pay)
    return await counted(metrics, answer, request.amount)


@payments.post("/wallets/{user_id}/charges", status_code=201, response_model=ChargeBody)
async def charge_wallet(
    user_id: PathId, request: ChargeRequest, charges: ChargeServiceDep, store: ChargeIdempotencyDep
) -> JsonResponse:
    """Top up a wallet from the user's bank account, once per charge_id (202 while unknown)."""
    tracing.bind(charge_id=request.charge_id, user_id=user_id)
    command = ChargeWallet(request.charge_id, user_id, request.amount)

    async def charge() -> tuple[int, dict, bool]:
        result = await charges.charge(command)
        status = 201 if result.charge.status is ChargeStatus.SUCCEEDED else 202
        return status, charge_body(result.charge), result.replayed

    body_fingerprint = fingerprint({"user_id": user_id, "amount": request.amount})
    return await run_once(store, request.charge_id, body_fingerprint, charge)


@reads.get("/payments", response_model=PaymentBody)
async def find_payment(
    order_id: Annotated[str, Query(pattern=ID_PATTERN, max_length=ID_MAX_LENGTH)],
    service: ServiceDep,
) -> JsonResponse:
    """The payment made for an order_id."""
    return JsonResponse(payment_body(await service.find_payment(order_id)))


@reads.get("/payments/{payment_id}", response_model=PaymentBody)
async def get_payment(payment_id: PathId, service: ServiceDep) -> JsonResponse:
    """A payment by its id."""
    return JsonResponse(payment_body(await service.get_payment(payment_id)))


@refunds.post("/payments/{payment_id}/cancel", response_model=PaymentBody)
async def cancel_payment(
    payment_id: PathId, service: ServiceDep, metrics: MetricsDep
) -> JsonResponse:
    """Cancel a payment; its amount goes back to the wallet once."""
    tracing.bind(payment_id=payment_id)
    cancelled = await service.cancel(CancelPayment(payment_id))
    metrics.payments.labels("cancelled").inc()
    log.info("payment cancelled")
    return JsonResponse(payment_body(cancelled))


async def counted(
    metrics: PaymentMetrics, answer: Awaitable[JsonResponse], amount: int
) -> JsonResponse:
    """Count and log a payment request's outcome, whether it answered or raised."""
    try:
        response = await answer
    except Exception as exc:
        metrics.payment_answered(status_of(exc), replayed=False)
        log.info("payment answered %d: %s", status_of(exc), type(exc).__name__)
        raise
    replayed = "idempotent-replayed" in response.headers
    metrics.payment_answered(response.status_code, replayed, amount)
    # Kept at INFO though it costs 15-18 µs: with its trace id, it is the payment's trail.
    log.info("payment answered %d%s", response.status_code, " (replayed)" if replayed else "")
    return response
