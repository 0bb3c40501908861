"""The running idempotency record is a lease: alive while its request runs, gone soon after."""

import time
import uuid

import pytest

from shared.idempotency import IdempotencyStore, InProgress, Started
from testkit.waiting import eventually

pytestmark = pytest.mark.integration


def store(redis, max_running: float = 30.0) -> IdempotencyStore:
    return IdempotencyStore(
        redis, f"test-{uuid.uuid4().hex[:8]}", ttl_seconds=60, lease_seconds=0.4,
        renew_seconds=0.1, max_running_seconds=max_running,
    )  # fmt: skip


async def test_a_running_request_keeps_its_key_for_many_leases(redis):
    leases = store(redis)
    started = await leases.begin("k", "f")
    assert isinstance(started, Started)
    async with leases.leased(started):
        began = time.monotonic()
        while time.monotonic() - began < 2.0:  # five leases long
            assert isinstance(await leases.begin("k", "f"), InProgress)
    freed = await leases.begin("k", "f")  # released by nobody: expires within one lease

    async def expired() -> bool:
        return isinstance(await leases.begin("k", "f"), Started)

    assert isinstance(freed, InProgress)
    await eventually(expired, timeout=10)


async def test_a_stuck_request_lets_its_key_go_after_the_longest_a_request_may_run(redis):
    leases = store(redis, max_running=0.5)
    started = await leases.begin("k", "f")
    assert isinstance(started, Started)
    async with leases.leased(started):

        async def freed() -> bool:
            return isinstance(await leases.begin("k", "f"), Started)

        await eventually(freed, timeout=10)
