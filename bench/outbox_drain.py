"""Relay throughput on a backlog: N outbox rows inserted directly, then drained.

The relay is the payment service's own OutboxRelay, built from the service's settings.
The clock runs from starting the relays until every row is published; then the rows left
unpublished must be 0 and the topic's end offsets must have grown by exactly N.
"""

import asyncio
import time
from collections.abc import Iterator

import aiomysql
from aiokafka import AIOKafkaConsumer, TopicPartition

from services.payment.adapters import outbox
from services.payment.bootstrap import build_relay
from services.payment.settings import PaymentSettings
from shared import db
from shared.clock import utcnow
from shared.kafka import ensure_topics, topic_specs
from testkit.events import completed_event


def backlog_rows(topic: str, count: int) -> Iterator[tuple[object, ...]]:
    now = utcnow()
    for i in range(count):
        yield outbox.insert_values(topic, completed_event(now, "drain", f"user-{i % 1000}"), now)


async def fill_outbox(pool: aiomysql.Pool, topic: str, count: int, chunk: int = 5000) -> None:
    """Replace the outbox's rows with `count` unpublished events for `topic`."""
    rows = list(backlog_rows(topic, count))
    async with pool.acquire() as conn, conn.cursor() as cur:
        await cur.execute("DELETE FROM outbox")
        for start in range(0, count, chunk):
            await cur.executemany(outbox.INSERT, rows[start : start + chunk])
        await conn.commit()


async def end_offsets(bootstrap_servers: str, topic: str) -> int:
    """The sum of a topic's end offsets: how many messages it has ever been written."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap_servers)  # no group
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        if not partitions:
            raise SystemExit(f"topic {topic}: no partitions known")
        offsets = await consumer.end_offsets([TopicPartition(topic, p) for p in partitions])
        return sum(offsets.values())
    finally:
        await consumer.stop()


async def drain(
    settings: PaymentSettings, database: str, backlog: int, relays: int, timeout: float
) -> dict:
    """Drain `backlog` rows with `relays` relays sharing one outbox; one table row."""
    topic = settings.events_topic
    pool = await outbox.create_relay_pool(settings, database, maxsize=2 * relays + 1)
    try:
        await fill_outbox(pool, topic, backlog)
        await ensure_topics(
            settings.kafka_bootstrap_servers,
            topic_specs(settings, topic),
        )
        before = await end_offsets(settings.kafka_bootstrap_servers, topic)
        workers = [build_relay(settings, pool) for _ in range(relays)]
        started = time.perf_counter()
        for relay in workers:
            relay.start()
        try:
            while sum(r.published for r in workers) < backlog:
                if time.perf_counter() - started > timeout:
                    break
                await asyncio.sleep(0.01)
            seconds = time.perf_counter() - started
        finally:
            for relay in workers:
                await relay.stop()
        left = await workers[0].unpublished()
        written = await end_offsets(settings.kafka_bootstrap_servers, topic) - before
    finally:
        await db.close_pool(pool)
    if left or written != backlog:
        raise SystemExit(f"drain incomplete: {left} rows left, {written} messages on Kafka")
    return {
        "relays": relays,
        "backlog rows": backlog,
        "batch size": settings.outbox_batch_size,
        "seconds": round(seconds, 2),
        "events/s": round(backlog / seconds, 1),
        "published per relay": " / ".join(str(r.published) for r in workers),
        "messages on Kafka": written,
    }
