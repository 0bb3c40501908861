"""Outages of MariaDB and Redis heal without a human: servers of the test's own, killed by pid.

Every test here kills a private server with SIGKILL (a crash, not a shutdown), checks what
clients see while it is down, starts it again on the same data, and checks that the very
next requests succeed and that nothing was lost or applied twice. Killing and starting run
in a thread, so the service's event loop keeps running through the outage as it would.
"""

import asyncio
import os
import uuid

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from services.points.dlt import read_all
from shared import db
from shared.clock import iso, utcnow
from shared.events import PaymentEvent
from shared.infra_errors import is_outage
from shared.settings import ServiceSettings
from testkit.waiting import eventually
from tests.integration.events_harness import (
    BOOTSTRAP,
    Topics,
    points_of,
    points_process,
    points_stats,
    query,
)
from tests.integration.payment_harness import running_payment_app
from tests.integration.private_servers import PrivateMariaDB

pytestmark = pytest.mark.integration

KAFKA = BOOTSTRAP


@pytest.fixture(scope="module")
def mariadb(tmp_path_factory):
    server = PrivateMariaDB(tmp_path_factory.mktemp("mariadb"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


async def _send(producer: AIOKafkaProducer, topic: str, user: str, amount: int) -> None:
    event = PaymentEvent(
        str(uuid.uuid4()), "PaymentCompleted", iso(utcnow()), str(uuid.uuid4()), "o", user,
        amount,
    )  # fmt: skip
    await producer.send_and_wait(topic, event.to_bytes(), key=user.encode())


async def _get(url: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=10) as client:
        return await client.get(url)


async def test_mariadb_killed_while_events_flow_every_event_is_applied_once_none_dead_lettered(
    mariadb,
):
    topics = Topics.unique()
    users = [f"u-{uuid.uuid4().hex[:10]}" for _ in range(10)]
    pool = await db.create_pool(
        ServiceSettings(mysql_port=mariadb.port), os.environ["POINTS_MYSQL_DATABASE"]
    )
    producer = AIOKafkaProducer(bootstrap_servers=KAFKA)
    await producer.start()
    try:
        with points_process(topics, MYSQL_PORT=str(mariadb.port)) as url:
            for i in range(50):
                await _send(producer, topics.events, users[i % 10], 1_000)

            async def first_applied() -> bool:
                return await points_of(pool, users) == {u: 50 for u in users}

            await eventually(first_applied)
            await asyncio.to_thread(mariadb.kill)
            for i in range(100):  # events keep coming while the database is down
                await _send(producer, topics.events, users[i % 10], 2_000)

            async def paused_on_outage() -> bool:
                return (await points_stats(url)).get("outage_retries", 0) >= 3

            await eventually(paused_on_outage)
            health = await _get(f"{url}/health")
            assert health.status_code == 503
            assert health.json()["dependencies"]["mariadb"] == "down"
            assert "mariadb" in health.json()["reasons"]
            assert (await _get(f"{url}/health/live")).status_code == 200
            await asyncio.to_thread(mariadb.start)

            async def all_applied() -> bool:
                return await points_of(pool, users) == {u: 50 + 200 for u in users}

            await eventually(all_applied, timeout=120)
            among = ", ".join(["%s"] * len(users))
            [(entries,)] = await query(
                pool, f"SELECT COUNT(*) FROM points_entries WHERE user_id IN ({among})", *users
            )
            assert entries == 150
            assert (await _get(f"{url}/health")).status_code == 200
    finally:
        await producer.stop()
        await db.close_pool(pool)
    assert await read_all(KAFKA, topics.dead_letters) == []


async def test_payments_succeed_right_after_mariadb_restarts(mariadb):
    async with running_payment_app(mysql_port=mariadb.port, mysql_pool_max=20) as app:
        users = [await app.new_wallet(balance=1_000_000) for _ in range(20)]
        warm = await asyncio.gather(*(app.pay(u, 100) for u in users))  # fills the pool
        assert {a.status_code for a in warm} == {201}
        await asyncio.to_thread(mariadb.kill)
        down = await app.pay(users[0], 100)
        assert down.status_code == 503 and down.headers["retry-after"]
        assert (await app.client.get("/health")).json()["dependencies"]["mariadb"] == "down"
        await asyncio.to_thread(mariadb.start)
        after = await asyncio.gather(*(app.pay(u, 100) for u in users))
        assert [a.status_code for a in after] == [201] * 20, [a.text for a in after]
        for user in users:
            assert await app.assert_ledger_consistent(user) == 1_000_000 - 200


async def test_payments_succeed_right_after_redis_restarts(redis_server):
    # Failing closed while Redis is down; LOCK_FALLBACK=database would pay from row locks
    # instead (test_lock_fallback.py).
    async with running_payment_app(redis_url=redis_server.url, lock_fallback="none") as app:
        users = [await app.new_wallet(balance=1_000_000) for _ in range(20)]
        warm = await asyncio.gather(*(app.pay(u, 100) for u in users * 3))  # many connections
        assert {a.status_code for a in warm} == {201}
        await asyncio.to_thread(redis_server.kill)
        down = await app.pay(users[0], 100)
        assert (down.status_code, down.json()["code"]) == (503, "DEPENDENCY_UNAVAILABLE")
        assert (await app.client.get("/health")).json()["dependencies"]["redis"] == "down"
        await asyncio.to_thread(redis_server.start)
        after = await asyncio.gather(*(app.pay(u, 100) for u in users * 3))
        assert [a.status_code for a in after] == [201] * 60, [a.text for a in after][:3]
        for user in users:
            assert await app.assert_ledger_consistent(user) == 1_000_000 - 600


async def test_a_connection_that_comes_back_closed_wakes_a_waiting_request(settings):
    """aiomysql woke waiters only for live connections: a closed one left them asleep."""
    pool = await db.create_pool(settings, os.environ["PAYMENT_MYSQL_DATABASE"], maxsize=1)
    try:
        held = await pool.acquire()
        waiting = asyncio.create_task(pool.acquire())
        await asyncio.sleep(0)  # the waiter is queued behind the only connection
        held.close()  # broken, as by a server restart
        pool.release(held)
        conn = await asyncio.wait_for(waiting, timeout=30)
        async with conn.cursor() as cur:
            await cur.execute("SELECT 1")
            assert await cur.fetchone() == (1,)
        pool.release(conn)
    finally:
        await db.close_pool(pool)


async def test_a_request_waits_for_a_pooled_connection_at_most_the_pool_timeout(settings):
    short = settings.model_copy(update={"mysql_pool_timeout_seconds": 0.5})
    pool = await db.create_pool(short, os.environ["PAYMENT_MYSQL_DATABASE"], maxsize=1)
    try:
        held = await pool.acquire()
        with pytest.raises(db.PoolTimeout) as waited:
            await pool.acquire()
        assert is_outage(waited.value)  # a 503 with Retry-After, never a request that hangs
        pool.release(held)
        async with pool.acquire() as conn, conn.cursor() as cur:
            await cur.execute("SELECT 1")
    finally:
        await db.close_pool(pool)
