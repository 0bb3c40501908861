"""The Redis clients every service uses.

- A pool that waits for a free connection (up to REDIS_POOL_TIMEOUT_SECONDS) instead of
  failing at once when all REDIS_POOL_MAX connections are busy: a burst queues, it does not
  become 503s.
- Every connection taken from the pool is checked first: one the server closed (Redis was
  restarted) is replaced before a command is sent on it. redis-py 8 skips that check while
  its "maintenance notifications" are on, and they are on by default ("auto"); they are a
  Redis Enterprise feature, so they are turned off here. A connection idle for
  REDIS_HEALTH_CHECK_SECONDS is also pinged before use.
- `create_redis` never retries a command: a retried lock script could count a hold twice.
  `create_retrying_redis` retries on connection errors, with exponential backoff, for
  commands that are safe to repeat (reads, PING, the idempotency scripts, which recognise
  their own token).
- Lua scripts run over one pipelined connection of their own (shared/redis_scripts.py),
  with the same timeout and the same retries as the client's other commands, unless
  REDIS_PIPELINED_SCRIPTS=false. A client built `scripts_with=` another sends its scripts
  over that one's connection (its retries stay its own): scripts of both that a request
  sends in one loop turn share a system call and a reply.
"""

from typing import Any

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.maint_notifications import MaintNotificationsConfig

from shared.redis_scripts import PipelinedRedis, ScriptPipeline
from shared.settings import ServiceSettings

__all__ = [
    "create_redis",
    "create_retrying_redis",
    "create_session_connection",
    "with_pipelined_scripts",
]


def _client(
    settings: ServiceSettings,
    retry: Retry,
    max_connections: int | None,
    scripts_with: Redis | None = None,
) -> Redis:
    pool = BlockingConnectionPool.from_url(
        settings.redis_url,
        max_connections=max_connections or settings.redis_pool_max,
        timeout=settings.redis_pool_timeout_seconds,
        retry=retry,
        socket_timeout=settings.redis_socket_timeout_seconds,
        socket_connect_timeout=settings.redis_socket_timeout_seconds,
        health_check_interval=settings.redis_health_check_seconds,
        maint_notifications_config=MaintNotificationsConfig(enabled=False),
    )
    if not settings.redis_pipelined_scripts:
        return Redis(connection_pool=pool)
    if isinstance(scripts_with, PipelinedRedis):
        pipeline, owned = scripts_with.script_pipeline, False  # the lender closes it
    else:
        timeout = settings.redis_socket_timeout_seconds
        pipeline, owned = ScriptPipeline(settings.redis_url, timeout, timeout), True
    return PipelinedRedis(
        pipeline=pipeline,
        script_retry=_script_retry(retry),
        owns_pipeline=owned,
        connection_pool=pool,
    )


def with_pipelined_scripts(
    url: str, timeout: float, connect_timeout: float, retry: Retry, **redis_options: Any
) -> Redis:
    """A redis-py client (built from `redis_options`) whose scripts are pipelined to `url`,
    retried as `retry` says."""
    return PipelinedRedis(
        pipeline=ScriptPipeline(url, timeout, connect_timeout),
        script_retry=_script_retry(retry),
        **redis_options,
    )


def _script_retry(retry: Retry) -> Retry | None:
    return retry if retry.get_retries() > 0 else None


def create_redis(settings: ServiceSettings, max_connections: int | None = None) -> Redis:
    """A client that never retries a command by itself: callers decide what a failure means."""
    return _client(settings, Retry(NoBackoff(), 0), max_connections)


def create_session_connection(settings: ServiceSettings) -> Redis:
    """One connection of its own for a process's session (shared/session.py): its client
    id is what others check, so it is never shared and never retries by itself."""
    return Redis.from_url(
        settings.redis_url,
        single_connection_client=True,
        retry=Retry(NoBackoff(), 0),
        socket_timeout=settings.redis_socket_timeout_seconds,
        socket_connect_timeout=settings.redis_socket_timeout_seconds,
        maint_notifications_config=MaintNotificationsConfig(enabled=False),
    )


def create_retrying_redis(
    settings: ServiceSettings, max_connections: int | None = None, scripts_with: Redis | None = None
) -> Redis:
    """A client for commands that are safe to repeat: retried on connection errors; its
    scripts go over `scripts_with`'s connection when given."""
    retry = Retry(
        ExponentialBackoff(cap=settings.redis_retry_backoff_max_seconds,
                           base=settings.redis_retry_backoff_seconds),
        settings.redis_retries,
        supported_errors=(RedisConnectionError, RedisTimeoutError),
    )  # fmt: skip
    return _client(settings, retry, max_connections, scripts_with)
