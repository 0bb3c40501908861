"""The fake bank's HTTP API (loopback only): transfers, account views and fault injection.

A transfer is applied before the injected latency, so a caller that times out meets the
real-world case the payment service must reconcile: money moved, answer lost.
"""

import asyncio
import logging
import random
from typing import Annotated

from fastapi import Depends, FastAPI
from pydantic import BaseModel, ConfigDict, Field

from services.bank_gateway.fake_bank.bank import Bank, InjectedError, TransferConflict
from services.bank_gateway.schemas import TransferRequest
from services.bank_gateway.settings import FakeBankSettings
from shared.auth import KeyRing
from shared.fields import PathId
from shared.health import NotReady, health_router
from shared.http import FASTAPI_TELEMETRY, JsonResponse, error_response, install_error_handlers
from shared.metrics import install_metrics, new_registry

log = logging.getLogger(__name__)


class FaultsBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    error_rate: Annotated[float, Field(ge=0, le=1)] = 0.0
    latency_ms: Annotated[int, Field(ge=0, le=600_000)] = 0
    latency_jitter_ms: Annotated[int, Field(ge=0, le=600_000)] = 0
    down: bool = False
    decline_rate: Annotated[float, Field(ge=0, le=1)] = 0.0


def create_app(settings: FakeBankSettings) -> FastAPI:
    bank = Bank(settings.fake_bank_initial_balance, random.Random(settings.fake_bank_seed))
    app = FastAPI(
        title="Mock-Pay fake bank",
        description="A test double of the external bank.",
        telemetry=FASTAPI_TELEMETRY,
    )
    app.state.bank = bank
    install_error_handlers(app, retry_after_seconds=1)
    app.include_router(health_router(settings.health_check_timeout_seconds))

    async def not_down() -> None:
        if bank.faults.down:
            raise NotReady("the bank is down (injected)")

    app.state.health_checks = {"bank": not_down}

    def outage() -> JsonResponse:
        return error_response(503, "BANK_DOWN", "the bank is down (injected)")

    @app.post("/transfers", status_code=201)
    async def transfer(request: TransferRequest) -> JsonResponse:
        """Move money once per transfer_id."""
        bank.requests += 1
        bank.transfer_requests += 1
        if bank.faults.down:
            return outage()
        try:
            record = bank.transfer(
                request.transfer_id, request.account, request.amount, request.direction
            )
        except TransferConflict:
            return error_response(409, "TRANSFER_CONFLICT", "transfer_id reused with another body")
        except InjectedError:
            await asyncio.sleep(bank.latency_seconds())
            return error_response(500, "BANK_INTERNAL_ERROR", "injected failure; nothing moved")
        await asyncio.sleep(bank.latency_seconds())
        if record.status == "DECLINED":
            return error_response(402, "BANK_DECLINED", "the bank declined the transfer")
        return JsonResponse({"transfer_id": record.transfer_id, "status": record.status.value}, 201)

    @app.get("/transfers/{transfer_id}")
    async def get_transfer(
        transfer_id: PathId,
    ) -> JsonResponse:
        """The bank's record of a transfer, for reconciliation."""
        bank.requests += 1
        if bank.faults.down:
            return outage()
        record = bank.transfers.get(transfer_id)
        if record is None:
            return error_response(404, "TRANSFER_NOT_FOUND", f"no transfer {transfer_id!r}")
        return JsonResponse({**record.__dict__, "status": record.status.value})

    @app.get("/accounts/{account}")
    async def get_account(account: PathId) -> JsonResponse:
        """An account's balance and what succeeded transfers moved."""
        return JsonResponse(bank.account(account))

    admin = KeyRing.of_bare_keys([settings.fake_bank_admin_token.get_secret_value()])

    @app.put("/faults", dependencies=[Depends(admin.require())])
    async def put_faults(body: FaultsBody) -> JsonResponse:
        """Operators: inject faults (error rate, latency + jitter, outage, decline rate)."""
        for name, value in body.model_dump().items():
            setattr(bank.faults, name, value)
        log.warning("faults set: %s", body.model_dump())
        return JsonResponse(bank.faults.__dict__)

    @app.get("/faults")
    async def get_faults() -> JsonResponse:
        """The faults in force."""
        return JsonResponse(bank.faults.__dict__)

    @app.get("/stats")
    async def stats() -> JsonResponse:
        """How many transfer requests reached the bank."""
        return JsonResponse(
            {
                "requests": bank.requests,
                "transfer_requests": bank.transfer_requests,
                "transfers": len(bank.transfers),
            }
        )

    install_metrics(app, new_registry())
    return app
