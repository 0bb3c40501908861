"""Wallet top-ups through the real gateway and fake bank (HTTP on loopback), MariaDB and Redis."""

import asyncio
import uuid
from collections import Counter

import pytest

from shared.breaker import BreakerConfig
from testkit.waiting import eventually
from tests.integration.bank_harness import running_payment_with_bank

pytestmark = pytest.mark.integration

FAST_RECONCILER = {
    "charge_reconcile_interval_seconds": 0.1,
    "charge_reconcile_min_age_seconds": 0.3,
    "charge_reconcile_give_up_seconds": 2.0,
}


def charge_id() -> str:
    return f"c-{uuid.uuid4().hex}"


async def charge(app, user: str, amount: int, cid: str | None = None):
    return await app.client.post(
        f"/wallets/{user}/charges", json={"charge_id": cid or charge_id(), "amount": amount}
    )


async def test_charge_moves_bank_money_into_the_wallet_once():
    async with running_payment_with_bank() as (app, bank):
        user = await app.new_wallet()
        cid = charge_id()
        first = await charge(app, user, 30_000, cid)
        assert first.status_code == 201, first.text
        assert first.json() == {
            "charge_id": cid, "user_id": user, "amount": 30_000,
            "status": "SUCCEEDED", "balance_after": 30_000,
        }  # fmt: skip
        again = await charge(app, user, 30_000, cid)
        assert again.status_code == 201 and again.headers["idempotent-replayed"] == "true"
        other = await charge(app, user, 40_000, cid)
        assert (other.status_code, other.json()["code"]) == (422, "IDEMPOTENCY_KEY_REUSED")
        assert await app.assert_ledger_consistent(user) == 30_000 == await bank.withdrawn(user)


async def test_declined_charge_is_402_stored_and_moves_nothing():
    async with running_payment_with_bank() as (app, bank):
        user = await app.new_wallet()
        await bank.faults(decline_rate=1.0)
        cid = charge_id()
        first = await charge(app, user, 5_000, cid)
        assert (first.status_code, first.json()["code"]) == (402, "BANK_DECLINED")
        await bank.faults()
        again = await charge(app, user, 5_000, cid)
        assert again.status_code == 402 and again.headers["idempotent-replayed"] == "true"
        assert await app.assert_ledger_consistent(user) == 0 == await bank.withdrawn(user)
        assert (await bank.breaker())["state"] == "CLOSED"  # declines are not failures


async def test_breaker_opens_and_charges_fail_fast_without_touching_the_bank():
    gateway = {"breaker": BreakerConfig(wait_in_open_seconds=1.0, automatic_transition=True)}
    async with running_payment_with_bank(gateway) as (app, bank):
        user = await app.new_wallet()
        await bank.faults(error_rate=1.0)
        failed = [await charge(app, user, 1_000) for _ in range(5)]
        assert {(a.status_code, a.json()["code"]) for a in failed} == {(502, "BANK_ERROR")}
        assert (await bank.breaker())["state"] == "OPEN"
        assert await bank.requests_seen() == 5
        refused = [await charge(app, user, 1_000) for _ in range(5)]
        assert {(a.status_code, a.json()["code"]) for a in refused} == {(503, "BANK_UNAVAILABLE")}
        assert all(int(a.headers["retry-after"]) >= 1 for a in refused)
        assert await bank.requests_seen() == 5  # the open circuit never called the bank
        stranger = await bank.gateway.post(
            "/transfers", json={}, headers={"Authorization": "Bearer wrong"}
        )
        assert stranger.status_code == 401  # the open-circuit fast path still checks the token
        await bank.faults()

        async def half_open() -> bool:
            return (await bank.breaker())["state"] == "HALF_OPEN"

        await eventually(half_open)
        trials = [await charge(app, user, 1_000) for _ in range(3)]
        assert [a.status_code for a in trials] == [201, 201, 201]
        assert (await bank.breaker())["state"] == "CLOSED"
        assert await app.assert_ledger_consistent(user) == 3_000 == await bank.withdrawn(user)


async def test_timed_out_charge_stays_pending_until_the_reconciler_settles_it_once():
    async with running_payment_with_bank({"bank_read_timeout_seconds": 0.2}, **FAST_RECONCILER) as (
        app,
        bank,
    ):
        user = await app.new_wallet()
        await bank.faults(latency_ms=600)
        cid = charge_id()
        pending = await charge(app, user, 12_000, cid)
        assert pending.status_code == 202 and pending.json()["status"] == "PENDING"
        await bank.faults()

        async def credited() -> bool:
            return await app.balance(user) == 12_000

        await eventually(credited)
        replay = await charge(app, user, 12_000, cid)
        assert replay.status_code == 201 and replay.json()["status"] == "SUCCEEDED"
        assert await app.assert_ledger_consistent(user) == 12_000 == await bank.withdrawn(user)
        entries = await app.query(
            "SELECT COUNT(*) FROM ledger_entries WHERE kind = 'CHARGE' AND reference = %s", cid
        )
        assert entries == [(1,)]


async def test_payments_keep_working_while_the_bank_is_down():
    async with running_payment_with_bank() as (app, bank):
        user = await app.new_wallet(balance=10_000)
        await bank.faults(down=True)
        paid = await asyncio.gather(*(app.pay(user, 1_000) for _ in range(5)))
        assert [a.status_code for a in paid] == [201] * 5
        topped = await charge(app, user, 1_000)
        assert topped.status_code in (502, 503)
        assert await app.assert_ledger_consistent(user) == 5_000


async def test_charge_storm_credits_exactly_what_the_bank_withdrew():
    gateway = {
        "bank_read_timeout_seconds": 0.3,
        "breaker": BreakerConfig(wait_in_open_seconds=0.5, automatic_transition=True),
    }
    async with running_payment_with_bank(gateway, **FAST_RECONCILER) as (app, bank):
        users = [await app.new_wallet() for _ in range(20)]
        await bank.faults(error_rate=0.3, latency_ms=200, latency_jitter_ms=200)
        answers = await asyncio.gather(*(charge(app, users[i % 20], 1_000 + i) for i in range(200)))
        statuses = Counter(a.status_code for a in answers)
        assert set(statuses) <= {201, 202, 502, 503}, statuses
        await bank.faults()

        async def nothing_pending() -> bool:
            [(count,)] = await app.query("SELECT COUNT(*) FROM charges WHERE status = 'PENDING'")
            return count == 0

        await eventually(nothing_pending)
        for user in users:
            balance = await app.assert_ledger_consistent(user)
            assert balance == await bank.withdrawn(user), user
        among_users = f"user_id IN ({', '.join(['%s'] * len(users))})"
        [(succeeded,)] = await app.query(
            f"SELECT COUNT(*) FROM charges WHERE status = 'SUCCEEDED' AND {among_users}", *users
        )
        [(entries, distinct)] = await app.query(
            "SELECT COUNT(*), COUNT(DISTINCT reference) FROM ledger_entries"
            f" WHERE kind = 'CHARGE' AND {among_users}",
            *users,
        )
        assert succeeded == entries == distinct
        assert statuses[201] <= succeeded
