"""The one place that wires the payment service: pools, clients, locking, the services.

Everything is opened inside an AsyncExitStack, so whatever was opened is closed, in reverse
order, when the service stops or when a later step fails. The background loops (outbox
relay, charge reconciler) start last and therefore stop first.
"""

import contextlib
import dataclasses
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import aiomysql
import httpx
from redis.asyncio import ConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from services.payment.adapters.balances import BalanceCache
from services.payment.adapters.bank import GatewayBank
from services.payment.adapters.outbox import OutboxQueue, create_relay_pool
from services.payment.adapters.uow import MySqlUnitOfWork
from services.payment.metrics import PaymentMetrics
from services.payment.relay import OutboxRelay, RelayConfig
from services.payment.service_layer.base import UnitOfWorkFactory
from services.payment.service_layer.charges import ChargeService
from services.payment.service_layer.handlers import Batching, PaymentService
from services.payment.service_layer.locking import (
    DatabaseRowLocking,
    FallbackLocking,
    Locking,
    RedisLocking,
)
from services.payment.service_layer.reconciler import Reconciler
from services.payment.settings import PaymentSettings
from shared import db
from shared.idempotency import IdempotencyStore
from shared.kafka import event_topics
from shared.lock import LockService
from shared.lock.counters import LockCounters
from shared.lock.takeover import Takeover
from shared.redis_client import (
    create_redis,
    create_retrying_redis,
    create_session_connection,
    with_pipelined_scripts,
)
from shared.session import Session

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).parent / "migrations"


@dataclass(frozen=True, kw_only=True)
class Components:
    settings: PaymentSettings
    pool: aiomysql.Pool
    redis: Redis
    service: PaymentService
    idempotency: IdempotencyStore
    charges: ChargeService
    charge_idempotency: IdempotencyStore
    relay: OutboxRelay


@dataclass(frozen=True, kw_only=True)
class Store:
    """The database and the wallet locking: what every use case needs."""

    pool: aiomysql.Pool
    redis: Redis
    session: Session
    locking: Locking
    unit_of_work: UnitOfWorkFactory


async def open_store(
    stack: AsyncExitStack,
    settings: PaymentSettings,
    migrate: bool,
    metrics: PaymentMetrics | None = None,
) -> Store:
    pool = await db.create_pool(
        settings, settings.payment_mysql_database, multi_statements=True
    )  # a unit of work sends its writes in one round trip
    stack.push_async_callback(db.close_pool, pool)
    if migrate:
        await db.apply_migrations(pool, MIGRATIONS)
    redis = create_redis(settings)
    stack.push_async_callback(redis.aclose)
    session = await open_session(stack, settings, redis, metrics)
    locks = await stack.enter_async_context(
        LockService(
            lock_nodes(stack, settings) or redis,
            watchdog_timeout=settings.lock_watchdog_seconds,
            local_queue=settings.lock_local_queue,
            node_timeout=settings.lock_node_timeout_seconds,
            drift_factor=settings.lock_clock_drift_factor,
            takeover=Takeover(
                session,
                settings.lock_takeover_check_seconds,
                metrics.lock_takeovers.inc if metrics is not None else _no_count,
            ),
            counters=lock_counters(metrics),
            release_retry=settings.lock_release_retry_seconds,
            release_behind=settings.lock_release_behind,
        )
    )

    balances = BalanceCache(settings.wallet_cache_size) if settings.wallet_cache_size else None
    if balances is not None and metrics is not None:
        metrics.watch_balances(balances)

    def unit_of_work(token: int | None, row_locks: bool) -> MySqlUnitOfWork:
        return MySqlUnitOfWork(pool, token, row_locks, multi_statements=True, balances=balances)

    locking = build_locking(settings, locks, metrics.lock_fallbacks.inc if metrics else None)
    return Store(
        pool=pool, redis=redis, session=session, locking=locking, unit_of_work=unit_of_work
    )


def _no_count() -> None:
    return None


def lock_counters(metrics: PaymentMetrics | None) -> LockCounters:
    if metrics is None:
        return LockCounters()
    return LockCounters(
        subscription_timeout=metrics.lock_subscription_timeouts.inc,
        release_missed=metrics.lock_releases_missed.inc,
    )


async def open_session(
    stack: AsyncExitStack, settings: PaymentSettings, redis: Redis, metrics: PaymentMetrics | None
) -> Session:
    """This process's session; ended (its key deleted) after everything else has stopped."""
    connection = create_session_connection(settings)
    stack.push_async_callback(connection.aclose)
    session = Session(
        redis,
        connection,
        ttl_seconds=settings.payment_instance_ttl_seconds,
        on_refresh_failed=metrics.session_refresh_failures.inc if metrics else _no_count,
    )
    await session.start()
    stack.push_async_callback(session.stop)
    return session


def lock_nodes(stack: AsyncExitStack, settings: PaymentSettings) -> list[Redis]:
    """Clients of the lock's own Redis nodes; none when locks live on the main Redis."""
    if settings.lock_redis_nodes <= 1:
        return []
    nodes = []
    for url in settings.lock_node_urls():
        # Like create_redis: no retries of their own (a retried acquire counts twice).
        pool = ConnectionPool.from_url(
            url,
            retry=Retry(NoBackoff(), 0),
            socket_timeout=settings.lock_node_late_answer_seconds,
            socket_connect_timeout=settings.lock_node_timeout_seconds,
        )
        node = (
            with_pipelined_scripts(
                url,
                settings.lock_node_late_answer_seconds,
                settings.lock_node_timeout_seconds,
                Retry(NoBackoff(), 0),
                connection_pool=pool,
            )
            if settings.redis_pipelined_scripts
            else Redis(connection_pool=pool)
        )
        stack.push_async_callback(node.aclose)
        nodes.append(node)
    return nodes


def build_locking(
    settings: PaymentSettings,
    locks: LockService,
    on_fallback: Callable[[], None] | None = None,
) -> Locking:
    if settings.payment_lock_strategy == "pessimistic":
        return DatabaseRowLocking()
    redis_locking = RedisLocking(locks, settings.lock_wait_seconds, settings.lock_lease_seconds)
    if settings.lock_fallback == "none":
        return redis_locking
    if on_fallback is None:
        return FallbackLocking(redis_locking)
    return FallbackLocking(redis_locking, on_fallback)


@contextlib.asynccontextmanager
async def operator_payments(settings: PaymentSettings) -> AsyncIterator[PaymentService]:
    """The payment use cases alone, for operator commands: no relay, no bank, no reconciler.

    Events they commit wait in the outbox for a running service's relay.
    """
    async with AsyncExitStack() as stack:
        store = await open_store(stack, settings, migrate=True)
        yield PaymentService(store.locking, store.unit_of_work, events_topic=settings.events_topic)


def gateway_client(settings: PaymentSettings) -> httpx.AsyncClient:
    """The bank gateway's HTTP client: its idle connections are dropped before the
    gateway's own keep-alive ends (BANK_GATEWAY_KEEPALIVE_SECONDS)."""
    return httpx.AsyncClient(
        base_url=settings.bank_gateway_url,
        timeout=settings.bank_gateway_timeout_seconds,
        limits=httpx.Limits(
            max_connections=settings.bank_gateway_max_connections,
            keepalive_expiry=settings.bank_gateway_keepalive_seconds,
        ),
        headers={"Authorization": f"Bearer {settings.bank_gateway_token.get_secret_value()}"},
    )


@contextlib.asynccontextmanager
async def bootstrap(
    settings: PaymentSettings, migrate: bool = True, metrics: PaymentMetrics | None = None
) -> AsyncIterator[Components]:
    """The whole payment service, open for the block; `metrics` times its lock."""
    async with AsyncExitStack() as stack:
        store = await open_store(stack, settings, migrate, metrics)
        if metrics is not None:
            locking = metrics.metered(store.locking, settings.payment_lock_strategy)
            store = dataclasses.replace(store, locking=locking)
        bank_http = await stack.enter_async_context(gateway_client(settings))
        # The relay has connections of its own: from the shared pool it would wait behind
        # every queued request whenever the service is busy, and events would wait with it.
        relay_pool = await create_relay_pool(
            settings, settings.payment_mysql_database, settings.outbox_relay_connections
        )
        stack.push_async_callback(db.close_pool, relay_pool)
        relay = build_relay(settings, relay_pool)
        charges = ChargeService(store.locking, store.unit_of_work, GatewayBank(bank_http))
        charges.conflict_retries = settings.lock_conflict_retries
        reconciler = Reconciler(
            charges,
            interval=settings.charge_reconcile_interval_seconds,
            min_age=settings.charge_reconcile_min_age_seconds,
            give_up_after=settings.charge_reconcile_give_up_seconds,
            batch=settings.charge_reconcile_batch,
        )
        service = PaymentService(
            store.locking,
            store.unit_of_work,
            events_topic=settings.events_topic,
            events_committed=relay.wake,
            batching=Batching(
                settings.payment_batch_max,
                settings.payment_batch_linger_ms / 1000,
                metrics.batch_size.observe if metrics is not None else None,
            ),
        )
        service.conflict_retries = settings.lock_conflict_retries
        stack.push_async_callback(service.close)
        # Idempotency scripts are safe to repeat: their client retries on connection errors.
        # They share the lock's connection: a payment's lock release and its idempotency
        # record go to Redis in one write (LOCK_RELEASE_BEHIND).
        retrying_redis = create_retrying_redis(settings, scripts_with=store.redis)
        stack.push_async_callback(retrying_redis.aclose)
        parts = Components(
            settings=settings,
            pool=store.pool,
            redis=store.redis,
            service=service,
            idempotency=idempotency_store(settings, retrying_redis, "payments", store, metrics),
            charges=charges,
            charge_idempotency=idempotency_store(
                settings, retrying_redis, "charges", store, metrics
            ),
            relay=relay,
        )
        stack.push_async_callback(relay.stop)
        stack.push_async_callback(reconciler.stop)
        reconciler.start()
        if settings.outbox_relay_enabled:
            relay.start()
        log.info(
            "payment service wired: database %s, lock strategy %s",
            settings.payment_mysql_database,
            settings.payment_lock_strategy,
        )
        yield parts


def idempotency_store(
    settings: PaymentSettings,
    redis: Redis,
    namespace: str,
    store: Store,
    metrics: PaymentMetrics | None,
) -> IdempotencyStore:
    return IdempotencyStore(
        redis,
        namespace,
        settings.idempotency_ttl_seconds,
        settings.idempotency_lease_seconds,
        settings.idempotency_lease_renew_seconds,
        settings.idempotency_lease_max_seconds,
        session=store.session,
        on_takeover=metrics.idempotency_takeovers.inc if metrics else None,
    )


def build_relay(settings: PaymentSettings, pool: aiomysql.Pool) -> OutboxRelay:
    config = RelayConfig(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        topics=event_topics(settings),
        batch_size=settings.outbox_batch_size,
        linger=settings.outbox_linger_ms / 1000,
        interval=settings.outbox_interval_ms / 1000,
        poll_interval=settings.outbox_poll_interval_seconds,
        retry_backoff=settings.outbox_retry_backoff_seconds,
        retention=timedelta(hours=settings.outbox_retention_hours),
        prune_interval=settings.outbox_prune_interval_seconds,
    )
    return OutboxRelay(OutboxQueue(pool), config)
