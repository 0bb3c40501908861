"""Events end to end: outbox -> Kafka -> points service process -> points, each applied once."""

import asyncio
import random
import uuid
from collections import defaultdict

import pytest
from aiokafka import AIOKafkaProducer

from services.payment.domain.commands import Pay
from services.payment.service_layer.handlers import PaymentService
from services.points.dead_letters import read_headers
from services.points.dlt import read_all, replay, select
from shared.clock import iso, utcnow
from shared.events import PaymentEvent
from testkit.waiting import eventually
from tests.integration.events_harness import (
    BOOTSTRAP,
    PrivateKafka,
    Topics,
    points_db,
    points_of,
    points_process,
    points_stats,
    query,
)
from tests.integration.payment_harness import running_payment_app

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def topics() -> Topics:
    return Topics.unique()


@pytest.fixture(scope="module")
def points_service(topics):
    with points_process(topics) as url:
        yield url


@pytest.fixture
async def points():
    async with points_db() as pool:
        yield pool


def earned(amount: int) -> int:
    return amount // 100  # POINTS_RATE 0.01, the default


async def dead_letters(topics: Topics) -> list:
    return await read_all(BOOTSTRAP, topics.dead_letters)


async def test_1000_payments_across_100_users_earn_the_rules_points_once(
    topics, points_service, points
):
    rng = random.Random(42)
    async with running_payment_app(**topics.payment_settings()) as app:
        users = [await app.new_wallet(balance=10_000_000) for _ in range(100)]
        expected: dict[str, int] = defaultdict(int)
        plan = [(users[i % 100], rng.randint(1, 50_000)) for i in range(1000)]
        for user, amount in plan:
            expected[user] += earned(amount)
        for start in range(0, 1000, 100):
            answers = await asyncio.gather(*(app.pay(u, a) for u, a in plan[start : start + 100]))
            assert {a.status_code for a in answers} == {201}

        async def all_applied() -> bool:
            return await points_of(points, users) == expected

        await eventually(all_applied)
        among = ", ".join(["%s"] * len(users))
        [(entries,)] = await query(
            points, f"SELECT COUNT(*) FROM points_entries WHERE user_id IN ({among})", *users
        )
        assert entries == 1000


async def test_cancellation_takes_back_exactly_what_the_payment_earned(
    topics, points_service, points
):
    async with running_payment_app(**topics.payment_settings()) as app:
        user = await app.new_wallet(balance=100_000)
        first = await app.pay(user, 12_345)
        second = await app.pay(user, 5_000)

        async def points_are(value: int):
            async def check() -> bool:
                return (await points_of(points, [user])).get(user) == value

            return check

        await eventually(await points_are(123 + 50))
        cancel = await app.client.post(f"/payments/{first.json()['payment_id']}/cancel")
        assert cancel.status_code == 200
        await eventually(await points_are(50))
        assert second.status_code == 201


async def test_a_redelivered_event_is_applied_once(topics, points_service, points):
    user = f"u-{uuid.uuid4().hex[:12]}"
    event = PaymentEvent(
        str(uuid.uuid4()), "PaymentCompleted", iso(utcnow()), str(uuid.uuid4()), "o", user,
        40_000,
    )  # fmt: skip
    producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP)
    await producer.start()
    for _ in range(3):
        await producer.send_and_wait(topics.events, event.to_bytes(), key=user.encode())
    await producer.stop()

    async def applied() -> bool:
        return (await points_of(points, [user])).get(user) == 400

    await eventually(applied)
    marker = f"u-{uuid.uuid4().hex[:12]}"  # a later event on the same key: the three are done
    await _send_completed(topics, marker, 100)
    await eventually(lambda: _has_points(points, marker))
    assert await points_of(points, [user]) == {user: 400}
    assert await query(points, "SELECT COUNT(*) FROM points_entries WHERE user_id = %s", user) == [
        (1,)
    ]


async def _send_completed(topics: Topics, user: str, amount: int, key: str | None = None) -> None:
    event = PaymentEvent(
        str(uuid.uuid4()), "PaymentCompleted", iso(utcnow()), str(uuid.uuid4()), "o", user,
        amount,
    )  # fmt: skip
    producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP)
    await producer.start()
    await producer.send_and_wait(topics.events, event.to_bytes(), key=(key or user).encode())
    await producer.stop()


async def _has_points(pool, user: str) -> bool:
    return user in await points_of(pool, [user])


async def test_malformed_message_lands_on_the_dlt_with_every_header(topics, points_service):
    key = f"bad-{uuid.uuid4().hex[:8]}"
    producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP)
    await producer.start()
    sent = await producer.send_and_wait(topics.events, b'{"amount": -5', key=key.encode())
    negative = (
        PaymentEvent(str(uuid.uuid4()), "PaymentCompleted", iso(utcnow()), "p", "o", key, 1)
        .to_bytes()
        .replace(b'"amount":1', b'"amount":-1')
    )
    await producer.send_and_wait(topics.events, negative, key=key.encode())
    await producer.stop()

    async def both_dead() -> bool:
        return len([r for r in await dead_letters(topics) if r.key == key.encode()]) == 2

    await eventually(both_dead)
    records = [r for r in await dead_letters(topics) if r.key == key.encode()]
    # Events are handled several at once (POINTS_CONCURRENCY): dead letters of one
    # partition need not keep the order of their originals.
    records.sort(key=lambda r: r.value != b'{"amount": -5')
    first = records[0]
    headers = read_headers(list(first.headers))
    assert first.value == b'{"amount": -5' and first.partition == sent.partition
    assert headers["kafka_dlt-original-topic"] == topics.events
    assert headers["kafka_dlt-original-partition"] == sent.partition
    assert headers["kafka_dlt-original-offset"] == sent.offset
    timestamp = headers["kafka_dlt-original-timestamp"]
    assert isinstance(timestamp, int) and timestamp > 0
    assert headers["kafka_dlt-original-consumer-group"] == topics.group
    assert headers["kafka_dlt-exception-fqcn"] == "shared.events.InvalidEvent"
    assert headers["kafka_dlt-exception-message"]
    assert "InvalidEvent" in str(headers["kafka_dlt-exception-stacktrace"])
    assert headers["attempts"] == "1"
    assert "amount" in str(read_headers(list(records[1].headers))["kafka_dlt-exception-message"])


async def test_unknown_event_types_are_ignored_not_dead_lettered(topics, points_service, points):
    user = f"u-{uuid.uuid4().hex[:12]}"
    future = PaymentEvent(
        str(uuid.uuid4()), "PaymentRefunded", iso(utcnow()), "p", "o", user, 1_000
    )
    producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP)
    await producer.start()
    await producer.send_and_wait(topics.events, future.to_bytes(), key=user.encode())
    await producer.stop()
    await _send_completed(topics, user, 300)  # same key, same partition: after the unknown one
    await eventually(lambda: _has_points(points, user))
    assert await points_of(points, [user]) == {user: 3}
    assert not [r for r in await dead_letters(topics) if r.key == user.encode()]


async def test_a_lock_wait_timeout_is_waited_out_and_applied_never_dead_lettered(
    topics, points_service, points
):
    user = f"u-{uuid.uuid4().hex[:12]}"
    await _send_completed(topics, user, 1_000)
    await eventually(lambda: _has_points(points, user))
    retried_before = await _outage_retries(points_service)
    async with points.acquire() as blocker, blocker.cursor() as cur:
        # Hold the account's row lock: the service's update waits out its lock wait
        # timeout (1 s here) on every try, an error that passes with time.
        await cur.execute("SELECT balance FROM points_accounts WHERE user_id = %s FOR UPDATE", user)
        await _send_completed(topics, user, 2_000)

        async def waited_twice() -> bool:
            return await _outage_retries(points_service) >= retried_before + 2

        await eventually(waited_twice)
        await blocker.rollback()

    async def applied() -> bool:
        return (await points_of(points, [user])).get(user) == 30

    await eventually(applied)
    assert not [r for r in await dead_letters(topics) if r.key == user.encode()]


async def _outage_retries(points_url: str) -> int:
    return (await points_stats(points_url)).get("outage_retries", 0)


async def test_poison_is_tried_four_times_then_replay_from_the_dlt_applies_it(
    topics, points_service, points
):
    user = f"u-{uuid.uuid4().hex[:12]}"
    trigger = await _freeze(points, user)
    try:
        await _send_completed(topics, user, 2_000)

        async def dead_lettered() -> bool:
            return any(r.key == user.encode() for r in await dead_letters(topics))

        await eventually(dead_lettered)
    finally:
        await _drop_trigger(points, trigger)
    [record] = [r for r in await dead_letters(topics) if r.key == user.encode()]
    headers = read_headers(list(record.headers))
    assert headers["attempts"] == "4"
    assert headers["kafka_dlt-exception-fqcn"] == "pymysql.err.OperationalError"
    assert "frozen" in str(headers["kafka_dlt-exception-message"])
    assert await points_of(points, [user]) == {}

    producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP)
    await producer.start()
    for _ in range(2):  # replaying twice is as good as once
        await replay(producer, select(await dead_letters(topics), record.offset, record.partition))
    await producer.stop()

    async def applied() -> bool:
        return (await points_of(points, [user])).get(user) == 20

    await eventually(applied)
    await _send_completed(topics, f"{user}-marker", 100, key=user)
    await eventually(lambda: _has_points(points, f"{user}-marker"))
    assert await points_of(points, [user]) == {user: 20}


async def test_events_behind_a_poison_event_are_applied_while_it_waits_for_its_retry(points):
    """The agent holds several events at once (POINTS_CONCURRENCY): events of the same
    partition behind one that is failing are applied during its backoff, not after its
    dead letter, and it is applied once the database lets it through."""
    topics = Topics.unique()
    user = f"u-{uuid.uuid4().hex[:12]}"
    trigger = await _freeze(points, user)
    try:
        with points_process(topics, POINTS_RETRY_BACKOFF_SECONDS="10"):
            await _send_completed(topics, user, 2_000)
            behind = [f"{user}-behind-{n}" for n in range(5)]
            for other in behind:
                await _send_completed(topics, other, 300, key=user)  # the same partition

            async def all_applied() -> bool:
                return len(await points_of(points, behind)) == len(behind)

            await eventually(all_applied)
            assert await points_of(points, [user]) == {}
            assert not await read_all(BOOTSTRAP, topics.dead_letters)  # still being retried
            await _drop_trigger(points, trigger)
            trigger = ""

            async def poison_applied() -> bool:
                return (await points_of(points, [user])).get(user) == 20

            await eventually(poison_applied)
    finally:
        if trigger:
            await _drop_trigger(points, trigger)
    assert await points_of(points, behind) == {other: 3 for other in behind}


async def _freeze(points, user: str) -> str:
    """A rule the database enforces and that no retry passes, until an operator lifts it
    (drops the trigger, whose name this returns)."""
    trigger = f"refuse_{user.replace('-', '_')}"
    async with points.acquire() as conn, conn.cursor() as cur:
        await cur.execute(
            f"CREATE TRIGGER {trigger} BEFORE INSERT ON points_entries FOR EACH ROW"
            f" IF NEW.user_id = '{user}' THEN"
            " SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'points are frozen for this user';"
            " END IF"
        )
    return trigger


async def _drop_trigger(points, trigger: str) -> None:
    async with points.acquire() as conn, conn.cursor() as cur:
        await cur.execute(f"DROP TRIGGER IF EXISTS {trigger}")


class FailingAfterTheOutboxRow(PaymentService):
    async def _announce(self, uow, payment, now):
        await super()._announce(uow, payment, now)  # the outbox row is written here
        raise RuntimeError("after the debit")


async def test_a_payment_that_rolls_back_emits_nothing(topics):
    async with running_payment_app(**topics.payment_settings()) as app:
        user = await app.new_wallet(balance=1_000)
        declined = await app.pay(user, 5_000)
        assert declined.status_code == 402
        service = app.parts.service
        failing = FailingAfterTheOutboxRow(
            service.locking, service.uow_factory, events_topic=service.events_topic
        )
        with pytest.raises(RuntimeError):
            await failing.pay(Pay(f"o-{uuid.uuid4().hex}", user, 500))
        assert await app.query("SELECT COUNT(*) FROM outbox WHERE event_key = %s", user) == [(0,)]


async def test_the_relay_publishes_while_requests_hold_every_pooled_connection(topics):
    settings = {**topics.payment_settings(), "outbox_relay_enabled": False, "mysql_pool_max": 2}
    async with running_payment_app(**settings) as app:
        user = await app.new_wallet(balance=1_000)
        assert (await app.pay(user, 100)).status_code == 201
        pool = app.parts.pool
        busy = [await pool.acquire() for _ in range(pool.maxsize)]  # a service under load
        try:
            app.parts.relay.start()

            async def published() -> bool:
                return app.parts.relay.published >= 1

            await eventually(published, timeout=30)
        finally:
            for conn in busy:
                pool.release(conn)
        assert await app.parts.relay.unpublished() == 0


async def test_points_service_stopped_then_started_catches_up(points):
    topics = Topics.unique()
    async with running_payment_app(**topics.payment_settings()) as app:
        user = await app.new_wallet(balance=1_000_000)
        with points_process(topics):
            await app.pay(user, 10_000)
            await eventually(lambda: _has_points(points, user))
        answers = await asyncio.gather(*(app.pay(user, 1_000) for _ in range(20)))
        assert {a.status_code for a in answers} == {201}
        assert await points_of(points, [user]) == {user: 100}
        with points_process(topics):

            async def caught_up() -> bool:
                return (await points_of(points, [user])).get(user) == 100 + 20 * 10

            await eventually(caught_up)


async def test_kafka_down_while_200_payments_are_made_then_every_event_arrives(points, tmp_path):
    kafka = PrivateKafka(tmp_path)
    kafka.start()
    topics = Topics.unique()
    try:
        async with running_payment_app(**topics.payment_settings(kafka.bootstrap)) as app:
            users = [await app.new_wallet(balance=1_000_000) for _ in range(10)]
            with points_process(topics, kafka.bootstrap):
                await app.pay(users[0], 100)
                await eventually(lambda: _has_points(points, users[0]))
                kafka.stop()
                answers = await asyncio.gather(*(app.pay(users[i % 10], 1_000) for i in range(200)))
                assert [a.status_code for a in answers] == [201] * 200
                assert await app.parts.relay.unpublished() >= 200
                kafka.start()

                async def complete() -> bool:
                    got = await points_of(points, users)
                    return got == {u: 20 * 10 + (1 if u == users[0] else 0) for u in users}

                await eventually(complete, timeout=180)
    finally:
        kafka.stop()
