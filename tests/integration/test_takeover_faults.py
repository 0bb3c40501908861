"""Hand-over from a dead process after other faults: a lock node that was down a while ago,
a local queue whose head changed just before the holder died. The waiter must still check
the holder and take its lock over, not wait out its 30 s lease (`make chaos-ha` saw two
wallets stay locked for 30 s after the replica kill that followed the lock-node kills).

Three lock nodes of this module's own, killed and restarted by pid; holders are real
processes killed by pid (tests/integration/session_holder.py)."""

import asyncio
import time
import uuid

import pytest

from shared.infra_errors import DEPENDENCY_ERRORS
from shared.lock import LockTimeout
from shared.lock.pubsub import LockSubscriptions
from testkit.waiting import eventually
from tests.integration.cluster_harness import LockNodes
from tests.integration.takeover_harness import (
    CHECK_AFTER,
    Where,
    holder,
    lock_args,
    waiting_process,
)

pytestmark = pytest.mark.integration


async def refused(subscriptions: LockSubscriptions, channel: str) -> bool:
    """Whether a join is refused at once, as when the node is known to be down (a join
    sent before the reader noticed waits for the node to come back instead)."""
    try:
        await asyncio.wait_for(subscriptions.join(channel), 0.5)
    except TimeoutError:
        return False
    except DEPENDENCY_ERRORS:
        return True
    raise AssertionError(f"subscribed to {channel} on a node that was killed")


async def test_a_subscribe_that_failed_while_its_node_was_down_does_not_block_later_ones(
    lock_nodes: LockNodes, where: Where
):
    subscriptions = LockSubscriptions(where.clients[0])
    try:
        await subscriptions.join("test-subscriptions:other")  # connected, its reader running
        lock_nodes.kill(1)
        await eventually(lambda: refused(subscriptions, "test-subscriptions:w"), timeout=10)
        lock_nodes.restart(1)
        # Before, the failed SUBSCRIBE stayed in line for a confirmation and took this one's.
        entry = await asyncio.wait_for(subscriptions.join("test-subscriptions:w"), 3)
        assert entry.confirmed.done()
    finally:
        await subscriptions.close()


async def test_a_killed_holder_is_taken_over_after_a_lock_node_outage(redis, lock_nodes, where):
    prefix, name = f"test-takeover:{uuid.uuid4().hex[:8]}:", "wallet:after-outage"
    async with (
        holder(*lock_args(where, prefix, name, 2.0)) as dead,
        waiting_process(redis, where, prefix) as waiter,
    ):
        lock = waiter.locks.lock(name)
        lock_nodes.kill(1)
        # Waiting while node 1 is down: its subscription fails, the waiter subscribes on
        # node 2 and, the holder being alive, gives up.
        assert await lock.try_lock(wait_time=3 * CHECK_AFTER) is None
        lock_nodes.restart(1)
        await dead.killed()
        began = time.monotonic()
        lease = await lock.try_lock(wait_time=5)
        took = time.monotonic() - began
        assert lease is not None, "not taken over within the wait (the lease is 30 s)"
        assert took < CHECK_AFTER + 1.0, took
        assert lease.token > int(dead.token)
        assert waiter.takeovers == 1
        await lock.unlock()


async def test_a_waiter_that_heads_the_local_queue_late_still_checks_the_holder(
    redis, lock_nodes, where
):
    # The queue's head waits while the holder lives and gives up; the holder dies at that
    # moment. Each next waiter heads the queue with less time left than a check interval:
    # before, each counted its interval from when it headed the queue, and none checked.
    check_after, first_wait, gap = 1.0, 2.5, 0.5
    prefix, name = f"test-takeover:{uuid.uuid4().hex[:8]}:", "wallet:queued"
    async with (
        holder(*lock_args(where, prefix, name, 2.0)) as dying,
        waiting_process(redis, where, prefix, check_after) as waiter,
    ):
        got: list[int] = []

        async def pay(i: int) -> None:
            async with waiter.locks.hold(name, wait_time=first_wait + gap * i):
                got.append(i)

        head = asyncio.create_task(pay(0))
        rest = [asyncio.create_task(pay(i)) for i in range(1, 5)]
        with pytest.raises(LockTimeout):
            await head  # the holder lived throughout its wait
        await dying.killed()
        outcomes = await asyncio.gather(*rest, return_exceptions=True)
        assert got, f"every waiter timed out: {outcomes}"
        assert waiter.takeovers == 1
