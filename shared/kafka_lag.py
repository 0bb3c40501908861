"""Consumer lag as kafka-exporter names it, and the depth of a dead-letter topic.

`kafka_consumergroup_lag{consumergroup,topic,partition}` is the log end offset minus the
group's committed offset (from the log start while the group has committed nothing, since
it reads from the earliest offset). Three small requests per refresh: the topic's
partitions, the group's committed offsets, the end offsets; no consumer joins the group.
"""

import contextlib
import logging
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from prometheus_client import CollectorRegistry, Gauge

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LagTarget:
    bootstrap_servers: str
    group: str
    topic: str
    dead_letter_topic: str | None = None  # also export its depth as mockpay_dead_letters


class ConsumerLagGauges:
    """Refreshes the lag (and dead-letter depth) gauges in `registry` on each `refresh()`."""

    def __init__(self, target: LagTarget, registry: CollectorRegistry) -> None:
        self.target = target
        self.lag = Gauge(
            "kafka_consumergroup_lag",
            "Log end offset minus the consumer group's committed offset",
            ("consumergroup", "topic", "partition"),
            registry=registry,
        )
        self.dead_letters = (
            Gauge("mockpay_dead_letters", "Messages on the dead-letter topic", registry=registry)
            if target.dead_letter_topic
            else None
        )
        self._admin: AIOKafkaAdminClient | None = None
        self._offsets: AIOKafkaConsumer | None = None

    async def refresh(self) -> None:
        admin, offsets = await self._clients()
        partitions = await self._partitions(admin, self.target.topic)
        committed = await admin.list_consumer_group_offsets(self.target.group)
        ends = await offsets.end_offsets(partitions)
        starts = await offsets.beginning_offsets(partitions)
        for tp in partitions:
            done = committed.get(tp)
            position = done.offset if done is not None and done.offset >= 0 else starts[tp]
            self.lag.labels(self.target.group, tp.topic, str(tp.partition)).set(
                max(0, ends[tp] - position)
            )
        if self.dead_letters is not None and self.target.dead_letter_topic:
            dlt = await self._partitions(admin, self.target.dead_letter_topic)
            dlt_ends = await offsets.end_offsets(dlt)
            dlt_starts = await offsets.beginning_offsets(dlt)
            self.dead_letters.set(sum(dlt_ends[tp] - dlt_starts[tp] for tp in dlt))

    async def _clients(self) -> tuple[AIOKafkaAdminClient, AIOKafkaConsumer]:
        if self._admin is None or self._offsets is None:
            admin = AIOKafkaAdminClient(bootstrap_servers=self.target.bootstrap_servers)
            offsets = AIOKafkaConsumer(
                bootstrap_servers=self.target.bootstrap_servers, enable_auto_commit=False
            )
            try:
                await admin.start()
                await offsets.start()
            except BaseException:
                await self._close(admin, offsets)
                raise
            self._admin, self._offsets = admin, offsets
        return self._admin, self._offsets

    @staticmethod
    async def _partitions(admin: AIOKafkaAdminClient, topic: str) -> list[TopicPartition]:
        (described,) = await admin.describe_topics([topic])
        return [TopicPartition(topic, p["partition"]) for p in described["partitions"]]

    async def close(self) -> None:
        if self._admin is not None and self._offsets is not None:
            await self._close(self._admin, self._offsets)
        self._admin = self._offsets = None

    @staticmethod
    async def _close(admin: AIOKafkaAdminClient, offsets: AIOKafkaConsumer) -> None:
        with contextlib.suppress(KafkaError):
            await offsets.stop()
        with contextlib.suppress(KafkaError):
            await admin.close()
