"""The one place that wires the payment service: pools, clients, locking, the service."""

import logging
from dataclasses import dataclass
from pathlib import Path

import aiomysql
from redis.asyncio import Redis

from services.payment.adapters.uow import MySqlUnitOfWork
from services.payment.service_layer.handlers import Locking, PaymentService
from services.payment.settings import PaymentSettings
from shared import db
from shared.idempotency import IdempotencyStore
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

    async def close(self) -> None:
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
    service = PaymentService(
        build_locking(settings, locks),
        lambda token, row_locks: MySqlUnitOfWork(pool, token, row_locks),
    )
    idempotency = IdempotencyStore(
        redis,
        "payments",
        settings.idempotency_ttl_seconds,
        settings.idempotency_running_ttl_seconds,
    )
    log.info(
        "payment service wired: database %s, lock strategy %s",
        settings.payment_mysql_database,
        settings.payment_lock_strategy,
    )
    return Components(settings, pool, redis, locks, service, idempotency)
