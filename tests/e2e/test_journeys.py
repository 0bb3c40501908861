"""The users' journeys through the four services as processes, over HTTP: from wallet to
points and back, and the bank breaking and healing."""

import asyncio
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from services.bank_gateway.settings import FakeBankSettings, GatewaySettings
from services.payment.settings import PaymentSettings
from testkit.waiting import eventually_blocking
from tests.e2e.four_services import four_services
from tests.integration.audit_harness import admin, drop_database, recreate

pytestmark = pytest.mark.e2e

WAIT_IN_OPEN_SECONDS = 1  # the breaker's open state, short so that recovery shows quickly
# A database of the journeys' own: the charges a broken bank leaves PENDING here must not
# be reconciled by, and counted in the breaker of, the integration tests' services.
PAYMENT_DB = f"{os.environ['PAYMENT_MYSQL_DATABASE']}_e2e"


async def fresh_database(name: str, keep: bool = True) -> None:
    async with admin() as conn:
        await (recreate(conn, name) if keep else drop_database(conn, name))


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


@dataclass
class System:
    urls: dict[str, str]
    payment: httpx.Client  # with the API key
    points: httpx.Client  # with the API key
    bank: httpx.Client  # with the fake bank's admin token
    gateway: httpx.Client  # with the gateway token

    def new_user(self) -> str:
        user = f"e2e-{uuid.uuid4().hex[:10]}"
        assert self.payment.post("/wallets", json={"user_id": user}).status_code == 201
        return user

    def charge(self, user: str, charge_id: str, amount: int) -> httpx.Response:
        body = {"charge_id": charge_id, "amount": amount}
        return self.payment.post(f"/wallets/{user}/charges", json=body)

    def balance(self, user: str) -> int:
        return int(self.payment.get(f"/wallets/{user}").json()["balance"])

    def wait_for_points(self, user: str, balance: int, message: str) -> dict:
        seen: dict = {}

        def reached() -> bool:
            answer = self.points.get(f"/points/{user}")
            seen.update(answer.json())
            return answer.status_code == 200 and answer.json()["balance"] == balance

        eventually_blocking(reached, timeout=60, interval=0.2, message=message)
        return seen


@pytest.fixture(scope="module")
def system() -> Iterator[System]:
    asyncio.run(fresh_database(PAYMENT_DB))
    key = PaymentSettings().api_keys()[0]
    gateway_token = GatewaySettings().bank_gateway_token.get_secret_value()
    admin_token = FakeBankSettings().fake_bank_admin_token.get_secret_value()
    with (
        four_services(
            PAYMENT_MYSQL_DATABASE=PAYMENT_DB,
            BREAKER_WAIT_IN_OPEN_SECONDS=str(WAIT_IN_OPEN_SECONDS),
        ) as urls,
        httpx.Client(base_url=urls["payment"], headers=bearer(key), timeout=30) as payment,
        httpx.Client(base_url=urls["points"], headers=bearer(key), timeout=10) as points,
        httpx.Client(base_url=urls["bank"], headers=bearer(admin_token), timeout=10) as bank,
        httpx.Client(base_url=urls["gateway"], headers=bearer(gateway_token)) as gateway,
    ):
        yield System(urls, payment, points, bank, gateway)
    asyncio.run(fresh_database(PAYMENT_DB, keep=False))


def test_a_user_tops_up_pays_earns_points_cancels_and_the_points_go_back(system):
    user = system.new_user()
    charged = system.charge(user, f"c-{user}", 50_000)
    assert charged.status_code == 201 and charged.json()["balance_after"] == 50_000
    paid = system.payment.post(
        "/payments", json={"order_id": f"o-{user}", "user_id": user, "amount": 20_000}
    )
    assert paid.status_code == 201 and paid.json()["balance_after"] == 30_000
    assert system.balance(user) == 30_000
    system.wait_for_points(user, 200, "no points for the payment")

    cancelled = system.payment.post(f"/payments/{paid.json()['payment_id']}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "CANCELLED"
    assert system.balance(user) == 50_000
    account = system.wait_for_points(user, 0, "the cancelled payment's points stayed")
    assert sorted(e["delta"] for e in account["entries"]) == [-200, 200]
    assert system.payment.post(f"/payments/{paid.json()['payment_id']}/cancel").status_code == 200
    assert system.balance(user) == 50_000  # a second cancel refunds nothing


def test_points_are_read_with_the_api_key_only(system):
    answer = httpx.get(f"{system.urls['points']}/points/anyone")
    assert (answer.status_code, answer.json()["code"]) == (401, "UNAUTHORIZED")
    assert httpx.get(f"{system.urls['points']}/health").status_code == 200


def test_the_bank_fails_the_breaker_opens_with_503_and_top_ups_recover(system):
    user = system.new_user()
    assert system.bank.put("/faults", json={"error_rate": 1.0}).status_code == 200
    try:
        statuses = []

        def refused_fast() -> bool:
            answer = system.charge(user, f"c-{uuid.uuid4().hex}", 1_000)
            statuses.append(answer.status_code)
            return answer.status_code == 503

        eventually_blocking(refused_fast, timeout=60, interval=0.05, message="never opened")
        assert set(statuses[:-1]) == {502}, statuses  # the bank's failures, until it opened
        refused = system.charge(user, f"c-{user}", 7_000)
        assert refused.status_code == 503 and refused.json()["code"] == "BANK_UNAVAILABLE"
        assert int(refused.headers["retry-after"]) >= 1
        assert system.gateway.get("/circuit-breaker").json()["state"] == "OPEN"
    finally:
        assert system.bank.put("/faults", json={}).status_code == 200

    def recovered() -> bool:  # the client retries its refused top-up, as a 503 invites
        return system.charge(user, f"c-{user}", 7_000).status_code == 201

    eventually_blocking(recovered, timeout=60, interval=0.2, message="the breaker never closed")
    assert system.balance(user) == 7_000  # nothing moved for the failed or refused calls
    assert system.bank.get(f"/accounts/{user}").json()["withdrawn"] == 7_000
