"""The one place that wires the payment service: pools, clients, locking, the service."""

import logging
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import aiomysql
import httpx
from redis.asyncio import Redis

from services.payment.adapters.bank import GatewayBank
from services.payment.adapters.uow import MySqlUnitOfWork
from services.payment.relay import OutboxRelay, RelayConfig
from services.payment.service_layer.base import Locking
from services.payment.service_layer.charges import ChargeService
from services.payment.service_layer.handlers import PaymentService
from services.payment.service_layer.reconciler import Reconciler
from services.payment.settings import PaymentSettings
from shared import db
from shared.idempotency import IdempotencyStore
from shared.kafka import TopicSpec
from shared.lock import DatabaseRowLocking, LockService, RedisLocking
from shared.redis_client import create_redis

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).parent / "migrations"


@dataclass
class Components:
    settings: PaymentSettings
    pool: aiomysql.Pool
    redis: Redis
    locks: LockService
    service: PaymentService
    idempotency: IdempotencyStore
    charges: ChargeService
    charge_idempotency: IdempotencyStore
    bank_http: httpx.AsyncClient
    reconciler: Reconciler
    relay: OutboxRelay
    relay_pool: aiomysql.Pool

    async def close(self) -> None:
        await self.relay.stop()
        await db.close_pool(self.relay_pool)
        await self.reconciler.stop()
        await self.bank_http.aclose()
        await self.locks.close()
        await self.redis.aclose()
        await db.close_pool(self.pool)


def build_locking(settings: PaymentSettings, locks: LockService) -> Locking:
    if settings.payment_lock_strategy == "pessimistic":
        return DatabaseRowLocking()
    return RedisLocking(locks, settings.lock_wait_seconds, settings.lock_lease_seconds)


async def bootstrap(settings: PaymentSettings, migrate: bool = True) -> Components:
    pool = await db.create_pool(settings, settings.payment_mysql_database)
    if migrate:
        await db.apply_migrations(pool, MIGRATIONS)
    redis = create_redis(settings)
    locks = LockService(
        redis,
        watchdog_timeout=settings.lock_watchdog_seconds,
        local_queue=settings.lock_local_queue,
    )
    locking = build_locking(settings, locks)

    def unit_of_work(token: int | None, row_locks: bool) -> MySqlUnitOfWork:
        return MySqlUnitOfWork(pool, token, row_locks)

    def idempotency_store(namespace: str) -> IdempotencyStore:
        return IdempotencyStore(
            redis,
            namespace,
            settings.idempotency_ttl_seconds,
            settings.idempotency_running_ttl_seconds,
        )

    bank_http = httpx.AsyncClient(
        base_url=settings.bank_gateway_url,
        timeout=settings.bank_gateway_timeout_seconds,
        headers={"Authorization": f"Bearer {settings.bank_gateway_token.get_secret_value()}"},
    )
    charges = ChargeService(locking, unit_of_work, GatewayBank(bank_http))
    reconciler = Reconciler(
        charges,
        settings.charge_reconcile_interval_seconds,
        settings.charge_reconcile_min_age_seconds,
        settings.charge_reconcile_give_up_seconds,
        settings.charge_reconcile_batch,
    )
    reconciler.start()
    log.info(
        "payment service wired: database %s, lock strategy %s",
        settings.payment_mysql_database,
        settings.payment_lock_strategy,
    )
    # The relay has connections of its own: from the shared pool it would wait behind every
    # queued request whenever the service is busy, and events would wait with it.
    relay_pool = await db.create_pool(
        settings, settings.payment_mysql_database, maxsize=settings.outbox_relay_connections
    )
    relay = build_relay(settings, relay_pool)
    payments = PaymentService(locking, unit_of_work)
    payments.events_topic = settings.events_topic
    payments.events_committed = relay.wake
    if settings.outbox_relay_enabled:
        relay.start()
    return Components(
        settings,
        pool,
        redis,
        locks,
        payments,
        idempotency_store("payments"),
        charges,
        idempotency_store("charges"),
        bank_http,
        reconciler,
        relay,
        relay_pool,
    )


def build_relay(settings: PaymentSettings, pool: aiomysql.Pool) -> OutboxRelay:
    topics = [
        TopicSpec(name, settings.kafka_topic_partitions, settings.kafka_replication_factor)
        for name in (settings.events_topic, settings.dead_letter_topic)
    ]
    config = RelayConfig(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        topics=topics,
        batch_size=settings.outbox_batch_size,
        linger=settings.outbox_linger_ms / 1000,
        poll_interval=settings.outbox_poll_interval_seconds,
        retry_backoff=settings.outbox_retry_backoff_seconds,
        retention=timedelta(hours=settings.outbox_retention_hours),
        prune_interval=settings.outbox_prune_interval_seconds,
    )
    return OutboxRelay(pool, config)
