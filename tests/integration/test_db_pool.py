"""The MariaDB pool's cheap path (a free connection, nobody waiting) against a real server:
it never hands out a dead connection or one still inside a transaction, and it never
overtakes a task that was already waiting (shared/db.py, Pool)."""

import asyncio
import os
from collections.abc import AsyncIterator

import aiomysql
import pytest

from shared import db
from shared.settings import ServiceSettings
from testkit.waiting import eventually


@pytest.fixture
async def pool(settings: ServiceSettings) -> AsyncIterator[aiomysql.Pool]:
    pool = await db.create_pool(settings, os.environ["PAYMENT_MYSQL_DATABASE"], maxsize=2)
    try:
        yield pool
    finally:
        await db.close_pool(pool)


async def _thread_id(conn: aiomysql.Connection) -> int:
    async with conn.cursor() as cur:
        await cur.execute("SELECT CONNECTION_ID()")
        (thread_id,) = await cur.fetchone()
    await conn.rollback()  # end the read's transaction: autocommit is off in the pool
    return int(thread_id)


async def _waiting(pool: aiomysql.Pool) -> bool:
    return bool(pool._cond._waiters)


async def test_a_released_connection_is_handed_out_again(pool):
    conn = await pool.acquire()
    first = await _thread_id(conn)
    pool.release(conn)
    async with pool.acquire() as again:
        assert await _thread_id(again) == first
    assert pool.size == 1  # no second connection was opened


async def test_a_connection_the_server_closed_is_not_handed_out(pool, settings):
    conn = await pool.acquire()
    dead = await _thread_id(conn)
    pool.release(conn)
    admin = await db.connect(settings, autocommit=True)
    try:
        async with admin.cursor() as cur:
            await cur.execute(f"KILL CONNECTION {dead}")
    finally:
        admin.close()

    async def seen_closed() -> bool:
        return conn._reader.at_eof() or conn._reader.eof_received

    await eventually(seen_closed, timeout=30)
    async with pool.acquire() as fresh:
        assert await _thread_id(fresh) != dead  # and the query on it worked
    assert conn.closed


async def test_a_connection_released_inside_a_transaction_is_closed_not_reused(pool):
    conn = await pool.acquire()
    first = await _thread_id(conn)
    async with conn.cursor() as cur:
        await cur.execute("START TRANSACTION")  # as a unit of work's first write would
    assert conn.get_transaction_status()
    pool.release(conn)
    assert conn.closed  # its locks and writes must not reach the next user
    async with pool.acquire() as fresh:
        assert await _thread_id(fresh) != first


async def test_a_task_that_waits_for_a_connection_is_not_overtaken(pool):
    held = [await pool.acquire(), await pool.acquire()]  # the pool's maxsize
    waiter = asyncio.create_task(pool.acquire())
    await eventually(lambda: _waiting(pool), timeout=30)
    pool.release(held.pop())
    latecomer = asyncio.create_task(pool.acquire())  # arrives before the waiter has run
    first = await asyncio.wait_for(waiter, timeout=30)
    assert not latecomer.done()  # the free connection went to the task that waited
    pool.release(first)
    second = await asyncio.wait_for(latecomer, timeout=30)
    pool.release(second)
    pool.release(held.pop())


async def test_under_contention_no_connection_serves_two_tasks_at_once(pool):
    """Many tasks, few connections: the cheap path and aiomysql's way take turns."""
    in_use: set[int] = set()
    served = 0

    async def worker() -> None:
        nonlocal served
        for _ in range(20):
            async with pool.acquire() as conn:
                assert id(conn) not in in_use  # handed to one task at a time
                in_use.add(id(conn))
                try:
                    await _thread_id(conn)  # a round trip: other tasks run meanwhile
                finally:
                    in_use.discard(id(conn))
            served += 1

    await asyncio.wait_for(asyncio.gather(*(worker() for _ in range(30))), timeout=120)
    assert served == 30 * 20
    assert pool.size <= pool.maxsize
