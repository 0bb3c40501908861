"""A 3-broker Kafka (KAFKA_BROKERS=3): topics keep 3 replicas and need 2 in sync, and the
payment service's outbox relay loses no event when the leader of a partition is killed,
and the broker started again catches up."""

import asyncio
import contextlib
import os
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator

import orjson
import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaError

from services.payment.adapters.outbox import create_relay_pool
from services.payment.bootstrap import MIGRATIONS, build_relay
from services.payment.relay import OutboxRelay
from services.payment.settings import PaymentSettings
from shared import db
from shared.kafka import ensure_topics, topic_specs
from testkit.waiting import eventually
from tests.integration.cluster_harness import KafkaCluster
from tests.integration.outbox_harness import Outbox, log_contents

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        int(os.environ.get("KAFKA_BROKERS", "1")) > 1,
        reason="make test-ha runs the whole suite on a 3-broker cluster and chaos-ha kills its"
        " partition leader under load; a second, private cluster beside it starved the 2-core"
        " machine (no group coordinator within 180 s in 2 of 6 runs). make test runs it.",
    ),
]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Iterator[KafkaCluster]:
    kafka = KafkaCluster(tmp_path_factory.mktemp("kafka-cluster"))
    kafka.start()
    try:
        yield kafka
    finally:
        kafka.stop()


def cluster_settings(cluster: KafkaCluster, topic: str) -> PaymentSettings:
    return PaymentSettings(
        kafka_brokers=3,
        kafka_bootstrap_servers=cluster.bootstrap,
        events_topic=topic,
        dead_letter_topic=f"{topic}.DLT",
        kafka_topic_partitions=3,
        outbox_poll_interval_seconds=0.1,
        outbox_retry_backoff_seconds=0.2,
    )


@contextlib.asynccontextmanager
async def admin(bootstrap: str) -> AsyncIterator[AIOKafkaAdminClient]:
    client = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await client.start()
    try:
        yield client
    finally:
        await client.close()


async def partitions(bootstrap: str, topic: str) -> list[dict]:
    async with admin(bootstrap) as client:
        (described,) = await client.describe_topics([topic])
        return described["partitions"]


async def has_leaders(cluster: KafkaCluster, topic: str) -> bool:
    found = await partitions(cluster.bootstrap, topic)
    return len(found) == 3 and all(p["leader"] >= 0 for p in found)


async def test_topics_are_created_with_three_replicas_two_in_sync_and_no_unclean_election(cluster):
    topic = f"test.ha.{uuid.uuid4().hex[:8]}"
    settings = cluster_settings(cluster, topic)
    await ensure_topics(cluster.bootstrap, topic_specs(settings, topic))
    described: list[dict] = []

    async def known() -> bool:  # every broker learns of a new topic a moment after it is made
        described[:] = await partitions(cluster.bootstrap, topic)
        return len(described) == 3

    await eventually(known, timeout=30)
    assert [len(p["replicas"]) for p in described] == [3, 3, 3]
    configs: dict[str, str] = {}

    async def configured() -> bool:
        async with admin(cluster.bootstrap) as client:
            resource = ConfigResource(ConfigResourceType.TOPIC, topic)
            (answer,) = await client.describe_configs([resource])
        configs.update({name: value for name, value, *_ in answer.resources[0][4]})
        return bool(configs)

    await eventually(configured, timeout=30)
    assert configs["min.insync.replicas"] == "2"
    assert configs["unclean.leader.election.enable"] == "false"


async def consume(bootstrap: str, topic: str, group: str | None, seen: Counter[str]) -> None:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=group, auto_offset_reset="earliest",
        enable_auto_commit=group is not None, auto_commit_interval_ms=200,
    )  # fmt: skip
    try:
        await consumer.start()
        async for message in consumer:
            seen[orjson.loads(message.value)["event_id"]] += 1
    finally:
        await consumer.stop()


async def consume_through_errors(
    bootstrap: str, topic: str, group: str | None, seen: Counter[str]
) -> None:
    """Consume as a real consumer does: on a fresh cluster the group coordinator may not be
    available yet (its offsets topic is still being created); start again, as services do."""
    while True:
        try:
            await consume(bootstrap, topic, group, seen)
        except KafkaError:
            await asyncio.sleep(0.5)  # back off before joining again, not a synchronisation


async def test_killing_the_leader_broker_under_load_loses_no_event(cluster):
    topic = f"test.ha.{uuid.uuid4().hex[:8]}"
    settings = cluster_settings(cluster, topic)
    await ensure_topics(cluster.bootstrap, topic_specs(settings, topic, settings.dead_letter_topic))
    await eventually(lambda: has_leaders(cluster, topic), timeout=30)
    pool = await create_relay_pool(settings, os.environ["PAYMENT_MYSQL_DATABASE"], 2)
    await db.apply_migrations(pool, MIGRATIONS)
    relay: OutboxRelay = build_relay(settings, pool)
    outbox = Outbox(pool, topic)
    consumed: Counter[str] = Counter()
    consumer = asyncio.create_task(
        consume_through_errors(cluster.bootstrap, topic, f"g-{topic}", consumed)
    )
    relay.start()
    try:

        async def flow(batches: int) -> None:  # 20 events a batch, woken like a commit wakes it
            for _ in range(batches):
                await outbox.write(20)
                relay.wake()
                await asyncio.sleep(0.02)  # pacing the load, not waiting for anything

        async def caught_up() -> bool:
            return set(outbox.written) <= set(consumed)

        await flow(10)
        await eventually(caught_up, timeout=180, message="events before the kill not consumed")
        leader = (await partitions(cluster.bootstrap, topic))[0]["leader"]
        cluster.kill(leader)
        await flow(20)  # while the cluster elects new leaders
        await eventually(caught_up, timeout=180, message="events after the kill were lost")
        cluster.restart(leader)

        async def fully_replicated() -> bool:
            return all(len(p["isr"]) == 3 for p in await partitions(cluster.bootstrap, topic))

        await eventually(
            fully_replicated, timeout=90, message="the restarted broker never caught up"
        )
    finally:
        consumer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await consumer
        await relay.stop()
        await db.close_pool(pool)
    in_log = await log_contents(cluster.bootstrap, topic, settings.kafka_topic_partitions)
    assert len(outbox.written) == 600
    # At least once: a batch the relay had to send again may be in the log twice (consumers
    # apply an event_id once); what must never happen is an event missing from it.
    assert set(in_log) == set(outbox.written)
