"""Who may call what: scoped payment keys, the fake bank's admin token, no key in the logs."""

import logging
import uuid

import httpx
import pytest

from services.payment.domain.commands import CreditWallet
from tests.integration.bank_harness import running_bank
from tests.integration.payment_harness import running_payment_app

pytestmark = pytest.mark.integration

READER, PAYER, REFUNDER = (f"{role}-{uuid.uuid4().hex}" for role in ("r", "p", "x"))
KEYS = f"{READER}:read,{PAYER}:pay,{REFUNDER}:refund"


def as_key(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def forbidden(answer: httpx.Response) -> bool:
    return (answer.status_code, answer.json()["code"]) == (403, "FORBIDDEN")


async def test_each_scope_opens_its_endpoints_and_nothing_changes_outside_them(caplog):
    caplog.set_level(logging.DEBUG)
    async with running_payment_app(payment_api_keys=KEYS) as app:
        client, user = app.client, f"u-{uuid.uuid4().hex[:12]}"

        async def balance() -> int:
            answer = await client.get(f"/wallets/{user}", headers=as_key(READER))
            assert answer.status_code == 200, answer.text
            return answer.json()["balance"]

        assert forbidden(
            await client.post("/wallets", json={"user_id": user}, headers=as_key(READER))
        )
        assert (await client.get(f"/wallets/{user}", headers=as_key(READER))).status_code == 404
        assert (
            await client.post("/wallets", json={"user_id": user}, headers=as_key(PAYER))
        ).status_code == 201
        await app.parts.service.credit(CreditWallet(user, 10_000, f"seed-{user}"))
        assert forbidden(await client.get(f"/wallets/{user}", headers=as_key(PAYER)))

        order = {"order_id": f"o-{uuid.uuid4().hex}", "user_id": user, "amount": 1_000}
        for key in (READER, REFUNDER):
            assert forbidden(await client.post("/payments", json=order, headers=as_key(key)))
        assert await balance() == 10_000
        paid = await client.post("/payments", json=order, headers=as_key(PAYER))
        assert paid.status_code == 201 and await balance() == 9_000

        cancel = f"/payments/{paid.json()['payment_id']}/cancel"
        for key in (READER, PAYER):
            assert forbidden(await client.post(cancel, headers=as_key(key)))
        assert await balance() == 9_000
        assert (await client.post(cancel, headers=as_key(REFUNDER))).status_code == 200
        assert await balance() == 10_000
        assert await app.assert_ledger_consistent(user) == 10_000

        wrong = await client.get(f"/wallets/{user}", headers=as_key("guessed-key"))
        assert wrong.status_code == 401
    for key in (READER, PAYER, REFUNDER, "guessed-key"):
        assert key not in caplog.text


async def test_only_the_admin_token_may_inject_bank_faults():
    async with running_bank() as (side, _):
        url = str(side.bank.base_url)
        async with httpx.AsyncClient(base_url=url) as anyone:
            for headers in ({}, as_key("not-the-token")):
                refused = await anyone.put("/faults", json={"down": True}, headers=headers)
                assert (refused.status_code, refused.json()["code"]) == (401, "UNAUTHORIZED")
            assert (await anyone.get("/faults")).json()["down"] is False
            await side.faults(down=True)  # with FAKE_BANK_ADMIN_TOKEN
            assert (await anyone.get("/faults")).json()["down"] is True
