"""Renewers stop when their holder is done even if the cancel that ends them is lost.

On Python 3.11 redis-py sends every command under asyncio.wait_for, which returns the
finished write instead of raising a cancel that arrives at that moment. The fakes here
do the same on purpose: a renewal that is cancelled mid-flight answers as if it was not.
"""

import asyncio

from shared.background import Deferred
from shared.idempotency import IdempotencyStore, Started
from shared.lock.client import Lease, RedisLock, TaskOwners

DEADLINE_SECONDS = 5.0  # a renewer that missed its stop runs on for RUNNING_SECONDS
RUNNING_SECONDS = 60.0


class CancelSwallowingScript:
    """A script call that, the first time it is cancelled mid-flight, returns anyway."""

    def __init__(self, answer: object) -> None:
        self.answer = answer
        self.swallowed = False
        self.in_flight = asyncio.Event()

    async def __call__(self, keys: list[str], args: list[object]) -> object:
        self.in_flight.set()
        try:
            await asyncio.sleep(0.05)  # the script's latency: the cancel must land in it
        except asyncio.CancelledError:
            if self.swallowed:
                raise
            self.swallowed = True  # what asyncio.wait_for does on 3.11 if the write just ended
        return self.answer


class SwallowingRedis:
    def __init__(self) -> None:
        self.renew = CancelSwallowingScript(1)

    def register_script(self, source: str) -> CancelSwallowingScript:
        return self.renew if "pexpire" in source else CancelSwallowingScript(1)


async def test_a_request_ends_at_once_though_its_lease_renewer_loses_the_cancel():
    redis = SwallowingRedis()
    store = IdempotencyStore(
        redis, "t", ttl_seconds=60, lease_seconds=1.0, renew_seconds=0.01,  # type: ignore[arg-type]
        max_running_seconds=RUNNING_SECONDS,
    )  # fmt: skip

    async def request() -> None:
        async with store.leased(Started("k", "token", "f")):
            await redis.renew.in_flight.wait()  # the block ends while a renewal is sent

    running = asyncio.create_task(request())
    done, _ = await asyncio.wait([running], timeout=DEADLINE_SECONDS)
    running.cancel()  # a failing run ends here: the second cancel reaches the renewer
    assert done, "the request waited for its lease renewer after it had finished"


class WatchdogScripts:
    def __init__(self) -> None:
        self.renew = CancelSwallowingScript(1)

    def valid_until(self, started: float, lease_ms: int) -> float | None:
        return None


async def test_a_released_lock_stops_its_watchdog_though_the_cancel_is_lost():
    scripts = WatchdogScripts()
    lock = RedisLock(
        "w", scripts=scripts, owners=TaskOwners(), subscriptions=None,  # type: ignore[arg-type]
        leases={}, watchdog_timeout=0.03, prefix="lock:",
    )  # fmt: skip
    lease = Lease("w", "owner", token=1, lease_ms=30)
    lease.watchdog = Deferred(0.0, lambda: lock._watch(lease), name="watchdog:w")
    await scripts.renew.in_flight.wait()
    lock.forget(lease)  # released while a renewal is sent
    assert lease.watchdog.task is not None
    done, _ = await asyncio.wait([lease.watchdog.task], timeout=DEADLINE_SECONDS)
    lease.watchdog.task.cancel()  # a failing run ends here: the second cancel reaches it
    assert done, "the watchdog kept renewing a released lock"
    assert not lease.lost.is_set()
