"""The outbox relay: publishes committed events to Kafka, at least once, then marks them.

It claims a batch of outbox rows (OutboxQueue.claim), sends it with an idempotent, acks=all
producer, and the rows are marked published in the same transaction that claimed them, so a
crash between send and mark only means a redelivery, which consumers absorb by event_id.
It wakes when its own process commits an event (from idle after a short linger, so
commits close together share a batch; under load as soon as the last batch is done, but
no more often than once an interval) and polls as a fallback. It has database connections of
its own, so a busy service's queued requests never hold it up. While Kafka is down the outbox
simply grows, and drains when Kafka is back.
"""

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from datetime import timedelta

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from services.payment.adapters.outbox import OutboxQueue
from shared.background import BackgroundLoop
from shared.clock import utcnow
from shared.infra_errors import DEPENDENCY_ERRORS
from shared.kafka import TopicSpec, ensure_topics, idempotent_producer

log = logging.getLogger(__name__)

RELAY_ERRORS = (KafkaError, *DEPENDENCY_ERRORS)


@dataclass(frozen=True)
class RelayConfig:
    bootstrap_servers: str
    topics: list[TopicSpec]
    batch_size: int = 500
    linger: float = 0.01  # a relay woken from idle waits this long for company
    # Under steady load batches start at least this far apart: each costs two database round
    # trips and a produce request, whatever its size, so fewer and larger batches cost the
    # payment process less CPU per event; an event waits for the next one at most this long.
    interval: float = 0.05
    poll_interval: float = 1.0
    retry_backoff: float = 1.0
    retention: timedelta = timedelta(hours=24)
    prune_interval: float = 60.0


class OutboxRelay(BackgroundLoop):
    task_name = "outbox-relay"

    def __init__(self, outbox: OutboxQueue, config: RelayConfig) -> None:
        super().__init__()
        self.outbox = outbox
        self.config = config
        self.published = 0
        self._producer: AIOKafkaProducer | None = None
        self._wake = asyncio.Event()
        self._pruned_at = 0.0

    def wake(self) -> None:
        self._wake.set()

    async def stop(self) -> None:
        await super().stop()
        if self._producer is not None:
            with contextlib.suppress(*RELAY_ERRORS):
                await self._producer.stop()
            self._producer = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while not self.stopping:
            # Cleared before the batch, not after: a commit announced while the batch runs
            # may have missed its SELECT, and must still wake the next round at once.
            self._wake.clear()
            started = loop.time()
            try:
                if await self.publish_batch() == self.config.batch_size:
                    continue  # more rows are waiting
                await self._prune_if_due()
            except RELAY_ERRORS as exc:
                # A full backoff: commits keep announcing themselves while Kafka is down.
                log.warning("outbox relay: %r; retrying in %ss", exc, self.config.retry_backoff)
                await self.pause(self.config.retry_backoff)
                continue
            if self._wake.is_set():
                # Commits came in during the batch. Batches start at most once an interval:
                # a longer batch is followed at once, a shorter one waits out the rest, so
                # a steady load costs the relay at most 1/interval rounds a second.
                await asyncio.sleep(max(0.0, started + self.config.interval - loop.time()))
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.config.poll_interval)
                # Woken from idle by a commit: a moment's wait lets the commits right behind
                # it share the batch. Without it a lightly loaded service runs a batch per
                # commit, and the relay's own round trips cost as much as the payments'.
                # Under steady load the batches gather while the previous one is in flight.
                await asyncio.sleep(self.config.linger)

    async def _ready_producer(self) -> AIOKafkaProducer:
        if self._producer is None:
            await ensure_topics(self.config.bootstrap_servers, self.config.topics)
            # No linger in the producer: a batch is handed over whole, in one loop turn.
            producer = idempotent_producer(self.config.bootstrap_servers, linger_ms=0)
            try:
                await producer.start()
            except BaseException:
                await producer.stop()
                raise
            self._producer = producer
            log.info("outbox relay connected to Kafka at %s", self.config.bootstrap_servers)
        return self._producer

    async def publish_batch(self) -> int:
        """Publish up to one batch of unpublished rows; how many were published."""
        async with self.outbox.claim(self.config.batch_size) as rows:
            if rows:
                producer = await self._ready_producer()
                sent = [
                    await producer.send(
                        row.topic,
                        row.payload,
                        key=row.key.encode(),
                        headers=row.headers(),
                    )
                    for row in rows
                ]
                await asyncio.gather(*sent)
        self.published += len(rows)
        return len(rows)

    async def _prune_if_due(self) -> None:
        if time.monotonic() - self._pruned_at < self.config.prune_interval:
            return
        self._pruned_at = time.monotonic()
        pruned = await self.outbox.prune(utcnow() - self.config.retention)
        if pruned:
            log.info("outbox relay: pruned %d published rows", pruned)

    async def unpublished(self) -> int:
        return await self.outbox.unpublished()
