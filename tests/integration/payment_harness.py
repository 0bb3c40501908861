"""Runs the payment app in-process (lifespan included) against the real MariaDB and Redis."""

import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx

from services.payment.bootstrap import Components
from services.payment.domain.commands import CreditWallet
from services.payment.entrypoints.app import create_app
from services.payment.settings import PaymentSettings


@dataclass
class PaymentHarness:
    client: httpx.AsyncClient
    parts: Components
    settings: PaymentSettings

    async def new_wallet(self, balance: int = 0) -> str:
        user_id = f"u-{uuid.uuid4().hex[:16]}"
        created = await self.client.post("/wallets", json={"user_id": user_id})
        assert created.status_code == 201, created.text
        if balance:
            await self.parts.service.credit(CreditWallet(user_id, balance, f"seed-{user_id}"))
        return user_id

    async def pay(self, user_id: str, amount: int, order_id: str | None = None) -> httpx.Response:
        order_id = order_id or f"o-{uuid.uuid4().hex}"
        return await self.client.post(
            "/payments", json={"order_id": order_id, "user_id": user_id, "amount": amount}
        )

    async def balance(self, user_id: str) -> int:
        response = await self.client.get(f"/wallets/{user_id}")
        assert response.status_code == 200, response.text
        return response.json()["balance"]

    async def query(self, sql: str, *args: object) -> list[tuple]:
        async with self.parts.pool.acquire() as conn, conn.cursor() as cur:
            await cur.execute(sql, args)
            rows = await cur.fetchall()
            await conn.rollback()
            return list(rows)

    async def assert_ledger_consistent(self, user_id: str) -> int:
        """balance == sum of the ledger, never negative; returns the balance."""
        [(balance,)] = await self.query("SELECT balance FROM wallets WHERE user_id = %s", user_id)
        [(total,)] = await self.query(
            "SELECT COALESCE(SUM(delta), 0) FROM ledger_entries WHERE user_id = %s", user_id
        )
        assert balance == total, f"balance {balance} != ledger sum {total}"
        assert balance >= 0
        return balance

    async def payment_count(self, user_id: str) -> int:
        [(count,)] = await self.query("SELECT COUNT(*) FROM payments WHERE user_id = %s", user_id)
        return count


@contextlib.asynccontextmanager
async def running_payment_app(**overrides: Any) -> AsyncIterator[PaymentHarness]:
    settings = PaymentSettings(**overrides)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        headers = {"Authorization": f"Bearer {settings.api_keys()[0]}"}
        async with httpx.AsyncClient(
            transport=transport, base_url="http://payment", headers=headers, timeout=60
        ) as client:
            yield PaymentHarness(client, app.state.components, settings)
