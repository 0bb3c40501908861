"""The points store against the real MariaDB: an event's writes and COMMIT go in one query,
alone or with the other events of a batch."""

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal

import aiomysql
import pymysql.err
import pytest

from services.points.app import MIGRATIONS
from services.points.store import GroupCommit, PointsStore
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


async def state(pool: aiomysql.Pool, user: str, *event_ids: str) -> tuple[int, int, int]:
    [(balance,)] = await query(
        pool, "SELECT COALESCE(SUM(balance), 0) FROM points_accounts WHERE user_id = %s", user
    )
    [(entries,)] = await query(pool, "SELECT COUNT(*) FROM points_entries WHERE user_id = %s", user)
    marks = []
    for event_id in event_ids:
        marks += await query(
            pool, "SELECT event_id FROM processed_events WHERE event_id = %s", event_id
        )
    return int(balance), int(entries), len(marks)


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


async def totals(pool: aiomysql.Pool, users: list[str]) -> dict[str, tuple[int, int]]:
    """Per user: the account's balance and the sum of its entries."""
    found = {}
    for user in users:
        balance, _, _ = await state(pool, user)
        [(summed,)] = await query(
            pool, "SELECT COALESCE(SUM(delta), 0) FROM points_entries WHERE user_id = %s", user
        )
        found[user] = (balance, int(summed))
    return found


async def test_a_batch_applies_every_event_in_one_transaction(pool):
    """Several events of one user, a cancel whose completion was applied earlier and one
    whose completion is in the same batch: each account gets the sum of its events."""
    store = PointsStore(pool, Decimal("0.01"))
    alice, bob = f"u-{uuid.uuid4().hex[:12]}", f"u-{uuid.uuid4().hex[:12]}"
    earlier = event("PaymentCompleted", alice, str(uuid.uuid4()), 50_000)
    assert await store.apply(earlier) is True
    same_batch = str(uuid.uuid4())
    batch = [
        event("PaymentCompleted", alice, str(uuid.uuid4()), 10_000),
        event("PaymentCompleted", alice, str(uuid.uuid4()), 20_000),
        event("PaymentCancelled", alice, earlier.payment_id, 50_000),
        event("PaymentCompleted", bob, same_batch, 30_000),
        event("PaymentCancelled", bob, same_batch, 30_000),
        event("PaymentCompleted", bob, str(uuid.uuid4()), 7_000),
    ]
    assert await store.apply_batch("points", batch) == [True] * 6
    assert await state(pool, alice, *(e.event_id for e in batch[:3])) == (300, 4, 3)
    assert await state(pool, bob, *(e.event_id for e in batch[3:])) == (70, 3, 3)
    assert await totals(pool, [alice, bob]) == {alice: (300, 300), bob: (70, 70)}


async def test_a_batch_with_a_repeat_and_a_refused_event_answers_each_alone(pool):
    """An event applied before and one whose entry the database refuses fail the batch's
    transaction; every event is then applied alone and gets its own answer."""
    store = PointsStore(pool, Decimal("0.01"))
    user = f"u-{uuid.uuid4().hex[:12]}"
    applied = event("PaymentCompleted", user, str(uuid.uuid4()), 10_000)
    assert await store.apply(applied) is True
    clash = event("PaymentCompleted", user, applied.payment_id, 10_000)  # same payment
    fresh = [event("PaymentCompleted", user, str(uuid.uuid4()), 40_000) for _ in range(2)]
    outcomes = await store.apply_batch("points", [fresh[0], applied, clash, fresh[1]])
    assert outcomes[0] is True and outcomes[1] is False and outcomes[3] is True
    assert isinstance(outcomes[2], pymysql.err.IntegrityError)
    assert await state(pool, user, applied.event_id, *(e.event_id for e in fresh)) == (900, 3, 3)
    assert await totals(pool, [user]) == {user: (900, 900)}


async def test_concurrent_events_share_transactions_and_each_applies_once(pool):
    """Events handed in at once, some of them twice (a redelivery), across a few users:
    they go in batches larger than one, and every event counts exactly once."""
    store = PointsStore(pool, Decimal("0.01"))
    sizes: list[int] = []
    group = GroupCommit(store, max_size=16, observe=sizes.append)
    users = [f"u-{uuid.uuid4().hex[:12]}" for _ in range(5)]
    events = [
        event("PaymentCompleted", users[i % 5], str(uuid.uuid4()), 1_000 * (i + 1))
        for i in range(120)
    ]
    handed = events + events[::7]  # every seventh event delivered twice
    outcomes = await asyncio.gather(*(group.apply(e) for e in handed))
    await group.close()
    assert outcomes.count(True) == len(events)
    assert outcomes.count(False) == len(events[::7])
    assert max(sizes) > 1 and sum(sizes) == len(handed) and max(sizes) <= 16
    expected = {user: 0 for user in users}
    for i, e in enumerate(events):
        expected[e.user_id] += 10 * (i + 1)
    assert await totals(pool, users) == {user: (total, total) for user, total in expected.items()}
    marks = [
        await state(pool, user, *(e.event_id for e in events if e.user_id == user))
        for user in users
    ]
    assert [m[1:] for m in marks] == [(24, 24)] * 5
