"""The outbox relay: publishes committed events to Kafka, at least once, then marks them.

It claims a batch with `SELECT ... FOR UPDATE SKIP LOCKED`, so relays of several replicas
share the work without waiting on each other; sends it with an idempotent, acks=all
producer; and marks the rows published in the same transaction that claimed them, so a
crash between send and mark only means a redelivery, which consumers absorb by event_id.
It wakes when its own process commits an event (after a short linger, so commits close
together share a batch) and polls as a fallback. It has database connections of its own,
so a busy service's queued requests never hold it up. While Kafka is down the outbox
simply grows, and drains when Kafka is back.
"""

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from datetime import timedelta

import aiomysql
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from services.payment.service_layer.base import utcnow
from shared.infra_errors import DEPENDENCY_ERRORS
from shared.kafka import TopicSpec, ensure_topics, idempotent_producer

log = logging.getLogger(__name__)

RELAY_ERRORS = (KafkaError, *DEPENDENCY_ERRORS)


@dataclass(frozen=True)
class RelayConfig:
    bootstrap_servers: str
    topics: list[TopicSpec]
    batch_size: int = 500
    linger: float = 0.01  # after a wake-up, let more commits join the batch
    poll_interval: float = 1.0
    retry_backoff: float = 1.0
    retention: timedelta = timedelta(hours=24)
    prune_interval: float = 60.0


class OutboxRelay:
    def __init__(self, pool: aiomysql.Pool, config: RelayConfig) -> None:
        self.pool = pool
        self.config = config
        self.published = 0
        self._producer: AIOKafkaProducer | None = None
        self._wake = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self._pruned_at = 0.0

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="outbox-relay")

    async def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._producer is not None:
            with contextlib.suppress(*RELAY_ERRORS):
                await self._producer.stop()

    async def _run(self) -> None:
        while not self._stopping:
            # Cleared before the batch, not after: a commit announced while the batch runs
            # may have missed its SELECT, and must still wake the next round at once.
            self._wake.clear()
            try:
                if await self.publish_batch() == self.config.batch_size:
                    continue  # more rows are waiting
                await self._prune_if_due()
            except RELAY_ERRORS as exc:
                # A full backoff: commits keep announcing themselves while Kafka is down.
                log.warning("outbox relay: %r; retrying in %ss", exc, self.config.retry_backoff)
                await asyncio.sleep(self.config.retry_backoff)
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.config.poll_interval)
                # Woken by a commit: a moment's wait lets the commits right behind it share
                # the batch. Without it a busy service runs a batch per commit or two, and
                # the relay's own round trips cost as much as the payments'.
                await asyncio.sleep(self.config.linger)

    async def _ready_producer(self) -> AIOKafkaProducer:
        if self._producer is None:
            await ensure_topics(self.config.bootstrap_servers, self.config.topics)
            producer = idempotent_producer(self.config.bootstrap_servers)
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
        async with self.pool.acquire() as conn, conn.cursor() as cur:
            try:
                # READ COMMITTED: lock only the claimed rows. Under REPEATABLE READ the claim
                # also takes gap locks, and every payment's outbox insert would wait behind
                # a relay that waits for Kafka.
                await cur.execute("SET TRANSACTION ISOLATION LEVEL READ COMMITTED")
                await cur.execute(
                    "SELECT id, topic, event_key, event_type, payload FROM outbox"
                    " WHERE published_at IS NULL ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED",
                    (self.config.batch_size,),
                )
                rows = await cur.fetchall()
                if rows:
                    producer = await self._ready_producer()
                    sent = [
                        await producer.send(
                            topic,
                            payload,
                            key=key.encode(),
                            headers=[("event_type", kind.encode())],
                        )
                        for _, topic, key, kind, payload in rows
                    ]
                    await asyncio.gather(*sent)
                    ids = [row[0] for row in rows]
                    placeholders = ", ".join(["%s"] * len(ids))
                    await cur.execute(
                        f"UPDATE outbox SET published_at = %s WHERE id IN ({placeholders})",
                        (utcnow(), *ids),
                    )
                await conn.commit()
            except BaseException:
                with contextlib.suppress(*DEPENDENCY_ERRORS):
                    await conn.rollback()
                raise
        self.published += len(rows)
        return len(rows)

    async def _prune_if_due(self) -> None:
        if time.monotonic() - self._pruned_at < self.config.prune_interval:
            return
        self._pruned_at = time.monotonic()
        async with self.pool.acquire() as conn, conn.cursor() as cur:
            await cur.execute(
                "DELETE FROM outbox WHERE published_at < %s LIMIT 10000",
                (utcnow() - self.config.retention,),
            )
            await conn.commit()
            if cur.rowcount:
                log.info("outbox relay: pruned %d published rows", cur.rowcount)

    async def unpublished(self) -> int:
        async with self.pool.acquire() as conn, conn.cursor() as cur:
            await cur.execute("SELECT COUNT(*) FROM outbox WHERE published_at IS NULL")
            (count,) = await cur.fetchone()
            await conn.rollback()
            return int(count)
