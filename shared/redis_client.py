"""The Redis client every service uses. It never retries a command by itself: a retried lock
script could count a hold twice, and a retried idempotency claim could look like a duplicate.
Callers decide what a failure means.
"""

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from shared.settings import ServiceSettings


def create_redis(settings: ServiceSettings, max_connections: int = 200) -> Redis:
    return Redis.from_url(
        settings.redis_url,
        retry=Retry(NoBackoff(), 0),
        socket_timeout=settings.redis_socket_timeout_seconds,
        socket_connect_timeout=settings.redis_socket_timeout_seconds,
        max_connections=max_connections,
    )
