"""A hold whose last release missed lock nodes (down at that moment) is released there by
its own process once they are back, so a waiter of another live process does not wait out
its lease; the process's later holds of the same lock are never touched, since each hold
has an owner id of its own.

Three lock nodes of this module's own, killed and restarted by pid; two lock services with
sessions of their own stand for two live payment replicas."""

import time
import uuid

import pytest

from testkit.waiting import eventually
from tests.integration.cluster_harness import LockNodes
from tests.integration.takeover_harness import Where, waiting_process

pytestmark = pytest.mark.integration

RELEASE_RETRY = 2.0  # long enough to see the forgotten hold before it is released


async def holding_nodes(where: Where, key: str) -> int:
    return sum([bool(await node.exists(key)) for node in where.clients])


async def test_a_hold_another_live_process_released_while_nodes_were_down_is_not_waited_out(
    redis, lock_nodes: LockNodes, where: Where
):
    prefix, name = f"test-janitor:{uuid.uuid4().hex[:8]}:", "wallet:missed"
    async with (
        waiting_process(redis, where, prefix, release_retry=RELEASE_RETRY) as released_it,
        waiting_process(redis, where, prefix) as other,
    ):
        key = released_it.locks.lock(name).key
        async with released_it.locks.hold(name, wait_time=5):
            lock_nodes.kill(1)
            lock_nodes.kill(2)
        # Its release reached node 3 only; the two nodes come back with the hold (AOF): a
        # majority held by a live process that no longer uses it.
        lock_nodes.restart(1)
        lock_nodes.restart(2)
        assert await holding_nodes(where, key) == 2
        began = time.monotonic()
        lease = await other.locks.lock(name).try_lock(wait_time=5)
        took = time.monotonic() - began
        assert lease is not None, "waited out the forgotten hold (its lease is 30 s)"
        assert took < RELEASE_RETRY + 1.5, took
        assert other.takeovers == 0  # released by its own process, not taken over
        await other.locks.lock(name).unlock()


async def test_a_later_hold_of_the_same_task_is_never_dropped_for_an_earlier_one(
    redis, lock_nodes: LockNodes, where: Where
):
    prefix, name = f"test-janitor:{uuid.uuid4().hex[:8]}:", "wallet:again"
    async with waiting_process(redis, where, prefix, release_retry=0.2) as process:
        lock = process.locks.lock(name)
        first = await lock.try_lock(wait_time=5)
        assert first is not None
        lock_nodes.kill(1)
        await lock.unlock()  # node 1 misses it
        second = await lock.try_lock(wait_time=5)  # same task, nodes 2 and 3
        assert second is not None and second.token > first.token
        assert second.owner != first.owner
        lock_nodes.restart(1)  # with the first hold
        await eventually(lambda: _nothing_owed(process.locks.janitor.owed()), timeout=10)
        assert not await where.clients[0].hexists(lock.key, first.owner)
        for node in where.clients[1:]:
            assert await node.hexists(lock.key, second.owner)  # the live hold is untouched
        second.ensure_held()
        await lock.unlock()
        assert await holding_nodes(where, lock.key) == 0


async def _nothing_owed(owed: int) -> bool:
    return owed == 0
