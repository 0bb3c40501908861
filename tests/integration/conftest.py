import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from shared.redis_client import create_redis
from shared.settings import ServiceSettings
from tests.integration.cluster_harness import LockNodes
from tests.integration.private_servers import PrivateRedis
from tests.integration.takeover_harness import Where


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


@pytest.fixture
def redis_server(tmp_path) -> Iterator[PrivateRedis]:
    """A Redis server of the test's own, to kill and restart."""
    server = PrivateRedis(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def lock_nodes(tmp_path_factory) -> Iterator[LockNodes]:
    """Three lock nodes of the module's own, to kill and restart."""
    servers = LockNodes(tmp_path_factory.mktemp("lock-nodes"))
    servers.start()
    try:
        yield servers
    finally:
        servers.stop()


@pytest.fixture
async def where(lock_nodes: LockNodes) -> AsyncIterator[Where]:
    lock_nodes.start()  # a test that killed a node leaves it to be started again here
    clients = [Redis.from_url(u, retry=Retry(NoBackoff(), 0), socket_timeout=1.0)
               for u in lock_nodes.urls]  # fmt: skip
    yield Where(lock_nodes.urls, clients)
    for client in clients:
        await client.aclose()
