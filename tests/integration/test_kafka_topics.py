"""Topics a broker makes on first use have as many partitions as KAFKA_TOPIC_PARTITIONS."""

import uuid

import pytest

from shared.kafka import idempotent_producer
from shared.settings import ServiceSettings

pytestmark = pytest.mark.integration


async def test_a_topic_the_broker_creates_on_first_use_gets_the_configured_partitions():
    """A client that asks for the events topic before a service created it (a lag gauge, a
    consumer) makes the broker create it (auto.create.topics.enable). Its partitions are
    what POINTS_WORKERS share, so they must be KAFKA_TOPIC_PARTITIONS, not a broker default
    of its own (it was 3, and two workers then split 2 + 1)."""
    settings = ServiceSettings()
    producer = idempotent_producer(settings.kafka_bootstrap_servers)
    await producer.start()
    try:
        partitions = await producer.partitions_for(f"test.auto.{uuid.uuid4().hex[:10]}")
    finally:
        await producer.stop()
    assert len(partitions) == settings.kafka_topic_partitions
