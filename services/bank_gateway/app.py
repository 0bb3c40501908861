"""The bank gateway's FastAPI application: transfers through the breaker, breaker admin."""

import logging
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Literal

import aiohttp
from fastapi import APIRouter, Depends, FastAPI, Request
from pydantic import BaseModel
from starlette.types import ASGIApp, Receive, Scope, Send

from services.bank_gateway.bank_client import (
    BankClient,
    BankDeclined,
    BankFailed,
    BankRejected,
    BankTimedOut,
)
from services.bank_gateway.deps import BankDep
from services.bank_gateway.metrics import register_breaker
from services.bank_gateway.schemas import TransferRequest
from services.bank_gateway.settings import GatewaySettings
from shared.auth import KeyRing
from shared.breaker import CallNotPermitted, CircuitBreaker
from shared.fields import PathId
from shared.health import NotReady, health_router
from shared.http import FASTAPI_TELEMETRY, JsonResponse, error_response, install_error_handlers
from shared.metrics import install_metrics, new_registry
from shared.tracing import TraceMiddleware

log = logging.getLogger(__name__)


class BreakerStateBody(BaseModel):
    state: Literal["CLOSED", "FORCED_OPEN", "DISABLED"]


def _on_refused(_: Request, exc: Exception) -> JsonResponse:
    assert isinstance(exc, CallNotPermitted)
    retry_after = str(max(1, math.ceil(exc.retry_after)))
    return error_response(
        503, "BANK_UNAVAILABLE", f"{exc}; the bank is not called", {"Retry-After": retry_after}
    )


def _on_bank_error(_: Request, exc: Exception) -> JsonResponse:
    if isinstance(exc, BankDeclined):
        return error_response(402, "BANK_DECLINED", "the bank declined the transfer")
    if isinstance(exc, BankTimedOut):
        return error_response(504, "BANK_TIMEOUT", f"{exc}; the outcome is unknown")
    if isinstance(exc, BankRejected):
        return error_response(exc.status, "BANK_REJECTED", f"{exc}: {exc.body}")
    log.warning("bank call failed: %s", exc)
    return error_response(502, "BANK_ERROR", str(exc))


class OpenCircuitEdge:
    """Rejects authenticated bank calls at the ASGI edge while the circuit is open.

    Nothing of the request is read or validated: when the bank cannot be called, the
    fastest correct answer is 503 with Retry-After.
    """

    def __init__(self, app: ASGIApp, breaker: CircuitBreaker, keys: KeyRing) -> None:
        self.app = app
        self.breaker = breaker
        self.keys = keys

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["path"].startswith("/transfers")
            and self.keys.presented(_header(scope, b"authorization")) is not None
        ):
            try:
                self.breaker.refuse_if_open()
            except CallNotPermitted as refused:
                await _on_refused(None, refused)(scope, receive, send)  # type: ignore[arg-type]
                return
        await self.app(scope, receive, send)


def _header(scope: Scope, name: bytes) -> str:
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return ""


router = APIRouter()


@router.post("/transfers", status_code=201)
async def transfer(body: TransferRequest, bank: BankDep) -> JsonResponse:
    """Move money at the bank, idempotent by transfer_id; 503 fast when the circuit is open."""
    result = await bank.transfer(body)
    return JsonResponse({"transfer_id": body.transfer_id, "status": result["status"]}, 201)


@router.get("/transfers/{transfer_id}")
async def get_transfer(transfer_id: PathId, bank: BankDep) -> JsonResponse:
    """The bank's record of a transfer, for reconciliation."""
    record = await bank.get_transfer(transfer_id)
    if record is None:
        return error_response(404, "TRANSFER_NOT_FOUND", f"the bank has no {transfer_id!r}")
    return JsonResponse(record)


@router.get("/circuit-breaker")
async def breaker_state(bank: BankDep) -> JsonResponse:
    """The breaker's state and its window's figures."""
    return JsonResponse(bank.breaker.metrics())


@router.put("/circuit-breaker")
async def set_breaker_state(body: BreakerStateBody, bank: BankDep) -> JsonResponse:
    """Operators: force the breaker open, disable it, or reset it to CLOSED."""
    actions = {
        "CLOSED": bank.breaker.reset,
        "FORCED_OPEN": bank.breaker.force_open,
        "DISABLED": bank.breaker.disable,
    }
    actions[body.state]()
    return JsonResponse(bank.breaker.metrics())


def bank_connector(settings: GatewaySettings) -> aiohttp.TCPConnector:
    return aiohttp.TCPConnector(
        limit=settings.bank_max_connections, keepalive_timeout=settings.bank_keepalive_seconds
    )


async def bank_answers(http: aiohttp.ClientSession) -> None:
    """Readiness: the bank answers its own health check with 200."""
    try:
        async with http.get("/health") as answer:
            if answer.status != 200:
                raise NotReady(f"the bank's /health answered {answer.status}")
    except aiohttp.ClientError as exc:
        raise NotReady(f"the bank is not reachable: {exc!r}") from exc


def create_app(settings: GatewaySettings) -> FastAPI:
    breaker = CircuitBreaker("bank", settings.breaker)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        timeout = aiohttp.ClientTimeout(
            total=None,
            connect=settings.bank_connect_timeout_seconds,
            sock_read=settings.bank_read_timeout_seconds,
        )
        connector = bank_connector(settings)
        async with aiohttp.ClientSession(
            settings.bank_url, timeout=timeout, connector=connector
        ) as http:
            app.state.bank = BankClient(http, breaker)
            app.state.http = http
            app.state.health_checks = {"bank": lambda: bank_answers(http)}
            yield

    app = FastAPI(
        title="Mock-Pay bank gateway",
        description="The external bank behind a Resilience4j-style circuit breaker.",
        lifespan=lifespan,
        telemetry=FASTAPI_TELEMETRY,
    )
    install_error_handlers(app, settings.retry_after_seconds)
    app.include_router(health_router(settings.health_check_timeout_seconds))
    app.add_exception_handler(CallNotPermitted, _on_refused)
    for exc_class in (BankDeclined, BankTimedOut, BankRejected, BankFailed):
        app.add_exception_handler(exc_class, _on_bank_error)

    keys = KeyRing.of_bare_keys([settings.bank_gateway_token.get_secret_value()])
    app.include_router(router, dependencies=[Depends(keys.require())])
    app.add_middleware(OpenCircuitEdge, breaker=breaker, keys=keys)
    app.add_middleware(TraceMiddleware)  # the payment service's trace, on our log lines too
    registry = new_registry()
    register_breaker(breaker, registry)
    install_metrics(app, registry)
    return app
