"""Outage or poison: what the points consumer waits out, and what it dead-letters."""

import pymysql.err
import pytest
import redis.exceptions
from aiokafka import errors as kafka_errors

from services.points.dead_letters import ConsumedMessage
from services.points.processor import EventProcessor, RetryPolicy
from shared.clock import iso, utcnow
from shared.events import PAYMENT_COMPLETED, InvalidEvent, PaymentEvent
from shared.infra_errors import is_outage

OUTAGES = [
    pymysql.err.OperationalError(2003, "Can't connect to MySQL server on '127.0.0.1'"),
    pymysql.err.OperationalError(2013, "Lost connection to MySQL server during query"),
    pymysql.err.OperationalError(1205, "Lock wait timeout exceeded"),
    pymysql.err.OperationalError(1213, "Deadlock found when trying to get lock"),
    pymysql.err.OperationalError(2006, "MySQL server has gone away"),
    pymysql.err.InterfaceError(0, "Not connected"),
    redis.exceptions.ConnectionError("Error 111 connecting to 127.0.0.1:6379"),
    redis.exceptions.BusyLoadingError("Redis is loading the dataset in memory"),
    redis.exceptions.TimeoutError("Timeout reading from socket"),
    kafka_errors.KafkaConnectionError("Connection at 127.0.0.1:9092 closed"),
    kafka_errors.KafkaTimeoutError(),
    kafka_errors.NotLeaderForPartitionError(),  # retriable = True, read from the class
    ConnectionRefusedError(111, "Connection refused"),
    ConnectionResetError(104, "Connection reset by peer"),
]

POISON = [
    InvalidEvent("not JSON"),
    pymysql.err.IntegrityError(1062, "Duplicate entry"),
    pymysql.err.DataError(1406, "Data too long for column 'user_id'"),
    pymysql.err.ProgrammingError(1146, "Table 'points_entries' doesn't exist"),
    pymysql.err.OperationalError(4025, "CONSTRAINT `balance` failed"),  # a CHECK: a rule
    pymysql.err.OperationalError(1644, "points are frozen for this user"),  # a trigger's SIGNAL
    ValueError("a bug"),
    KeyError("amount"),
    FileNotFoundError(2, "No such file"),  # an OSError, but no dependency is down
    kafka_errors.MessageSizeTooLargeError(),  # retriable = False
]


@pytest.mark.parametrize("error", OUTAGES, ids=lambda e: type(e).__name__)
def test_dependency_unavailable_is_an_outage(error):
    assert is_outage(error)


@pytest.mark.parametrize("error", POISON, ids=lambda e: type(e).__name__)
def test_error_waiting_cannot_cure_is_not_an_outage(error):
    assert not is_outage(error)


EVENT = PaymentEvent("e-1", PAYMENT_COMPLETED, iso(utcnow()), "p-1", "o-1", "u-1", 1000)
MESSAGE = ConsumedMessage("payment.events", 0, 7, 0, b"u-1", EVENT.to_bytes(), [])


class FailingStore:
    """Raises the given errors in turn, then applies."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.calls = 0

    async def apply(self, event: PaymentEvent) -> bool:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return True


class RecordedDeadLetters:
    def __init__(self) -> None:
        self.published: list[tuple[int, Exception, int]] = []

    async def publish(self, message: ConsumedMessage, exc: Exception, attempts: int) -> None:
        self.published.append((message.offset, exc, attempts))


def processor(store: FailingStore) -> tuple[EventProcessor, RecordedDeadLetters, list[float]]:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    dead = RecordedDeadLetters()
    policy = RetryPolicy(retries=3, backoff=1.0, outage_backoff=0.5, outage_backoff_max=5.0)
    return EventProcessor(store, dead, policy, sleep=sleep), dead, slept  # type: ignore[arg-type]


async def test_an_outage_of_any_length_is_waited_out_with_capped_backoff_and_never_dead_lettered():
    down = pymysql.err.OperationalError(2003, "Can't connect to MySQL server")
    store = FailingStore(*[down] * 40)
    handler, dead, slept = processor(store)
    await handler.handle(MESSAGE)
    assert store.calls == 41
    assert dead.published == []
    assert handler.counts["applied"] == 1 and handler.counts["outage_retries"] == 40
    assert slept[:5] == [0.5, 1.0, 2.0, 4.0, 5.0]
    assert set(slept[4:]) == {5.0}


async def test_poison_is_tried_four_times_one_second_apart_then_dead_lettered():
    refused = pymysql.err.DataError(1406, "Data too long")
    store = FailingStore(*[refused] * 10)
    handler, dead, slept = processor(store)
    await handler.handle(MESSAGE)
    assert store.calls == 4
    assert dead.published == [(7, refused, 4)]
    assert slept == [1.0, 1.0, 1.0]


async def test_an_outage_between_poison_failures_does_not_use_up_the_poison_retries():
    refused = pymysql.err.DataError(1406, "Data too long")
    down = pymysql.err.OperationalError(2013, "Lost connection")
    store = FailingStore(refused, down, down, refused, down, refused)
    handler, dead, _ = processor(store)
    await handler.handle(MESSAGE)
    assert dead.published == [] and handler.counts["applied"] == 1


async def test_malformed_event_is_dead_lettered_at_once():
    store = FailingStore()
    handler, dead, slept = processor(store)
    await handler.handle(ConsumedMessage("payment.events", 0, 9, 0, b"k", b"{not json", []))
    assert store.calls == 0 and slept == []
    assert [(offset, attempts) for offset, _, attempts in dead.published] == [(9, 1)]
