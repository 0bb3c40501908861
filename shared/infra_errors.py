"""Which exceptions mean "a dependency is unavailable, retry later".

Decided by exception class, never by message text. An HTTP request that ends in one of
these gets 503 DEPENDENCY_UNAVAILABLE with Retry-After; a consumer retries it.
"""

import asyncio

import pymysql.err
import redis.exceptions

DEPENDENCY_ERRORS: tuple[type[Exception], ...] = (
    pymysql.err.OperationalError,
    pymysql.err.InterfaceError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.BusyLoadingError,
    ConnectionError,
    asyncio.TimeoutError,
    OSError,
)


def is_dependency_error(exc: BaseException) -> bool:
    return isinstance(exc, DEPENDENCY_ERRORS)
