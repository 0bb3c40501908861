"""The fake bank and the bank gateway as real servers, with the payment app in front."""

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx

from services.bank_gateway.app import create_app as create_gateway
from services.bank_gateway.fake_bank.app import create_app as create_fake_bank
from services.bank_gateway.settings import FakeBankSettings, GatewaySettings
from testkit.servers import serving
from tests.integration.payment_harness import PaymentHarness, running_payment_app


@dataclass
class BankSide:
    bank: httpx.AsyncClient
    gateway: httpx.AsyncClient

    async def faults(self, **faults: object) -> None:
        answer = await self.bank.put("/faults", json=faults)
        assert answer.status_code == 200, answer.text

    async def requests_seen(self) -> int:
        return (await self.bank.get("/stats")).json()["requests"]

    async def breaker(self) -> dict:
        return (await self.gateway.get("/circuit-breaker")).json()

    async def withdrawn(self, account: str) -> int:
        return (await self.bank.get(f"/accounts/{account}")).json()["withdrawn"]


@contextlib.asynccontextmanager
async def running_bank(**gateway_overrides: Any) -> AsyncIterator[tuple[BankSide, str]]:
    """Yields the bank side and the gateway's URL."""
    bank_settings = FakeBankSettings(fake_bank_seed=7)
    admin = {"Authorization": f"Bearer {bank_settings.fake_bank_admin_token.get_secret_value()}"}
    async with serving(create_fake_bank(bank_settings)) as bank_url:
        gateway_settings = GatewaySettings(bank_url=bank_url, **gateway_overrides)
        token = gateway_settings.bank_gateway_token.get_secret_value()
        async with serving(create_gateway(gateway_settings)) as gateway_url:
            headers = {"Authorization": f"Bearer {token}"}
            async with (
                httpx.AsyncClient(base_url=bank_url, headers=admin) as bank,
                httpx.AsyncClient(base_url=gateway_url, headers=headers) as gateway,
            ):
                yield BankSide(bank, gateway), gateway_url


@contextlib.asynccontextmanager
async def running_payment_with_bank(
    gateway: dict | None = None, **payment_overrides: Any
) -> AsyncIterator[tuple[PaymentHarness, BankSide]]:
    async with running_bank(**(gateway or {})) as (side, gateway_url):  # noqa: SIM117
        async with running_payment_app(bank_gateway_url=gateway_url, **payment_overrides) as app:
            yield app, side
