"""LOCK_REDIS_NODES=3: three independent Redis servers for locks, each one killed by pid and
started again by the same script."""

import contextlib
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from testkit.waiting import eventually
from tests.integration.cluster_harness import LockNodes

pytestmark = pytest.mark.integration


@contextlib.asynccontextmanager
async def clients(nodes: LockNodes) -> AsyncIterator[list[Redis]]:
    connected = [Redis.from_url(url, socket_timeout=1) for url in nodes.urls]
    try:
        yield connected
    finally:
        for client in connected:
            await client.aclose()


async def answers(client: Redis) -> bool:
    try:
        return bool(await client.ping())
    except RedisConnectionError:
        return False


async def test_three_lock_nodes_start_apart_and_one_killed_comes_back(tmp_path):
    nodes = LockNodes(tmp_path)
    nodes.start()
    try:
        async with clients(nodes) as redis:
            assert [await answers(r) for r in redis] == [True, True, True]
            await redis[0].set("only-on-node-1", "x")
            assert await redis[1].get("only-on-node-1") is None  # not replicas: independent

            nodes.kill(2)
            await eventually(lambda: _down(redis[1]), timeout=10)
            assert await answers(redis[0]) and await answers(redis[2])

            nodes.restart(2)
            await eventually(lambda: answers(redis[1]), timeout=30)
    finally:
        nodes.stop()


async def _down(client: Redis) -> bool:
    return not await answers(client)
