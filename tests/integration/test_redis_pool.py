"""The Redis pool waits for a free connection instead of failing at once."""

import asyncio
import uuid

import pytest
import redis.exceptions

from shared.redis_client import create_redis
from shared.settings import ServiceSettings
from testkit.waiting import eventually

pytestmark = pytest.mark.integration


async def test_more_callers_than_connections_wait_their_turn():
    settings = ServiceSettings(redis_pool_max=2, redis_pool_timeout_seconds=10)
    client = create_redis(settings)
    key = f"pool-test:{uuid.uuid4().hex}"
    try:
        # Each BLPOP holds its connection until it times out (0.2 s): six need three rounds.
        answers = await asyncio.gather(*(client.blpop([key], timeout=0.2) for _ in range(6)))
        assert answers == [None] * 6
    finally:
        await client.aclose()


async def test_a_caller_that_waits_past_the_pool_timeout_gets_a_dependency_error():
    settings = ServiceSettings(redis_pool_max=1, redis_pool_timeout_seconds=0.05)
    client = create_redis(settings)
    key = f"pool-test:{uuid.uuid4().hex}"
    try:
        holder = asyncio.ensure_future(client.blpop([key], timeout=2))
        watcher = create_redis(ServiceSettings())

        async def blocked() -> bool:
            return any(c.get("cmd") == "blpop" for c in await watcher.client_list())

        await eventually(blocked, timeout=5, message="the holder never took the connection")
        await watcher.aclose()
        with pytest.raises(redis.exceptions.ConnectionError):
            await client.get(key)
        assert await holder is None
    finally:
        await client.aclose()
