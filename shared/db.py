"""MariaDB/MySQL helpers: the connection pool and the versioned-migration runner.

SQL written against these helpers must run on MySQL 8.0 as well as MariaDB: no RETURNING,
no sequences, no MariaDB-only functions.
"""

import asyncio
import logging
from pathlib import Path
from typing import Any

import aiomysql
import pymysql.err
from pymysql.constants import CLIENT

from shared.settings import ServiceSettings

log = logging.getLogger(__name__)

MIGRATION_LOCK_SECONDS = 30
POOL_CLOSE_SECONDS = 5.0
DUPLICATE_KEY = 1062  # ER_DUP_ENTRY: an insert hit a unique key


class PoolTimeout(pymysql.err.OperationalError):
    """No connection came free in MYSQL_POOL_TIMEOUT_SECONDS: an outage (503, retry)."""


class Pool(aiomysql.Pool):
    """aiomysql's pool, with its lost wake-ups made harmless and its common case made cheap.

    aiomysql 0.3.2 wakes a task waiting in acquire() only when a live connection comes
    back. One that comes back closed (broken by a server restart, or closed because it was
    still in a transaction) frees a place without telling anyone, and a waiter that is
    cancelled as it is woken swallows the wake-up (asyncio.Condition before 3.13): either
    way a request could wait forever (seen under `make chaos`). Here a closed connection
    wakes a waiter too, and no acquire waits longer than `acquire_timeout`: it then fails
    as an outage, and the next acquire opens a new connection if there is room. Connections
    the server closed are dropped on acquire (aiomysql checks for EOF), so after a restart
    the next acquire opens a fresh one.

    The common case, a free connection and nobody waiting, takes no lock and starts no task:
    acquire checks just the connection it takes (aiomysql's way checks every free one, under
    the pool's condition, inside a `wait_for` task), and a release with nobody waiting only
    puts the connection back (aiomysql's starts a task to notify the condition). That was
    two tasks and a scan of the free list per transaction, about 30 µs of CPU. Whenever a
    task waits, both fall back to aiomysql's way, so a waiter is never overtaken.
    """

    acquire_timeout = 10.0

    async def _acquire(self) -> aiomysql.Connection:
        conn = self._take_free()
        if conn is not None:
            return conn
        try:
            return await asyncio.wait_for(super()._acquire(), self.acquire_timeout)
        except TimeoutError as exc:
            message = f"no pooled connection came free in {self.acquire_timeout:g}s"
            raise PoolTimeout(2000, message) from exc

    def _take_free(self) -> aiomysql.Connection | None:
        """A free connection fit for use, if one is at hand and no task waits for one."""
        if self._closing or self._cond._waiters or not self._free:
            return None
        conn = self._free.pop()  # the most recently used: its buffers are warm
        reader = conn._reader
        stale = self._recycle > -1 and self._loop.time() - conn.last_usage > self._recycle
        if reader.at_eof() or reader.exception() or reader.eof_received or stale:
            conn.close()  # as aiomysql's scan would; the slow path opens a new one
            return None
        self._used.add(conn)
        return conn

    def release(self, conn: aiomysql.Connection) -> "asyncio.Future[Any]":
        if self._closing or self._cond._waiters or conn.closed:
            return self._release_and_wake(conn)
        if conn not in self._used or conn.get_transaction_status():
            return self._release_and_wake(conn)  # aiomysql's bookkeeping: close, forget
        self._used.remove(conn)
        self._free.append(conn)
        done: asyncio.Future[Any] = self._loop.create_future()
        done.set_result(None)  # aiomysql's release returns a future; nothing to wait for
        return done

    def _release_and_wake(self, conn: aiomysql.Connection) -> "asyncio.Future[Any]":
        done: asyncio.Future[Any] = super().release(conn)
        if conn.closed and not self._closing:
            done = self._loop.create_task(self._wakeup())
        return done


def connection_args(settings: ServiceSettings, database: str | None = None) -> dict[str, Any]:
    """Where and as whom every connection of ours logs in: the one home of those settings."""
    args: dict[str, Any] = {
        "host": settings.mysql_host,
        "port": settings.mysql_port,
        "user": settings.mysql_user,
        "password": settings.mysql_password.get_secret_value(),
        "connect_timeout": settings.mysql_connect_timeout_seconds,
        "charset": "utf8mb4",
    }
    if database is not None:
        args["db"] = database
    return args


async def connect(
    settings: ServiceSettings, database: str | None = None, autocommit: bool = False
) -> aiomysql.Connection:
    """One connection outside any pool: for the audit's snapshots, tools and benchmarks."""
    return await aiomysql.connect(**connection_args(settings, database), autocommit=autocommit)


async def create_pool(
    settings: ServiceSettings,
    database: str,
    init_command: str | None = None,
    maxsize: int | None = None,
    multi_statements: bool = False,
) -> aiomysql.Pool:
    """A pool of non-autocommit connections; callers open and end transactions themselves.

    `maxsize` overrides MYSQL_POOL_MAX, for a small pool of a background task's own.
    `multi_statements` lets one query carry several statements (parameters are still
    escaped by the client): for code that sends a transaction's writes in one round trip.
    """
    maxsize = maxsize or settings.mysql_pool_max
    minsize = min(settings.mysql_pool_min, maxsize)
    pool = Pool(
        minsize=minsize,
        maxsize=maxsize,
        echo=False,
        pool_recycle=3600,
        loop=asyncio.get_running_loop(),
        **connection_args(settings, database),
        autocommit=False,
        init_command=init_command,
        client_flag=CLIENT.MULTI_STATEMENTS if multi_statements else 0,
    )
    pool.acquire_timeout = settings.mysql_pool_timeout_seconds
    if minsize > 0:
        async with pool._cond:  # as aiomysql.create_pool fills it
            await pool._fill_free_pool(False)
    return pool


async def close_pool(pool: aiomysql.Pool, timeout: float = POOL_CLOSE_SECONDS) -> None:
    """Close the pool, waiting up to `timeout` seconds for connections still in use.

    aiomysql counts a connection as in use until it is released; one whose holder was
    cancelled at the wrong moment (mid-acquire, at shutdown) is never released, and
    `wait_closed` would wait for it forever. After the timeout such connections are closed.
    """
    pool.close()
    try:
        await asyncio.wait_for(pool.wait_closed(), timeout)
    except TimeoutError:
        log.warning("pool: %d connection(s) never released; closing them", pool.size)
        pool.terminate()


def split_statements(sql: str) -> list[str]:
    """Statements of a migration file: separated by a `;` that ends a line, comments dropped."""
    lines = [line for line in sql.splitlines() if not line.strip().startswith("--")]
    parts = "\n".join(lines).split(";\n")
    return [part.strip().rstrip(";") for part in parts if part.strip()]


async def apply_migrations(pool: aiomysql.Pool, directory: Path) -> list[str]:
    """Apply, in name order, every `NNNN_*.sql` of `directory` not yet recorded.

    A named database lock makes replicas that start together apply each file once.
    Returns the versions applied now.
    """
    applied_now: list[str] = []
    async with pool.acquire() as conn, conn.cursor() as cur:
        await cur.execute("SELECT GET_LOCK('mockpay_migrations', %s)", (MIGRATION_LOCK_SECONDS,))
        try:
            await cur.execute("SHOW TABLES LIKE 'schema_migrations'")
            if not await cur.fetchall():
                await cur.execute(
                    "CREATE TABLE schema_migrations ("
                    " version VARCHAR(128) PRIMARY KEY,"
                    " applied_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6))"
                )
            await cur.execute("SELECT version FROM schema_migrations")
            done = {row[0] for row in await cur.fetchall()}
            for path in sorted(directory.glob("[0-9][0-9][0-9][0-9]_*.sql")):  # noqa: ASYNC240
                if path.stem in done:
                    continue
                for statement in split_statements(path.read_text()):
                    await cur.execute(statement)
                await cur.execute(
                    "INSERT INTO schema_migrations (version) VALUES (%s)", (path.stem,)
                )
                await conn.commit()
                applied_now.append(path.stem)
                log.info("migration applied: %s", path.stem)
        finally:
            await cur.execute("SELECT RELEASE_LOCK('mockpay_migrations')")
            await conn.commit()
    return applied_now


async def ping(pool: aiomysql.Pool) -> None:
    async with pool.acquire() as conn, conn.cursor() as cur:
        await cur.execute("SELECT 1")
        await conn.rollback()
