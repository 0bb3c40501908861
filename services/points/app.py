"""The points service: the faust stream and the points API in one process."""

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from fastapi import Depends, FastAPI, Request
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_delay, wait_fixed

from services.points.dead_letters import DeadLetters
from services.points.deps import ProcessorDep, StoreDep
from services.points.metrics import PointsMetrics, register_processor
from services.points.processor import EventProcessor, RetryPolicy
from services.points.settings import PointsSettings
from services.points.store import GroupCommit, PointsStore
from services.points.streaming import Membership, create_faust_app, streaming
from shared import db
from shared.auth import Scope
from shared.fields import PathId
from shared.health import health_router
from shared.http import FASTAPI_TELEMETRY, JsonResponse, error_response, install_error_handlers
from shared.kafka import ensure_topics, event_topics, idempotent_producer
from shared.kafka_lag import ConsumerLagGauges, LagTarget
from shared.metrics import Refresher, install_metrics, new_registry

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).parent / "migrations"
KAFKA_STARTUP_SECONDS = 60


def create_app(settings: PointsSettings) -> FastAPI:
    registry = new_registry()
    metrics = PointsMetrics(registry)
    lag = ConsumerLagGauges(lag_target(settings), registry)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        lock_wait = f"SET SESSION innodb_lock_wait_timeout = {settings.points_db_lock_wait_seconds}"
        pool = await db.create_pool(
            settings, settings.points_mysql_database, lock_wait, multi_statements=True
        )
        await db.apply_migrations(pool, MIGRATIONS)
        producer = idempotent_producer(settings.kafka_bootstrap_servers, linger_ms=0)
        async for attempt in AsyncRetrying(
            retry=retry_if_exception_type(KafkaError),
            stop=stop_after_delay(KAFKA_STARTUP_SECONDS),
            wait=wait_fixed(1),
            reraise=True,
        ):
            with attempt:
                await ensure_topics(settings.kafka_bootstrap_servers, event_topics(settings))
                await producer.start()
        store = PointsStore(pool, settings.points_rate)
        dead_letters = DeadLetters(
            producer,
            settings.dead_letter_topic,
            settings.points_group_id,
            settings.points_retry_backoff_seconds,
        )
        policy = RetryPolicy(
            settings.points_retries,
            settings.points_retry_backoff_seconds,
            settings.points_outage_backoff_seconds,
            settings.points_outage_backoff_max_seconds,
        )
        applier = (
            GroupCommit(store, settings.points_batch_max, metrics.batch_size.observe)
            if settings.points_batch_max > 1
            else store
        )
        processor = EventProcessor(applier, dead_letters, policy)
        membership = Membership(settings.points_group_id, settings.events_topic)
        await warn_if_workers_idle(producer, settings)
        app.state.store, app.state.processor, app.state.producer = store, processor, producer
        app.state.membership = membership
        app.state.health_checks = {
            "mariadb": lambda: db.ping(pool),
            "kafka": lambda: producer.client.fetch_all_metadata(),
            "consumer": membership.check,
        }
        register_processor(processor, registry)
        lag_refresher = Refresher("lag", lag.refresh, settings.metrics_refresh_seconds)
        try:
            async with streaming(create_faust_app(settings, processor, membership), membership):
                log.info("points service up; the stream joins group %s", settings.points_group_id)
                lag_refresher.start()
                yield
        finally:
            if isinstance(applier, GroupCommit):
                await applier.close()  # the batches in flight end before the pool closes
            await lag_refresher.stop()
            await lag.close()
            await producer.stop()
            await db.close_pool(pool)

    app = FastAPI(
        title="Mock-Pay points service",
        description="Points earned from payment events, each event applied once.",
        lifespan=lifespan,
        telemetry=FASTAPI_TELEMETRY,
    )
    install_error_handlers(app, settings.retry_after_seconds)
    app.include_router(health_router(settings.health_check_timeout_seconds))
    keys = settings.key_ring()

    @app.get("/points/{user_id}", dependencies=[Depends(keys.require(Scope.READ))])
    async def points(user_id: PathId, store: StoreDep) -> JsonResponse:
        """A user's points balance and latest entries."""
        account = await store.account(user_id)
        if account is None:
            return error_response(404, "ACCOUNT_NOT_FOUND", f"no points for {user_id!r} yet")
        return JsonResponse(account)

    @app.get("/stats", dependencies=[Depends(keys.require(Scope.ADMIN))])
    async def stats(processor: ProcessorDep) -> JsonResponse:
        """Operators: what the stream did since start (applied, duplicates, dead letters)."""
        return JsonResponse(dict(processor.counts))

    @app.get("/partitions", dependencies=[Depends(keys.require(Scope.ADMIN))])
    async def partitions(request: Request) -> JsonResponse:
        """Operators: the partitions of the events topic this worker consumes."""
        membership: Membership = request.app.state.membership
        return JsonResponse(membership.assignment())

    install_metrics(app, registry)
    return app


async def warn_if_workers_idle(producer: AIOKafkaProducer, settings: PointsSettings) -> None:
    """A partition has one consumer in a group: workers beyond the partition count idle. A
    topic made before the settings said otherwise keeps its count: say so."""
    try:
        partitions = len(await producer.partitions_for(settings.events_topic))
    except KafkaError as exc:
        log.warning("could not count the partitions of %s: %r", settings.events_topic, exc)
        return
    if partitions != settings.kafka_topic_partitions:
        log.warning(
            "%s has %d partition(s), KAFKA_TOPIC_PARTITIONS says %d (it was made before)",
            settings.events_topic,
            partitions,
            settings.kafka_topic_partitions,
        )
    if partitions < settings.points_workers:
        log.warning(
            "POINTS_WORKERS=%d but %s has %d partition(s): %d worker(s) will idle",
            settings.points_workers,
            settings.events_topic,
            partitions,
            settings.points_workers - partitions,
        )


def lag_target(settings: PointsSettings) -> LagTarget:
    return LagTarget(
        settings.kafka_bootstrap_servers,
        settings.points_group_id,
        settings.events_topic,
        settings.dead_letter_topic,
    )
