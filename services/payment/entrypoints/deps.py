"""FastAPI dependencies: the components built at startup, as annotated aliases.

They are `async def` on purpose: FastAPI runs a plain `def` dependency in its thread pool,
which cost two thread hops per payment (seen in a profile under bench-events).
"""

from typing import Annotated

from fastapi import Depends, Request

from services.payment.bootstrap import Components
from services.payment.entrypoints.idempotent import Idempotency
from services.payment.metrics import PaymentMetrics
from services.payment.service_layer.charges import ChargeService
from services.payment.service_layer.handlers import PaymentService
from shared.idempotency import IdempotencyStore


def _components(request: Request) -> Components:
    parts: Components = request.app.state.components
    return parts


async def components(request: Request) -> Components:
    return _components(request)


async def payment_service(request: Request) -> PaymentService:
    return _components(request).service


def _idempotency(request: Request, store: IdempotencyStore) -> Idempotency:
    fallback = _components(request).settings.lock_fallback == "database"
    return Idempotency(store, database_fallback=fallback)


async def idempotency_store(request: Request) -> Idempotency:
    return _idempotency(request, _components(request).idempotency)


async def charge_service(request: Request) -> ChargeService:
    return _components(request).charges


async def charge_idempotency_store(request: Request) -> Idempotency:
    return _idempotency(request, _components(request).charge_idempotency)


async def payment_metrics(request: Request) -> PaymentMetrics:
    return request.app.state.metrics


ChargeServiceDep = Annotated[ChargeService, Depends(charge_service)]
ChargeIdempotencyDep = Annotated[Idempotency, Depends(charge_idempotency_store)]
ComponentsDep = Annotated[Components, Depends(components)]
ServiceDep = Annotated[PaymentService, Depends(payment_service)]
MetricsDep = Annotated[PaymentMetrics, Depends(payment_metrics)]
IdempotencyDep = Annotated[Idempotency, Depends(idempotency_store)]
