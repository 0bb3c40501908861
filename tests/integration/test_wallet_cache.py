"""A payment process reuses the balance it wrote under a wallet's previous lock token
(adapters/balances.py), against real MariaDB and Redis: never a wrong answer when another
replica, or a writer holding no token, changed the wallet meanwhile."""

import asyncio
import uuid

import httpx
import pytest

from services.payment.domain.commands import CreditWallet
from tests.integration.payment_harness import PaymentHarness, running_payment_app
from tests.scrape import parse, value

pytestmark = pytest.mark.integration


async def _reads(app: PaymentHarness, source: str) -> float:
    metrics = parse((await app.client.get("/metrics")).text)
    return value(metrics, "mockpay_wallet_reads_total", source=source)


async def _credit_without_token(writer: PaymentHarness, user: str, amount: int) -> None:
    """A credit under the row lock (the strategy used while Redis is down): no lock token."""
    await writer.parts.service.credit(CreditWallet(user, amount, f"row-{uuid.uuid4().hex}"))


async def test_a_process_paying_again_from_a_wallet_does_not_read_its_balance_again():
    async with running_payment_app() as app:
        user = await app.new_wallet(balance=1_000)
        cached, read = await _reads(app, "cache"), await _reads(app, "database")
        for _ in range(5):
            assert (await app.pay(user, 10)).status_code == 201
        assert await _reads(app, "cache") == cached + 5
        assert await _reads(app, "database") == read
        assert await app.assert_ledger_consistent(user) == 950


async def test_switched_off_every_balance_is_read():
    async with running_payment_app(wallet_cache_size=0) as app:
        user = await app.new_wallet(balance=100)
        assert (await app.pay(user, 10)).status_code == 201
        metrics = (await app.client.get("/metrics")).text
        assert "mockpay_wallet_reads_total" not in metrics
        assert await app.assert_ledger_consistent(user) == 90


async def test_a_payment_made_by_another_replica_meanwhile_is_read_not_assumed():
    async with running_payment_app() as one, running_payment_app() as two:
        user = await one.new_wallet(balance=1_000)
        assert (await one.pay(user, 100)).status_code == 201  # one keeps 900
        assert (await two.pay(user, 200)).status_code == 201  # 700, under the next token
        read = await _reads(one, "database")
        paid = await one.pay(user, 300)
        assert paid.status_code == 201
        assert paid.json()["balance_after"] == 400
        assert await _reads(one, "database") == read + 1  # the token said: read it again
        assert await one.assert_ledger_consistent(user) == 400


async def test_a_write_behind_the_cache_without_a_token_is_caught_by_the_compare_and_set():
    async with (
        running_payment_app() as app,
        running_payment_app(payment_lock_strategy="pessimistic") as row_locker,
    ):
        user = await app.new_wallet(balance=1_000)
        assert (await app.pay(user, 100)).status_code == 201  # app keeps 900
        await _credit_without_token(row_locker, user, 50)  # 950; no token moved
        paid = await app.pay(user, 300)  # starts from 900, is refused, runs again from 950
        assert paid.status_code == 201
        assert paid.json()["balance_after"] == 650
        assert await app.assert_ledger_consistent(user) == 650
        [(after,)] = await app.query(
            "SELECT balance_after FROM ledger_entries WHERE reference = %s",
            paid.json()["payment_id"],
        )
        assert after == 650


async def test_a_cached_balance_too_small_for_a_debit_is_read_again_before_a_402():
    async with (
        running_payment_app() as app,
        running_payment_app(payment_lock_strategy="pessimistic") as row_locker,
    ):
        user = await app.new_wallet(balance=1_000)
        assert (await app.pay(user, 900)).status_code == 201  # app keeps 100
        await _credit_without_token(row_locker, user, 1_000)  # 1,100; no token moved
        paid = await app.pay(user, 500)
        assert paid.status_code == 201, paid.text  # not 402 from the stale 100
        assert paid.json()["balance_after"] == 600
        refused = await app.pay(user, 601)
        assert refused.status_code == 402  # from a fresh read: 600 is short
        assert await app.assert_ledger_consistent(user) == 600


async def test_two_replicas_and_a_row_lock_writer_on_one_wallet_keep_every_invariant():
    """Mixed lock holders on one hot wallet: a payment whose compare-and-set keeps losing
    to the row-lock writer gets 503 after its retries (with or without the cache), and
    changes nothing; every other answer is final and repeats the same."""
    async with (
        running_payment_app() as one,
        running_payment_app() as two,
        running_payment_app(payment_lock_strategy="pessimistic") as row_locker,
    ):
        user = await one.new_wallet(balance=5_000)
        orders = [f"o-{uuid.uuid4().hex}" for _ in range(120)]

        async def pay(n: int) -> httpx.Response:
            return await (one, two)[n % 2].pay(user, 50, orders[n])

        async def credits() -> None:
            for _ in range(10):
                await _credit_without_token(row_locker, user, 100)

        answers, _ = await asyncio.gather(
            asyncio.gather(*(pay(n) for n in range(len(orders)))), credits()
        )
        statuses = [a.status_code for a in answers]
        assert set(statuses) <= {201, 402, 503}
        assert all("retry-after" in a.headers for a in answers if a.status_code == 503)

        async def check() -> int:
            [(paid,)] = await one.query(
                "SELECT COUNT(*) FROM payments WHERE user_id = %s AND status = 'COMPLETED'", user
            )
            balance = await one.assert_ledger_consistent(user)
            assert balance == 5_000 + 10 * 100 - 50 * paid  # each payment charged once
            return int(paid)

        assert await check() == statuses.count(201)  # a 503 or 402 changed nothing
        again = [a.status_code for a in await asyncio.gather(*(pay(n) for n in range(120)))]
        for first, repeat in zip(statuses, again, strict=True):
            if first != 503:
                assert repeat == first  # a final answer repeats the same
        assert await check() == statuses.count(201) + [
            repeat for first, repeat in zip(statuses, again, strict=True) if first == 503
        ].count(201)
