"""Kafka helpers: topic creation and an idempotent, acks=all producer."""

import contextlib
import logging
from dataclasses import dataclass

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from shared.settings import ServiceSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    replication_factor: int
    min_insync_replicas: int = 1

    def new_topic(self) -> NewTopic:
        # An out-of-sync replica never becomes leader: with acks=all and min.insync.replicas,
        # an acknowledged event survives the loss of any one broker.
        configs = {
            "min.insync.replicas": str(self.min_insync_replicas),
            "unclean.leader.election.enable": "false",
        }
        return NewTopic(self.name, self.partitions, self.replication_factor, topic_configs=configs)


def topic_specs(settings: ServiceSettings, *names: str) -> list[TopicSpec]:
    """The service's topics as the settings size them (partitions, replicas, in-sync minimum)."""
    return [
        TopicSpec(
            name,
            settings.kafka_topic_partitions,
            settings.topic_replication_factor,
            settings.topic_min_insync_replicas,
        )
        for name in names
    ]


def event_topics(settings: ServiceSettings) -> list[TopicSpec]:
    """The payment events topic and its dead-letter topic, as the settings name them."""
    return topic_specs(settings, settings.events_topic, settings.dead_letter_topic)


async def ensure_topics(bootstrap_servers: str, topics: list[TopicSpec]) -> None:
    """Create the topics that do not exist yet; existing ones are left as they are."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [t.new_topic() for t in topics if t.name not in existing]
        if missing:
            # Another process may create one between our list and our create.
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(missing)
            log.info("topics created: %s", ", ".join(t.name for t in missing))
    finally:
        await admin.close()


def idempotent_producer(bootstrap_servers: str, linger_ms: int = 5) -> AIOKafkaProducer:
    """Retried sends are written once per partition; a send is acknowledged by all replicas."""
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap_servers,
        enable_idempotence=True,
        acks="all",
        linger_ms=linger_ms,
        max_batch_size=1024 * 1024,
        request_timeout_ms=10_000,
    )
