"""When the lock service is down, payments go on under the wallet's row lock.

Real concurrency against real servers: the lock's Redis nodes are killed by pid while
payments are in flight; every payment is answered 201, each wallet's balance equals its
ledger, nothing is negative or charged twice, and the fallbacks are counted."""

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from testkit.waiting import eventually
from tests.integration.bank_harness import running_payment_with_bank
from tests.integration.cluster_harness import LockNodes
from tests.integration.payment_harness import PaymentHarness, running_payment_app
from tests.scrape import parse, value

pytestmark = pytest.mark.integration

START = 1_000_000
AMOUNT = 100


async def fallbacks(app: PaymentHarness) -> float:
    answer = await app.client.get("/metrics")
    return value(parse(answer.text), "mockpay_lock_fallbacks_total")


async def in_flight(
    app: PaymentHarness,
    users: list[str],
    count: int,
    during: Callable[[], Awaitable[None]],
    charge_every: int = 0,
) -> list[httpx.Response]:
    """`count` payments (every `charge_every`-th a top-up instead) at once over `users`;
    `during` runs once a quarter of them are done."""
    done = 0

    async def pay(i: int) -> httpx.Response:
        nonlocal done
        user = users[i % len(users)]
        if charge_every and i % charge_every == 0:
            body = {"charge_id": f"c-{uuid.uuid4().hex}", "amount": 500}
            answer = await app.client.post(f"/wallets/{user}/charges", json=body)
        else:
            answer = await app.pay(user, AMOUNT, f"o-{uuid.uuid4().hex}")
        done += 1
        return answer

    payments = asyncio.gather(*(pay(i) for i in range(count)))

    async def a_quarter_done() -> bool:
        return done >= count // 4

    await eventually(a_quarter_done, timeout=120)
    await during()
    return list(await payments)


async def assert_money_intact(app: PaymentHarness, users: list[str], paid: int) -> None:
    for user in users:
        balance = await app.assert_ledger_consistent(user)  # balance = ledger sum, >= 0
        count = await app.payment_count(user)
        assert balance == START - count * AMOUNT
        assert count == paid // len(users)  # each payment once: none lost, none doubled


async def test_killing_one_then_two_lock_nodes_under_load_costs_no_payment(tmp_path):
    nodes = LockNodes(tmp_path)
    nodes.start()
    try:
        async with running_payment_app(
            lock_redis_nodes=3,
            lock_redis_base_port=nodes.base,
            lock_node_timeout_seconds=0.5,
            lock_watchdog_seconds=3.0,
        ) as app:
            users = [await app.new_wallet(balance=START) for _ in range(6)]

            async def kill_one() -> None:
                nodes.kill(1)

            one_down = await in_flight(app, users, 120, kill_one)
            assert await fallbacks(app) == 0  # a majority was still there: no fallback

            async def kill_another() -> None:
                nodes.kill(2)

            two_down = await in_flight(app, users, 120, kill_another)
            # Payments queued behind holds taken before the kill may all have been served
            # by those holds (batched debits); these need new holds, and get row locks.
            two_down += await asyncio.gather(*(app.pay(users[i % 6], AMOUNT) for i in range(30)))
            assert await fallbacks(app) > 0  # the majority is gone: row locks served them

            async def heal() -> None:
                nodes.restart(1)
                nodes.restart(2)

            healed = await in_flight(app, users, 120, heal)
            answers = one_down + two_down + healed
            assert [a.status_code for a in answers] == [201] * 390, {
                a.status_code: a.text for a in answers if a.status_code != 201
            }
            await assert_money_intact(app, users, 390)
    finally:
        nodes.stop()


async def test_killing_the_only_redis_under_load_costs_no_payment_or_charge(tmp_path):
    """One node (the default): locks and idempotency records share it; it dies mid-load."""
    node = LockNodes(tmp_path, size=1)
    node.start()
    try:
        one_node: dict[str, Any] = {"redis_url": node.urls[0], "lock_redis_nodes": 1}  # test-ha too
        async with running_payment_with_bank(**one_node) as (app, _):
            users = [await app.new_wallet(balance=START) for _ in range(6)]

            async def kill() -> None:
                node.kill(1)

            answers = await in_flight(app, users, 150, kill, charge_every=5)
            payments = [a for a in answers if a.request.url.path == "/payments"]
            charges = [a for a in answers if a.request.url.path != "/payments"]
            assert [a.status_code for a in payments] == [201] * 120, {
                a.status_code: a.text for a in payments if a.status_code != 201
            }
            assert {a.status_code for a in charges} <= {201, 202}, [a.text for a in charges]
            order = f"o-{uuid.uuid4().hex}"
            first = await app.pay(users[0], AMOUNT, order)
            again = await app.pay(users[0], AMOUNT, order)  # Redis is still down
            assert (first.status_code, again.status_code) == (201, 201)
            assert again.json()["payment_id"] == first.json()["payment_id"]  # not charged twice
            assert await fallbacks(app) > 0
            for user in users:
                await app.assert_ledger_consistent(user)
            counts = [await app.payment_count(u) for u in users]
            assert sum(counts) == 121
    finally:
        node.stop()
