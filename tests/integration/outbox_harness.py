"""Outbox rows written as committed payments write them, and what reached a topic's log."""

from collections import Counter

import aiomysql
import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from services.payment.adapters import outbox
from shared.clock import utcnow
from testkit.events import completed_event


class Outbox:
    """Writes events into the payment outbox, as committed payments do, for one topic."""

    def __init__(self, pool: aiomysql.Pool, topic: str) -> None:
        self.pool = pool
        self.topic = topic
        self.written: list[str] = []

    async def write(self, count: int) -> None:
        now = utcnow()
        rows = []
        for _ in range(count):
            event = completed_event(now, "ha", f"user-{len(self.written) % 17}")
            rows.append(outbox.insert_values(self.topic, event, now))
            self.written.append(event.event_id)
        async with self.pool.acquire() as conn, conn.cursor() as cur:
            await cur.executemany(outbox.INSERT, rows)
            await conn.commit()

    async def unpublished(self) -> int:
        """Rows of this topic not yet marked published."""
        async with self.pool.acquire() as conn, conn.cursor() as cur:
            await cur.execute(
                "SELECT COUNT(*) FROM outbox WHERE topic = %s AND published_at IS NULL",
                (self.topic,),
            )
            (count,) = await cur.fetchone()
            await conn.rollback()
            return int(count)


async def log_contents(bootstrap: str, topic: str, partition_count: int) -> Counter[str]:
    """Every event id in the topic's log, read from the start without a group."""
    seen: Counter[str] = Counter()
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await consumer.start()
    try:
        parts = [TopicPartition(topic, p) for p in range(partition_count)]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        ends = await consumer.end_offsets(parts)
        while [tp for tp, end in ends.items() if await consumer.position(tp) < end]:
            batches = await consumer.getmany(timeout_ms=500)
            for records in batches.values():
                for record in records:
                    seen[orjson.loads(record.value)["event_id"]] += 1
    finally:
        await consumer.stop()
    return seen


async def end_offsets(bootstrap: str, topic: str, partition_count: int) -> int:
    """The sum of the topic's end offsets: how many records were ever written to it."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await consumer.start()
    try:
        parts = [TopicPartition(topic, p) for p in range(partition_count)]
        return sum((await consumer.end_offsets(parts)).values())
    finally:
        await consumer.stop()
