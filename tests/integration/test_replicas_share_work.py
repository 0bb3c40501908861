"""Two payment replicas share the background work: two outbox relays drain one backlog,
each row published once (they claim with `FOR UPDATE SKIP LOCKED`, so neither waits for the
other), and two charge reconcilers settle each PENDING charge once."""

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiomysql
import orjson
import pytest

from services.payment.adapters.outbox import (
    INSERT,
    OutboxQueue,
    OutboxRow,
    create_relay_pool,
    insert_values,
)
from services.payment.bootstrap import MIGRATIONS, build_relay
from services.payment.relay import OutboxRelay
from services.payment.settings import PaymentSettings
from shared import db
from shared.breaker import BreakerConfig
from shared.clock import utcnow
from shared.kafka import ensure_topics, event_topics
from testkit.events import completed_event
from testkit.waiting import eventually
from tests.integration.bank_harness import running_bank
from tests.integration.events_harness import Topics
from tests.integration.outbox_harness import Outbox, end_offsets, log_contents
from tests.integration.payment_harness import running_payment_app

pytestmark = pytest.mark.integration

BACKLOG = 3_000
BATCH = 50  # small batches: the backlog takes many claims, so the two relays overlap


class RecordingQueue(OutboxQueue):
    """The real queue; remembers the event ids of the rows it marked published."""

    def __init__(self, pool: aiomysql.Pool) -> None:
        super().__init__(pool)
        self.published: list[str] = []

    @contextlib.asynccontextmanager
    async def claim(self, limit: int) -> AsyncIterator[list[OutboxRow]]:
        async with super().claim(limit) as rows:
            yield rows
        self.published += [event_id(row) for row in rows]  # only once the mark committed


def event_id(row: OutboxRow) -> str:
    return str(orjson.loads(row.payload)["event_id"])


@contextlib.asynccontextmanager
async def replica_relay(settings: PaymentSettings) -> AsyncIterator[OutboxRelay]:
    """A relay as a replica runs it: its own pool, its own producer."""
    pool = await create_relay_pool(
        settings, settings.payment_mysql_database, settings.outbox_relay_connections
    )
    relay = OutboxRelay(RecordingQueue(pool), build_relay(settings, pool).config)
    try:
        yield relay
    finally:
        await relay.stop()
        await db.close_pool(pool)


def recorded(relay: OutboxRelay) -> list[str]:
    assert isinstance(relay.outbox, RecordingQueue)
    return relay.outbox.published


@pytest.fixture
async def backlog() -> AsyncIterator[tuple[PaymentSettings, Outbox]]:
    topics = Topics.unique()
    overrides: dict[str, Any] = {**topics.payment_settings(), "outbox_batch_size": BATCH}
    settings = PaymentSettings(**overrides)
    await ensure_topics(settings.kafka_bootstrap_servers, event_topics(settings))
    pool = await db.create_pool(settings, os.environ["PAYMENT_MYSQL_DATABASE"])
    await db.apply_migrations(pool, MIGRATIONS)
    try:
        yield settings, Outbox(pool, topics.events)
    finally:
        await db.close_pool(pool)


async def test_two_relays_drain_one_backlog_and_publish_each_row_once(backlog):
    settings, outbox = backlog
    await outbox.write(BACKLOG)
    async with replica_relay(settings) as first, replica_relay(settings) as second:
        first.start()
        second.start()

        async def drained() -> bool:
            return await outbox.unpublished() == 0

        await eventually(drained, timeout=120, message="the backlog was not drained")
    mine = set(outbox.written)
    shares = [mine & set(recorded(first)), mine & set(recorded(second))]
    assert all(shares), f"one relay published nothing: {[len(s) for s in shares]}"
    assert not shares[0] & shares[1], "a row was claimed by both relays"
    assert shares[0] | shares[1] == mine
    bootstrap, partitions = settings.kafka_bootstrap_servers, settings.kafka_topic_partitions
    assert await end_offsets(bootstrap, outbox.topic, partitions) == BACKLOG
    in_log = await log_contents(bootstrap, outbox.topic, partitions)
    assert set(in_log) == mine and max(in_log.values()) == 1
    print(f"relay shares of {BACKLOG}: {len(shares[0])} + {len(shares[1])}")


async def test_a_relay_holding_its_claim_does_not_hold_up_the_other(backlog):
    """What SKIP LOCKED buys: a relay stuck between its claim and its commit (a slow Kafka
    send) leaves the other replica's relay free to publish every other row. Without it the
    second relay would wait on the first one's locked rows."""
    settings, outbox = backlog
    await outbox.write(200)
    async with replica_relay(settings) as stuck, replica_relay(settings) as other:
        # Rows of other tests may still wait in the shared outbox: claim past them.
        async with outbox.pool.acquire() as conn, conn.cursor() as cur:
            await cur.execute("SELECT COUNT(*) FROM outbox WHERE published_at IS NULL")
            ((waiting,),) = await cur.fetchall()
            await conn.rollback()
        with contextlib.suppress(HeldBack):
            async with stuck.outbox.claim(waiting - 200 + 50) as held:
                held_mine = {event_id(row) for row in held if row.topic == outbox.topic}
                assert held_mine
                other.start()

                async def others_published() -> bool:
                    return await outbox.unpublished() == len(held_mine)

                await eventually(
                    others_published, timeout=30, message="the other relay waited for the claim"
                )
                raise HeldBack  # the stuck relay fails: its rows go back, unpublished
        assert not held_mine & set(recorded(other))

        async def drained() -> bool:
            return await outbox.unpublished() == 0

        await eventually(drained, timeout=30, message="the released rows were not published")
    in_log = await log_contents(
        settings.kafka_bootstrap_servers, outbox.topic, settings.kafka_topic_partitions
    )
    assert set(in_log) == set(outbox.written) and max(in_log.values()) == 1


async def test_a_relay_holding_its_claim_does_not_hold_up_new_outbox_rows(backlog):
    """The relay's sessions are READ COMMITTED (create_relay_pool): its claim locks the rows
    it took and nothing around them. Under REPEATABLE READ the claim's next-key locks cover
    the gap after its last row, and every payment's outbox insert waits for the relay's
    Kafka send."""
    settings, outbox = backlog
    await outbox.write(20)
    async with replica_relay(settings) as stuck:
        with contextlib.suppress(HeldBack):
            async with stuck.outbox.claim(BACKLOG) as held:
                assert held
                now = utcnow()
                row = insert_values(outbox.topic, completed_event(now, "ha", "user-new"), now)
                async with outbox.pool.acquire() as conn, conn.cursor() as cur:
                    await cur.execute("SET SESSION innodb_lock_wait_timeout = 2")
                    await cur.execute(INSERT, row)  # a lock wait timeout if gaps were locked
                    await conn.commit()
                raise HeldBack
    assert await outbox.unpublished() == 21


NO_TRIP = BreakerConfig(window_size=100, minimum_calls=100)


class HeldBack(Exception):
    """Ends a held claim without marking its rows, as a relay whose send failed does."""


async def test_two_reconcilers_settle_each_pending_charge_once():
    """Both replicas' reconcilers find the same PENDING charges and may both ask the bank; the
    credit is taken under the wallet lock from PENDING only, so each charge is paid once."""
    reconciler = {
        "charge_reconcile_interval_seconds": 0.05,
        "charge_reconcile_min_age_seconds": 1.0,
        "charge_reconcile_give_up_seconds": 60.0,
    }
    async with (
        # The timeouts that leave the charges PENDING are failures to the breaker; a window
        # larger than the test keeps it closed, which is not what this test is about.
        running_bank(bank_read_timeout_seconds=0.2, breaker=NO_TRIP) as (bank, gateway_url),
        running_payment_app(bank_gateway_url=gateway_url, **reconciler) as one,
        running_payment_app(bank_gateway_url=gateway_url, **reconciler) as two,
    ):
        users = [await one.new_wallet() for _ in range(6)]
        await bank.faults(latency_ms=400)
        cids = [f"c-{uuid.uuid4().hex}" for _ in range(36)]
        answers = await asyncio.gather(
            *(
                (one, two)[i % 2].client.post(
                    f"/wallets/{users[i % 6]}/charges", json={"charge_id": cid, "amount": 100}
                )
                for i, cid in enumerate(cids)
            )
        )
        assert {a.status_code for a in answers} == {202}, [a.text for a in answers][:3]
        await bank.faults()
        among = f"charge_id IN ({', '.join(['%s'] * len(cids))})"

        async def settled() -> bool:
            rows = await one.query(
                f"SELECT COUNT(*) FROM charges WHERE status = 'SUCCEEDED' AND {among}", *cids
            )
            return rows == [(len(cids),)]

        await eventually(settled, timeout=60, message="PENDING charges were not settled")
        [(entries, distinct)] = await one.query(
            "SELECT COUNT(*), COUNT(DISTINCT reference) FROM ledger_entries"
            f" WHERE kind = 'CHARGE' AND reference IN ({', '.join(['%s'] * len(cids))})",
            *cids,
        )
        assert entries == distinct == len(cids)
        for user in users:
            assert await one.assert_ledger_consistent(user) == await bank.withdrawn(user)
            assert await bank.withdrawn(user) == 600
