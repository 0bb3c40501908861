"""The composition root closes what it opened, also when a later step fails."""

import asyncio

import aiomysql
import pytest

from services.payment import bootstrap as wiring
from services.payment.relay import OutboxRelay
from services.payment.settings import PaymentSettings
from shared import db

pytestmark = pytest.mark.integration


class Broken(Exception):
    pass


def background_tasks() -> set[str]:
    return {task.get_name() for task in asyncio.all_tasks()} & {"outbox-relay", "charge-reconciler"}


async def test_a_step_that_fails_after_the_pools_opened_closes_them(monkeypatch):
    opened: list[aiomysql.Pool] = []
    real_create_pool = db.create_pool

    async def recorded_pool(*args: object, **kwargs: object) -> aiomysql.Pool:
        pool = await real_create_pool(*args, **kwargs)  # type: ignore[arg-type]
        opened.append(pool)
        return pool

    def broken_relay(settings: PaymentSettings, pool: aiomysql.Pool) -> OutboxRelay:
        raise Broken

    monkeypatch.setattr(db, "create_pool", recorded_pool)
    monkeypatch.setattr(wiring, "build_relay", broken_relay)
    with pytest.raises(Broken):
        async with wiring.bootstrap(PaymentSettings()):
            pass
    assert len(opened) == 2  # the service's pool and the relay's own
    assert all(pool._closed for pool in opened)
    assert not background_tasks()


async def test_stopping_the_service_ends_its_background_loops_and_closes_its_pool():
    async with wiring.bootstrap(PaymentSettings()) as parts:
        assert background_tasks() == {"outbox-relay", "charge-reconciler"}
        assert not parts.pool._closed
    assert not background_tasks()
    assert parts.pool._closed
