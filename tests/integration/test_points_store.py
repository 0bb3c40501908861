"""The points store against the real MariaDB: an event's writes and COMMIT go in one query."""

import os
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal

import aiomysql
import pymysql.err
import pytest

from services.points.app import MIGRATIONS
from services.points.store import PointsStore
from shared import db
from shared.clock import iso, utcnow
from shared.events import PaymentEvent
from shared.settings import ServiceSettings
from tests.integration.events_harness import query

pytestmark = pytest.mark.integration


@pytest.fixture
async def pool() -> AsyncIterator[aiomysql.Pool]:
    pool = await db.create_pool(
        ServiceSettings(), os.environ["POINTS_MYSQL_DATABASE"], multi_statements=True
    )
    await db.apply_migrations(pool, MIGRATIONS)
    try:
        yield pool
    finally:
        await db.close_pool(pool)


def event(kind: str, user: str, payment_id: str, amount: int) -> PaymentEvent:
    return PaymentEvent(str(uuid.uuid4()), kind, iso(utcnow()), payment_id, "o", user, amount)


async def state(pool: aiomysql.Pool, user: str, *event_ids: str) -> tuple[object, ...]:
    [(balance,)] = await query(
        pool, "SELECT COALESCE(SUM(balance), 0) FROM points_accounts WHERE user_id = %s", user
    )
    [(entries,)] = await query(pool, "SELECT COUNT(*) FROM points_entries WHERE user_id = %s", user)
    marks = []
    for event_id in event_ids:
        marks += await query(
            pool, "SELECT event_id FROM processed_events WHERE event_id = %s", event_id
        )
    return int(balance), entries, len(marks)


async def test_an_event_applies_once_and_its_cancel_takes_back_what_it_earned(pool):
    store = PointsStore(pool, Decimal("0.01"))
    user, payment_id = f"u-{uuid.uuid4().hex[:12]}", str(uuid.uuid4())
    paid = event("PaymentCompleted", user, payment_id, 12_345)
    assert await store.apply(paid) is True
    assert await store.apply(paid) is False  # the same event_id again: nothing
    assert await state(pool, user, paid.event_id) == (123, 1, 1)
    cancelled = event("PaymentCancelled", user, payment_id, 12_345)
    assert await store.apply(cancelled) is True
    assert await store.apply(cancelled) is False
    assert await state(pool, user, paid.event_id, cancelled.event_id) == (0, 2, 2)


async def test_an_event_whose_entry_is_refused_leaves_nothing_behind(pool):
    """A second statement that fails stops the query before the COMMIT: the event is not
    marked processed, so it is not lost, and the account is untouched."""
    store = PointsStore(pool, Decimal("0.01"))
    user, payment_id = f"u-{uuid.uuid4().hex[:12]}", str(uuid.uuid4())
    first = event("PaymentCompleted", user, payment_id, 10_000)
    assert await store.apply(first) is True
    # Another event_id for the same payment: its entry hits the (payment_id, kind) key.
    clash = event("PaymentCompleted", user, payment_id, 10_000)
    with pytest.raises(pymysql.err.IntegrityError):
        await store.apply(clash)
    assert await state(pool, user, first.event_id, clash.event_id) == (100, 1, 1)
