import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from shared.redis_client import create_redis
from shared.settings import ServiceSettings


@pytest.fixture(scope="session")
def settings() -> ServiceSettings:
    return ServiceSettings()


@pytest.fixture
async def redis(settings: ServiceSettings) -> AsyncIterator[Redis]:
    client = create_redis(settings)
    yield client
    await client.aclose()


@pytest.fixture
def unique() -> str:
    return uuid.uuid4().hex[:12]
