"""The real servers make infra-up starts: a row, a key and a message round-trip."""

import time
import uuid

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from shared import db
from shared.kafka import TopicSpec, ensure_topics

pytestmark = pytest.mark.integration


async def test_mariadb_row_round_trips(settings):
    pool = await db.create_pool(settings, "mockpay_payment_test")
    async with pool.acquire() as conn, conn.cursor() as cur:
        await cur.execute("CREATE TEMPORARY TABLE t (v VARCHAR(40))")
        value = uuid.uuid4().hex
        await cur.execute("INSERT INTO t VALUES (%s)", (value,))
        await cur.execute("SELECT v FROM t")
        assert await cur.fetchone() == (value,)
        await conn.rollback()
    await db.close_pool(pool)


async def test_closing_a_pool_does_not_wait_forever_for_a_connection_never_released(settings):
    pool = await db.create_pool(settings, "mockpay_payment_test")
    leaked = await pool.acquire()  # as by a task cancelled before it could release it
    started = time.monotonic()
    await db.close_pool(pool, timeout=0.5)
    assert time.monotonic() - started < 5
    assert leaked.closed


async def test_redis_key_round_trips(redis, unique):
    await redis.set(f"test:{unique}", "v", ex=60)
    assert await redis.get(f"test:{unique}") == b"v"


async def test_kafka_message_round_trips_through_a_consumer_group(settings, unique):
    topic = f"test.roundtrip.{unique}"
    await ensure_topics(settings.kafka_bootstrap_servers, [TopicSpec(topic, 1, 1)])
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers)
    await producer.start()
    await producer.send_and_wait(topic, b"hello", key=b"k")
    await producer.stop()
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=settings.kafka_bootstrap_servers,
        group_id=f"test-{unique}", auto_offset_reset="earliest",
    )  # fmt: skip
    await consumer.start()
    try:
        message = await consumer.getone()
        assert (message.key, message.value) == (b"k", b"hello")
    finally:
        await consumer.stop()
