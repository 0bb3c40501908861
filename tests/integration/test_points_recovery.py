"""The points consumer after a crash and after a clean stop: back in seconds, not a minute.

A member killed with SIGKILL cannot say goodbye: the group waits until the broker has
missed its heartbeats for POINTS_SESSION_TIMEOUT_SECONDS (10 s by default; it was faust's
60 s). A member stopped with SIGTERM leaves the group on its way out, so its successor
joins at once. Meanwhile /health/live answers and /health says the consumer has not joined.
"""

import os
import signal
import time
import uuid

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from shared.clock import iso, utcnow
from shared.events import PaymentEvent
from testkit.waiting import eventually
from tests.integration.events_harness import BOOTSTRAP, Topics, points_db, points_of, running_points

pytestmark = pytest.mark.integration

KAFKA = BOOTSTRAP


async def _consumes(topics: Topics, timeout: float) -> None:
    """A new event is applied within `timeout` seconds."""
    user = f"u-{uuid.uuid4().hex[:10]}"
    event = PaymentEvent(
        str(uuid.uuid4()), "PaymentCompleted", iso(utcnow()), str(uuid.uuid4()), "o", user,
        1_000,
    )  # fmt: skip
    producer = AIOKafkaProducer(bootstrap_servers=KAFKA)
    await producer.start()
    try:
        await producer.send_and_wait(topics.events, event.to_bytes(), key=user.encode())
    finally:
        await producer.stop()
    async with points_db() as pool:

        async def applied() -> bool:
            return user in await points_of(pool, [user])

        message = f"event not applied within {timeout}s"
        await eventually(applied, timeout=timeout, interval=0.1, message=message)


async def test_points_killed_by_pid_consumes_again_once_its_session_times_out():
    topics = Topics.unique()
    session = {"POINTS_SESSION_TIMEOUT_SECONDS": "15"}  # > a restart, < the old 60 s
    with running_points(topics, env=session) as (_, process):
        await _consumes(topics, timeout=60)
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
        killed_at = time.monotonic()
    with running_points(topics, wait_ready=False, env=session) as (url, _):
        async with httpx.AsyncClient(timeout=5) as client:
            joining = await client.get(f"{url}/health")
        assert joining.status_code == 503, joining.text
        assert "not joined" in joining.json()["reasons"]["consumer"]
        await _consumes(topics, timeout=45)
        print(f"consuming again {time.monotonic() - killed_at:.1f} s after kill -9")
        async with httpx.AsyncClient(timeout=5) as client:
            assert (await client.get(f"{url}/health")).status_code == 200


async def test_points_stopped_with_sigterm_leaves_the_group_so_its_successor_joins_at_once():
    topics = Topics.unique()
    session = {"POINTS_SESSION_TIMEOUT_SECONDS": "60"}  # staying in the group would cost 60 s
    with running_points(topics, env=session) as (_, process):
        await _consumes(topics, timeout=60)
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
        stopped_at = time.monotonic()
    with running_points(topics, wait_ready=False, env=session):
        await _consumes(topics, timeout=40)
        print(f"consuming again {time.monotonic() - stopped_at:.1f} s after SIGTERM")
