"""Outage or not: does a failure mean "a dependency is unavailable, wait and retry"?

Decided by exception class (and, for MariaDB, the error number), never by message text.
DEPENDENCY_ERRORS are the drivers' own "cannot reach it, lost it, it is busy" classes:
MariaDB (PyMySQL's OperationalError and InterfaceError), Redis (ConnectionError, which
BusyLoadingError and the pool's "no connection available" are, and TimeoutError), Kafka
(aiokafka's connection and timeout errors), and a socket's own ConnectionError (refused,
reset, broken pipe). An outage is
- a MariaDB InterfaceError (the connection is closed), or an OperationalError that is a
  client-side connection error (2000-2999: can't connect, gone away, lost connection) or a
  server error that passes with time (MYSQL_TRANSIENT: lock wait timeout, deadlock, too
  many connections, shutdown in progress, connection killed). PyMySQL files every server
  error it has no class for under OperationalError too (a CHECK constraint, a trigger's
  SIGNAL): those are not outages;
- any other of DEPENDENCY_ERRORS;
- any error whose class says `retriable = True`, as every aiokafka error class does.

Everything else (a malformed event, a constraint the data breaks, a bug) is not an outage:
waiting cannot cure it. An HTTP request that ends in an outage gets 503
DEPENDENCY_UNAVAILABLE with Retry-After; the points consumer pauses and retries it for as
long as the outage lasts.
"""

import pymysql.err
import redis.exceptions
from aiokafka import errors as kafka_errors

DEPENDENCY_ERRORS: tuple[type[Exception], ...] = (
    pymysql.err.OperationalError,
    pymysql.err.InterfaceError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    kafka_errors.KafkaConnectionError,
    kafka_errors.KafkaTimeoutError,
    kafka_errors.NodeNotReadyError,
    kafka_errors.RequestTimedOutError,
    ConnectionError,
)


# Server errors that go away by themselves: too many connections, shutdown in progress,
# lock wait timeout, deadlock, query interrupted, connection killed.
MYSQL_TRANSIENT = frozenset({1040, 1053, 1205, 1213, 1317, 1927})


def is_outage(exc: BaseException) -> bool:
    """True when waiting for a dependency to come back is what `exc` needs."""
    if isinstance(exc, pymysql.err.OperationalError):
        code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else 0
        return 2000 <= code < 3000 or code in MYSQL_TRANSIENT
    return isinstance(exc, DEPENDENCY_ERRORS) or getattr(type(exc), "retriable", False) is True
