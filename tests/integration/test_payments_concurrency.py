"""Many payments at once against one wallet: no lost update, no double charge, no overdraft."""

import asyncio
import uuid
from collections import Counter

import pytest

from tests.integration.payment_harness import running_payment_app

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    "overrides",
    [
        {"payment_lock_strategy": "redis"},
        {"payment_lock_strategy": "pessimistic"},
        {"payment_lock_strategy": "redis", "lock_local_queue": False},  # Redisson's behaviour
        {"payment_lock_strategy": "redis", "payment_batch_max": 1},  # no batches
    ],
)
async def test_150_concurrent_payments_on_one_wallet_lose_no_update(overrides):
    async with running_payment_app(**overrides, lock_wait_seconds=60) as app:
        user = await app.new_wallet(balance=1_000_000)
        answers = await asyncio.gather(*(app.pay(user, 1_000) for _ in range(150)))
        assert Counter(a.status_code for a in answers) == {201: 150}
        assert await app.balance(user) == 850_000
        assert await app.payment_count(user) == 150
        assert await app.assert_ledger_consistent(user) == 850_000
        balances_after = sorted(a.json()["balance_after"] for a in answers)
        assert balances_after == list(range(850_000, 1_000_000, 1_000))


@pytest.mark.parametrize("strategy", ["redis", "pessimistic"])
async def test_concurrent_payments_beyond_the_balance_stop_at_zero(strategy):
    async with running_payment_app(payment_lock_strategy=strategy) as app:
        user = await app.new_wallet(balance=50_000)
        answers = await asyncio.gather(*(app.pay(user, 10_000) for _ in range(10)))
        assert Counter(a.status_code for a in answers) == {201: 5, 402: 5}
        assert {a.json()["code"] for a in answers if a.status_code == 402} == {
            "INSUFFICIENT_BALANCE"
        }
        assert await app.assert_ledger_consistent(user) == 0
        assert await app.payment_count(user) == 5


async def test_50_concurrent_requests_with_one_order_id_debit_once():
    async with running_payment_app() as app:
        user = await app.new_wallet(balance=100_000)
        order_id = f"o-{uuid.uuid4().hex}"
        answers = await asyncio.gather(*(app.pay(user, 7_000, order_id) for _ in range(50)))
        firsts = [
            a for a in answers if a.status_code == 201 and "idempotent-replayed" not in a.headers
        ]
        replays = [a for a in answers if a.headers.get("idempotent-replayed") == "true"]
        in_progress = [a for a in answers if a.status_code == 409]
        assert len(firsts) == 1
        assert len(firsts) + len(replays) + len(in_progress) == 50
        assert all(r.json() == firsts[0].json() for r in replays)
        assert {a.json()["code"] for a in in_progress} <= {"REQUEST_IN_PROGRESS"}
        assert await app.assert_ledger_consistent(user) == 93_000
        assert await app.payment_count(user) == 1


async def test_concurrent_cancels_refund_once():
    async with running_payment_app() as app:
        user = await app.new_wallet(balance=10_000)
        paid = await app.pay(user, 4_000)
        payment_id = paid.json()["payment_id"]
        answers = await asyncio.gather(
            *(app.client.post(f"/payments/{payment_id}/cancel") for _ in range(20))
        )
        assert {a.status_code for a in answers} == {200}
        assert {a.json()["status"] for a in answers} == {"CANCELLED"}
        assert await app.assert_ledger_consistent(user) == 10_000
        refunds = await app.query(
            "SELECT COUNT(*) FROM ledger_entries WHERE kind = 'REFUND' AND reference = %s",
            payment_id,
        )
        assert refunds == [(1,)]


async def test_payments_from_several_app_replicas_share_the_lock():
    async with running_payment_app() as first, running_payment_app() as second:
        user = await first.new_wallet(balance=100_000)
        answers = await asyncio.gather(
            *(replica.pay(user, 1_000) for replica in [first, second] * 40)
        )
        assert Counter(a.status_code for a in answers) == {201: 80}
        assert await first.assert_ledger_consistent(user) == 20_000
