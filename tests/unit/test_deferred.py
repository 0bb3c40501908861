"""Renewers that are timers until their first renewal is due (shared.background.Deferred).

Most requests end before their idempotency lease or their lock needs renewing; those must
cost no task at all, and those that run longer must be renewed as before.
"""

import asyncio

from shared.background import Deferred
from shared.idempotency import IdempotencyStore, Started

DEADLINE_SECONDS = 5.0


async def past(seconds: float) -> None:
    """Return once the loop has run the timers due within `seconds` from now."""
    reached = asyncio.Event()
    asyncio.get_running_loop().call_later(seconds, reached.set)
    await asyncio.wait_for(reached.wait(), DEADLINE_SECONDS)


class CountingScript:
    def __init__(self) -> None:
        self.calls = 0
        self.called = asyncio.Event()

    async def __call__(self, keys: list[str], args: list[object]) -> object:
        self.calls += 1
        self.called.set()
        return 1


class CountingRedis:
    def __init__(self) -> None:
        self.renew = CountingScript()

    def register_script(self, source: str) -> CountingScript:
        return self.renew if "pexpire" in source else CountingScript()


def store(redis: CountingRedis, renew_seconds: float) -> IdempotencyStore:
    return IdempotencyStore(
        redis, "t", ttl_seconds=60, lease_seconds=1.0,  # type: ignore[arg-type]
        renew_seconds=renew_seconds, max_running_seconds=30.0,
    )  # fmt: skip


async def test_a_deferred_task_cancelled_before_it_is_due_never_starts():
    started = []

    async def work() -> None:
        started.append(True)

    deferred = Deferred(0.01, work, name="never")
    deferred.cancel()
    await past(0.02)
    assert deferred.done() and deferred.task is None and not started


async def test_a_deferred_task_starts_when_due_and_stop_waits_for_its_end():
    ended = asyncio.Event()
    release = asyncio.Event()

    async def work() -> None:
        await release.wait()
        ended.set()

    deferred = Deferred(0.0, work, name="due")
    await past(0.0)
    assert deferred.task is not None and not deferred.done()
    release.set()
    await deferred.stop()
    assert deferred.done()


async def test_a_request_that_ends_before_its_first_renewal_renews_nothing():
    redis = CountingRedis()
    leases = store(redis, renew_seconds=0.01)
    async with leases.leased(Started("k", "token", "f")):
        assert not [t for t in asyncio.all_tasks() if t.get_name().startswith("lease:")]
    await past(0.03)
    assert redis.renew.calls == 0


async def test_a_request_still_running_when_its_renewal_is_due_is_renewed():
    redis = CountingRedis()
    leases = store(redis, renew_seconds=0.01)
    async with leases.leased(Started("k", "token", "f")):
        await asyncio.wait_for(redis.renew.called.wait(), DEADLINE_SECONDS)
    renewed = redis.renew.calls
    await past(0.03)
    assert renewed >= 1 and redis.renew.calls == renewed  # none after the request ended
