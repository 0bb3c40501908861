"""More concurrent payments than Redis connections: every one is answered, none is stuck.

With a pool smaller than the requests in flight, Redis commands wait for connections, so a
request often ends while its idempotency lease (or a lock's watchdog) is in the middle of a
renewal. On Python 3.11 the cancel that ends such a renewer can be lost inside redis-py
(it sends each command under asyncio.wait_for), and the request then waited for the
renewer's last renewal, IDEMPOTENCY_LEASE_MAX_SECONDS later. The renewals here are frequent
so that many are in flight; the deadline is far below the longest a request may run.
"""

import asyncio
import contextlib

import pytest

from tests.integration.payment_harness import running_payment_app

pytestmark = pytest.mark.integration

POOL = 5
PAYERS = 100
WALLETS = 50
STUCK_AFTER_SECONDS = 120.0  # what a stuck request waited before the fix
DEADLINE_SECONDS = 60.0  # every request, machine slow or not, answers well within this


async def test_more_payments_than_redis_connections_all_answer_well_before_a_stuck_lease():
    async with running_payment_app(
        redis_pool_max=POOL,
        redis_pool_timeout_seconds=DEADLINE_SECONDS,
        idempotency_lease_renew_seconds=0.005,
        idempotency_lease_seconds=10.0,
        idempotency_lease_max_seconds=STUCK_AFTER_SECONDS,
    ) as app:
        wallets = [await app.new_wallet(balance=10_000) for _ in range(WALLETS)]
        for _ in range(3):  # three rounds: renewers are mid-command at many request ends
            payments = [
                asyncio.ensure_future(app.pay(wallets[n % WALLETS], 10)) for n in range(PAYERS)
            ]
            done, pending = await asyncio.wait(payments, timeout=DEADLINE_SECONDS)
            for stuck in pending:
                stuck.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await stuck
            assert not pending, f"{len(pending)} of {PAYERS} payments stuck past the deadline"
            assert sorted(p.result().status_code for p in done) == [201] * PAYERS
        for user_id in wallets:
            assert await app.assert_ledger_consistent(user_id) == 10_000 - 3 * 2 * 10
            assert await app.payment_count(user_id) == 3 * 2
