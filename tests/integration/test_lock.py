"""The distributed lock against a real Redis: exclusion, expiry, wake-ups, watchdog, fencing."""

import asyncio
import time

import pytest
from redis.asyncio import Redis

from shared.lock import Lease, LockNotOwnedError, LockService, LockTimeout
from shared.redis_client import create_redis
from shared.settings import ServiceSettings
from testkit.waiting import eventually

pytestmark = pytest.mark.integration


def service(redis: Redis, **kwargs) -> LockService:
    """A LockService stands for one process: its own owner ids and pub/sub connection."""
    return LockService(redis, prefix=f"test-lock:{time.time_ns()}:", **kwargs)


def acquired(lease: Lease | None) -> Lease:
    assert lease is not None, "the lock was not acquired"
    return lease


async def numsub(redis: Redis, channel: str) -> int:
    [(_, count)] = await redis.pubsub_numsub(channel)
    return int(count)


@pytest.mark.parametrize(
    ("local_queue", "release_behind"), [(True, False), (False, False), (True, True)]
)
async def test_lock_excludes_concurrent_holders_across_processes(
    redis, local_queue, release_behind
):
    prefix = f"test-lock:{time.time_ns()}:"
    processes = [
        LockService(redis, prefix=prefix, local_queue=local_queue, release_behind=release_behind)
        for _ in range(3)
    ]
    counter = f"{prefix}counter"
    await redis.set(counter, 0)

    async def increment(locks: LockService) -> None:
        async with locks.hold("shared", wait_time=30):
            value = int(await redis.get(counter))
            await asyncio.sleep(0)  # under test: other tasks get every chance to interleave
            await redis.set(counter, value + 1)

    await asyncio.gather(*(increment(processes[i % 3]) for i in range(90)))
    for locks in processes:
        await locks.close()  # with release_behind: waits for the releases in flight
    assert int(await redis.get(counter)) == 90
    assert await numsub(redis, processes[0].lock("shared").channel) == 0
    assert not await processes[0].lock("shared").is_locked()


async def test_a_release_behind_frees_the_caller_and_still_orders_the_next_holders(redis):
    """Redis holds every write back (CLIENT PAUSE WRITE): the block ends, its caller goes
    on, and the lock is still held; the same task taking the lock again, and another
    process, both wait for the release, and close() waits for it too."""
    locks = service(redis, release_behind=True)
    other = LockService(redis, prefix=locks.prefix)
    lock = locks.lock("behind")
    async with locks.hold("behind", wait_time=5) as held:
        await redis.execute_command("CLIENT", "PAUSE", 60_000, "WRITE")
    try:
        # Returned while Redis holds the release: the lease is no longer this task's.
        assert lock.held_by_current_task() is None
        assert len(locks._releasing) == 1
        assert await lock.is_locked()  # reads still go through
        again = asyncio.ensure_future(_hold_once(locks, "behind"))
        elsewhere = asyncio.ensure_future(_hold_once(other, "behind"))
        done, _ = await asyncio.wait({again, elsewhere}, timeout=0.5)
        assert not done, "a holder got a lock whose release had not reached Redis"
    finally:
        await redis.execute_command("CLIENT", "UNPAUSE")
    tokens = await asyncio.gather(again, elsewhere)
    assert min(tokens) > held.token and len(set(tokens)) == 2
    await locks.close()
    assert not locks._releasing
    assert not await lock.is_locked()
    await other.close()


async def test_a_release_behind_that_fails_is_logged_not_raised(redis_server, caplog):
    """Redis is killed (by pid) while the lock is held: the block still ends normally, the
    release that runs behind it fails and says so, and close() returns."""
    client = create_redis(ServiceSettings(redis_url=redis_server.url))
    locks = LockService(client, prefix=f"test-lock:{time.time_ns()}:", release_behind=True)
    try:
        async with locks.hold("gone", wait_time=5):
            await asyncio.to_thread(redis_server.kill)
        await locks.close()
        assert not locks._releasing
        assert any("not released" in r.getMessage() for r in caplog.records)
    finally:
        await client.aclose()


async def _hold_once(locks: LockService, name: str) -> int:
    async with locks.hold(name, wait_time=30) as lease:
        assert lease.token is not None
        return lease.token


async def test_same_task_reenters_and_keeps_its_fencing_token(redis):
    locks = service(redis)
    lock = locks.lock("reentrant")
    first = acquired(await lock.try_lock(wait_time=1))
    second = acquired(await lock.try_lock(wait_time=1))
    assert first is second and first.holds == 2
    await lock.unlock()
    assert await lock.is_locked()
    await lock.unlock()
    assert not await lock.is_locked()
    assert first.watchdog is not None and first.watchdog.done()
    await locks.close()


async def test_fencing_tokens_increase_with_every_acquisition(redis):
    locks = service(redis)
    tokens = []
    for _ in range(5):
        async with locks.hold("fenced", wait_time=1) as lease:
            tokens.append(lease.token)
    assert tokens == sorted(tokens) and len(set(tokens)) == 5
    await redis.delete(locks.lock("fenced").fence_key)  # the counter lost, as after a flush
    async with locks.hold("fenced", wait_time=1) as lease:
        assert lease.token > tokens[-1]
    await locks.close()


async def test_waiter_gets_lock_of_a_killed_holder_within_its_lease(redis):
    lease_seconds = 1.0
    holder = service(redis, watchdog_timeout=lease_seconds)
    waiter = LockService(redis, prefix=holder.prefix, watchdog_timeout=lease_seconds)
    lease = acquired(await holder.lock("crash").try_lock(wait_time=1))
    assert lease.watchdog is not None
    lease.watchdog.cancel()  # the holder dies: no more renewals, no unlock
    started = time.monotonic()
    taken = await waiter.lock("crash").try_lock(wait_time=10)
    elapsed = time.monotonic() - started
    assert taken is not None and taken.token > lease.token
    assert elapsed < lease_seconds + 2.0
    await waiter.lock("crash").unlock()
    await holder.close()
    await waiter.close()


async def test_waiter_still_gets_lock_when_the_unlock_message_is_lost(redis):
    holder = service(redis)
    waiter = LockService(redis, prefix=holder.prefix)
    lock = holder.lock("lost-message")
    await lock.try_lock(wait_time=1, lease_time=2.0)

    async def take() -> bool:
        lease = await waiter.lock("lost-message").try_lock(wait_time=20)
        if lease is not None:
            await waiter.lock("lost-message").unlock()
        return lease is not None

    waiting = asyncio.create_task(take())
    await eventually(lambda: _subscribed(redis, lock.channel))
    started = time.monotonic()
    await redis.delete(lock.key)  # released without a publish
    assert await waiting
    assert time.monotonic() - started < 2.0 + 2.0  # the remaining TTL, not the 20 s wait
    await holder.close()
    await waiter.close()


async def _subscribed(redis: Redis, channel: str) -> bool:
    return await numsub(redis, channel) > 0


async def test_unlock_by_a_non_owner_raises_and_leaves_the_lock(redis):
    owner = service(redis)
    other = LockService(redis, prefix=owner.prefix)
    await owner.lock("owned").try_lock(wait_time=1)
    with pytest.raises(LockNotOwnedError):
        await other.lock("owned").unlock()
    assert await owner.lock("owned").is_locked()

    async def another_task() -> None:
        await owner.lock("owned").unlock()

    with pytest.raises(LockNotOwnedError):
        await asyncio.create_task(another_task())
    assert await owner.lock("owned").is_locked()
    await owner.lock("owned").unlock()
    await owner.close()
    await other.close()


async def test_unlock_after_expiry_leaves_the_new_holders_lock(redis):
    first = service(redis)
    second = LockService(redis, prefix=first.prefix)
    await first.lock("expiring").try_lock(wait_time=1, lease_time=0.3)
    await eventually(lambda: _gone(first, "expiring"))
    new_lease = await second.lock("expiring").try_lock(wait_time=1)
    assert new_lease is not None
    with pytest.raises(LockNotOwnedError):
        await first.lock("expiring").unlock()
    assert await second.lock("expiring").is_locked()
    await second.lock("expiring").unlock()
    await first.close()
    await second.close()


async def _gone(locks: LockService, name: str) -> bool:
    return not await locks.lock(name).is_locked()


async def test_watchdog_keeps_a_long_holder_alive_and_stops_after_unlock(redis):
    locks = service(redis, watchdog_timeout=0.6)
    lock = locks.lock("long")
    lease = acquired(await lock.try_lock(wait_time=1))
    renewals, last_ttl = 0, await redis.pttl(lock.key)

    async def renewed_through_three_leases() -> bool:
        nonlocal renewals, last_ttl
        ttl = await redis.pttl(lock.key)
        assert ttl > 0, "the lock expired while its holder was alive"
        renewals += ttl > last_ttl  # a renewal puts the full lease back
        last_ttl = ttl
        return renewals >= 10  # every lease/3: over three leases

    await eventually(renewed_through_three_leases, timeout=60, interval=0.02)
    assert await lock.is_locked()
    lease.ensure_held()
    await lock.unlock()
    assert lease.watchdog is not None and lease.watchdog.done()
    assert not await lock.is_locked()
    await locks.close()


async def test_holder_is_told_when_the_watchdog_finds_its_lock_gone(redis):
    locks = service(redis, watchdog_timeout=0.6)
    lock = locks.lock("taken-away")
    lease = acquired(await lock.try_lock(wait_time=1))
    assert await lock.force_unlock()
    await asyncio.wait_for(lease.lost.wait(), timeout=5)
    with pytest.raises(Exception, match="lost"):
        lease.ensure_held()
    with pytest.raises(LockNotOwnedError):
        await lock.unlock()
    await locks.close()


async def test_waiters_share_one_subscription_and_leave_none_behind(redis):
    holder = service(redis)
    waiters = LockService(redis, prefix=holder.prefix, local_queue=False)
    lock = holder.lock("crowd")
    await lock.try_lock(wait_time=1)

    async def wait(wait_time: float) -> bool:
        lease = await waiters.lock("crowd").try_lock(wait_time=wait_time)
        if lease is None:
            return False
        await waiters.lock("crowd").unlock()
        return True

    patient = [asyncio.create_task(wait(30)) for _ in range(10)]
    impatient = [asyncio.create_task(wait(0.3)) for _ in range(5)]
    await eventually(lambda: _subscribed(redis, lock.channel))
    assert await numsub(redis, lock.channel) == 1  # one per process, however many wait
    assert not any(await asyncio.gather(*impatient))
    await lock.unlock()
    assert all(await asyncio.gather(*patient))
    await eventually(lambda: _no_subscribers(redis, lock.channel))
    await holder.close()
    await waiters.close()


async def _no_subscribers(redis: Redis, channel: str) -> bool:
    return await numsub(redis, channel) == 0


async def test_hold_raises_lock_timeout_when_the_wait_runs_out(redis):
    holder = service(redis)
    other = LockService(redis, prefix=holder.prefix)
    await holder.lock("busy").try_lock(wait_time=1)
    with pytest.raises(LockTimeout):
        async with other.hold("busy", wait_time=0.2):
            pass
    await holder.lock("busy").unlock()
    await holder.close()
    await other.close()


async def test_local_hand_over_gives_every_holder_a_newer_token(redis):
    locks = service(redis)
    tokens: list[int] = []

    async def take() -> None:
        async with locks.hold("handed", wait_time=10) as lease:
            tokens.append(lease.token)
            await asyncio.sleep(0)  # under test: the others queue up locally meanwhile

    await asyncio.gather(*(take() for _ in range(30)))
    assert tokens == sorted(tokens) and len(set(tokens)) == 30
    assert not await locks.lock("handed").is_locked()
    await locks.close()


async def test_local_waiters_time_out_and_cancel_without_stranding_the_lock(redis):
    locks = service(redis)
    release = asyncio.Event()

    async def holder() -> None:
        async with locks.hold("queue", wait_time=1):
            await release.wait()

    async def waiter(wait_time: float) -> str:
        async with locks.hold("queue", wait_time=wait_time):
            return "held"

    first = asyncio.create_task(holder())
    await eventually(lambda: locks.lock("queue").is_locked())
    impatient = asyncio.create_task(waiter(0.1))
    cancelled = asyncio.create_task(waiter(30))
    patient = asyncio.create_task(waiter(30))
    with pytest.raises(LockTimeout):
        await impatient
    cancelled.cancel()
    release.set()
    await first
    assert await patient == "held"
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    await eventually(lambda: _gone(locks, "queue"))
    assert await waiter(1) == "held"
    await locks.close()


async def test_cancelling_the_holder_releases_the_lock(redis):
    locks = service(redis)
    entered = asyncio.Event()

    async def holder() -> None:
        async with locks.hold("cancelled-holder", wait_time=1):
            entered.set()
            await asyncio.Event().wait()

    task = asyncio.create_task(holder())
    await entered.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not await locks.lock("cancelled-holder").is_locked()
    await locks.close()
