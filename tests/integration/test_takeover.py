"""Hand-over from a dead process: its wallet locks and its running idempotency records are
taken over as soon as its session is over, not a lease later; a live holder keeps what it
holds, and a paused one that comes back is refused by the fencing token.

Holders are real processes (tests/integration/session_holder.py) killed or paused by pid,
on the one Redis of .env.test and on three lock nodes of their own."""

import json
import signal
import time
import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from services.payment.adapters.uow import MySqlUnitOfWork
from services.payment.bootstrap import MIGRATIONS
from services.payment.settings import PaymentSettings
from shared import db
from shared.clock import utcnow
from shared.idempotency import fingerprint
from tests.integration.cluster_harness import LockNodes
from tests.integration.payment_harness import running_payment_app
from tests.integration.takeover_harness import (
    CHECK_AFTER,
    Where,
    holder,
    lock_args,
    waiting_process,
)

pytestmark = pytest.mark.integration

SESSION_TTL = 0.6


@pytest.fixture(params=["one node", "three nodes"])
async def where(request, redis) -> AsyncIterator[Where]:
    if request.param == "one node":
        yield Where([], [redis])
        return
    nodes: LockNodes = request.getfixturevalue("lock_nodes")
    clients = [Redis.from_url(u, retry=Retry(NoBackoff(), 0), socket_timeout=1.0)
               for u in nodes.urls]  # fmt: skip
    yield Where(nodes.urls, clients)
    for client in clients:
        await client.aclose()


async def test_a_killed_holders_lock_is_taken_over_at_once_with_a_larger_token(redis, where):
    prefix, name = f"test-takeover:{uuid.uuid4().hex[:8]}:", "wallet:killed"
    async with holder(*lock_args(where, prefix, name, 2.0)) as dead:
        await dead.killed()
        async with waiting_process(redis, where, prefix) as waiter:
            locks = waiter.locks
            began = time.monotonic()
            lease = await locks.lock(name).try_lock(wait_time=5)
            took = time.monotonic() - began
            assert lease is not None, "not taken over within the wait (the lease is 30 s)"
            assert lease.token > int(dead.token)
            assert took < CHECK_AFTER + 1.0, took
            assert waiter.takeovers == 1
            await locks.lock(name).unlock()


async def test_a_live_slow_holder_is_not_taken_over(redis, where):
    prefix, name = f"test-takeover:{uuid.uuid4().hex[:8]}:", "wallet:slow"
    async with (
        holder(*lock_args(where, prefix, name, SESSION_TTL)) as slow,
        waiting_process(redis, where, prefix) as waiter,
    ):
        locks = waiter.locks
        # Ten checks of the holder's session, several of its ttls: it is alive throughout.
        assert await locks.lock(name).try_lock(wait_time=10 * CHECK_AFTER) is None
        assert waiter.takeovers == 0
        assert slow.process.returncode is None and await locks.lock(name).is_locked()


async def test_a_hold_its_own_process_forgot_is_taken_over(redis, where):
    # Left on lock nodes that missed its release while they were down, and came back with
    # them from their data: held by a live process that holds no lease for it.
    prefix = f"test-takeover:{uuid.uuid4().hex[:8]}:"
    async with waiting_process(redis, where, prefix) as waiter:
        lock = waiter.locks.lock("wallet:forgotten")
        ghost = f"{waiter.locks.owners.instance_id}:{uuid.uuid4().hex}"
        for node in where.clients[:2]:
            await node.hset(lock.key, mapping={ghost: 1, "#fence": 1})
            await node.pexpire(lock.key, 30_000)
        began = time.monotonic()
        lease = await lock.try_lock(wait_time=5)
        assert lease is not None, "not taken over within the wait (the ghost lives 30 s)"
        assert time.monotonic() - began < 3 * CHECK_AFTER + 1.0
        assert waiter.takeovers == 1
        await lock.unlock()


async def test_a_paused_holder_is_taken_over_and_refused_by_the_fence_when_it_resumes(redis, where):
    settings = PaymentSettings()
    pool = await db.create_pool(settings, settings.payment_mysql_database)
    await db.apply_migrations(pool, MIGRATIONS)
    user = f"paused-{uuid.uuid4().hex[:10]}"
    async with MySqlUnitOfWork(pool, None, False) as uow:
        await uow.wallets.add(user, utcnow())
        await uow.commit()
    prefix, name = f"test-takeover:{uuid.uuid4().hex[:8]}:", f"wallet:{user}"
    try:
        async with holder(*lock_args(where, prefix, name, SESSION_TTL)) as paused:
            paused.signal(signal.SIGSTOP)  # a GC pause, swap, a stalled VM: its sockets stay
            async with waiting_process(redis, where, prefix) as waiter:
                locks = waiter.locks
                began = time.monotonic()
                lease = await locks.lock(name).try_lock(wait_time=5)
                assert lease is not None and lease.token > int(paused.token)
                assert time.monotonic() - began < SESSION_TTL + CHECK_AFTER + 1.0
                async with MySqlUnitOfWork(pool, lease.token, False) as uow:
                    wallet = await uow.wallets.get(user)
                    assert wallet is not None
                    await uow.wallets.update_balance(wallet, wallet, utcnow())  # fence moves
                    await uow.commit()
                paused.signal(signal.SIGCONT)
                assert await paused.ask(f"write {user}") == "refused"
                async with MySqlUnitOfWork(pool, None, False) as uow:
                    after = await uow.wallets.get(user)
                assert after is not None and after.balance == 0  # the late write wrote nothing
                await locks.lock(name).unlock()
    finally:
        await db.close_pool(pool)


# ------------------------------------------------------------------ idempotency records


@pytest.mark.parametrize("paid_before_dying", [False, True])
async def test_a_killed_owners_running_payment_is_taken_over_and_paid_once(paid_before_dying):
    async with running_payment_app() as app:
        user = await app.new_wallet(balance=10_000)
        order = f"o-{uuid.uuid4().hex}"
        body_print = fingerprint({"user_id": user, "amount": 700})
        paid = [json.dumps({"order_id": order, "user_id": user, "amount": 700})]
        args = ["record", "payments", order, body_print, *(paid if paid_before_dying else [])]
        async with holder(*args) as owner:
            await owner.killed()
            began = time.monotonic()
            answer = await app.pay(user, 700, order)
        assert answer.status_code == 201, answer.text  # not 409 for the record's 5 s lease
        assert time.monotonic() - began < 2.0
        assert answer.headers.get("idempotent-replayed") == (
            "true" if paid_before_dying else None
        )  # paid by the dead owner: the database's order_id replays it
        assert await app.payment_count(user) == 1
        assert await app.assert_ledger_consistent(user) == 10_000 - 700
        metrics = (await app.client.get("/metrics")).text
        assert "mockpay_idempotency_takeovers_total 1.0" in metrics


async def test_a_live_owners_duplicate_still_gets_409_and_runs_once_it_is_gone():
    async with running_payment_app() as app:
        user = await app.new_wallet(balance=10_000)
        order = f"o-{uuid.uuid4().hex}"
        body_print = fingerprint({"user_id": user, "amount": 300})
        async with holder("record", "payments", order, body_print) as owner:
            until = time.monotonic() + app.settings.payment_instance_ttl_seconds * 1.5
            while time.monotonic() < until:  # repeats across several of its session refreshes
                answer = await app.pay(user, 300, order)
                assert answer.status_code == 409, answer.text
                assert answer.json()["code"] == "REQUEST_IN_PROGRESS"
            assert await app.payment_count(user) == 0
            await owner.killed()
            assert (await app.pay(user, 300, order)).status_code == 201
        assert await app.assert_ledger_consistent(user) == 10_000 - 300
