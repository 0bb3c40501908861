"""The faust app: one agent that feeds every payment event to the EventProcessor.

The app is built inside the service's lifespan (never at import time) and started there on
uvicorn's loop, so the points API and the stream share one process and one event loop.
A short session timeout lets the group hand a crashed member's partitions on within
seconds; a clean stop (SIGTERM) leaves the group at once, so nobody waits at all.
"""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import faust
from faust.contrib.asgi import bind_to_running_loop

from services.points.dead_letters import ConsumedMessage
from services.points.processor import EventProcessor
from services.points.settings import PointsSettings
from shared.health import NotReady

log = logging.getLogger(__name__)


class Membership:
    """Whether the consumer has joined its group: readiness for the points service."""

    def __init__(self, group: str, topic: str = "") -> None:
        self.group = group
        self.topic = topic
        self.joined = False
        self.partitions: list[int] = []  # of `topic` (faust also holds a leader topic's)
        self.failed: BaseException | None = None

    async def on_assigned(self, _app: Any, /, *args: Any, signal: Any, **_: Any) -> None:
        self.joined = True
        self.partitions = sorted(tp.partition for tp in args[0] if tp.topic == self.topic)
        log.info("consumer joined group %s with partitions %s", self.group, self.partitions)

    async def on_revoked(self, _app: Any, /, *args: Any, signal: Any, **_: Any) -> None:
        self.joined, self.partitions = False, []  # a rebalance began: none until it ends
        log.info("consumer rebalancing in group %s", self.group)

    def assignment(self) -> dict[str, Any]:
        return {"group": self.group, "joined": self.joined, "partitions": self.partitions}

    async def check(self) -> None:
        if self.failed is not None:
            raise NotReady(f"the stream failed to start: {self.failed!r}")
        if not self.joined:
            raise NotReady(f"consumer has not joined group {self.group!r} yet (rebalancing)")


def broker_url(bootstrap_servers: str) -> str:
    return ";".join(f"kafka://{server.strip()}" for server in bootstrap_servers.split(","))


def consumed(message: Any) -> ConsumedMessage:
    headers = message.headers or []
    if isinstance(headers, dict):
        headers = list(headers.items())
    return ConsumedMessage(
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        timestamp=int((message.timestamp or 0) * 1000),
        key=message.key,
        value=message.value,
        headers=[(str(k), bytes(v)) for k, v in headers],
    )


def create_faust_app(
    settings: PointsSettings, processor: EventProcessor, membership: Membership
) -> faust.App:
    settings.points_data_dir.mkdir(parents=True, exist_ok=True)  # faust makes only the last
    app = faust.App(
        settings.points_group_id,
        broker=broker_url(settings.kafka_bootstrap_servers),
        web_enabled=False,
        datadir=str(settings.points_data_dir / "{conf.name}"),
        autodiscover=False,
        store="memory://",
        consumer_auto_offset_reset="earliest",
        topic_partitions=settings.kafka_topic_partitions,
        topic_replication_factor=settings.topic_replication_factor,
        broker_commit_interval=settings.points_commit_interval_seconds,
        producer_acks=-1,
        broker_session_timeout=settings.points_session_timeout_seconds,
        broker_heartbeat_interval=settings.points_heartbeat_interval_seconds,
    )
    app.on_partitions_assigned.connect(membership.on_assigned)
    app.on_partitions_revoked.connect(membership.on_revoked)
    topic = app.topic(
        settings.events_topic,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
    )

    async def apply_payment_events(stream: faust.StreamT) -> None:
        async for event in stream.events():
            await processor.handle(consumed(event.message))

    app.agent(topic, name="apply-payment-events", concurrency=settings.points_concurrency)(
        apply_payment_events
    )
    return app


@contextlib.asynccontextmanager
async def streaming(app: faust.App, membership: Membership) -> AsyncIterator[None]:
    """Run the faust app in the background for the block.

    Unlike faust_app_running, the block is entered before the consumer has joined its group
    (which waits out a crashed predecessor's session), so the web server answers
    /health/live, and /health says why it is not ready, meanwhile.
    """
    bind_to_running_loop(app)
    app.finalize()
    starting = asyncio.create_task(app.maybe_start(), name="faust-start")

    def record_failure(task: asyncio.Task[Any]) -> None:
        if not task.cancelled() and task.exception() is not None:
            membership.failed = task.exception()
            log.error("the stream failed to start: %r", membership.failed)

    starting.add_done_callback(record_failure)
    try:
        yield
    finally:
        if not starting.done():
            starting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await starting
        await app.stop()  # leaves the consumer group: a successor joins without waiting
