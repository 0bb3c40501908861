"""The faust app: one agent that feeds every payment event to the EventProcessor.

The app is built inside the service's lifespan (never at import time) and started there on
uvicorn's loop, so the points API and the stream share one process and one event loop.
"""

from typing import Any

import faust

from services.points.dead_letters import ConsumedMessage
from services.points.processor import EventProcessor
from services.points.settings import PointsSettings


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


def create_faust_app(settings: PointsSettings, processor: EventProcessor) -> faust.App:
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
        topic_replication_factor=settings.kafka_replication_factor,
        broker_commit_interval=settings.points_commit_interval_seconds,
        producer_acks=-1,
    )
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

    app.agent(topic, name="apply-payment-events")(apply_payment_events)
    return app
