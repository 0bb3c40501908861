"""A unit of work's writes sent as one compound statement (adapters/writes.py), against a real
MariaDB: everything commits, or the write that failed raises its own error and nothing of
the block is left once the transaction is rolled back; sent one by one, the same."""

from collections.abc import AsyncIterator

import aiomysql
import pymysql.err
import pytest

from services.payment.adapters.writes import Writes
from services.payment.settings import PaymentSettings
from shared import db
from shared.settings import ServiceSettings

pytestmark = pytest.mark.integration


class Taken(Exception):
    pass


class Missed(Exception):
    pass


@pytest.fixture
async def table(settings: ServiceSettings, unique: str) -> AsyncIterator[tuple[str, str]]:
    """A scratch table in the payment database: (its name, its unique key's name)."""
    database = PaymentSettings().payment_mysql_database
    name, key = f"writes_test_{unique}", f"writes_test_{unique}_k"
    conn = await db.connect(settings, database, autocommit=True)
    try:
        async with conn.cursor() as cur:
            await cur.execute(
                f"CREATE TABLE {name} (id INT PRIMARY KEY, k VARCHAR(20) NOT NULL,"
                f" v INT NOT NULL, UNIQUE KEY {key} (k))"
            )
            await cur.execute(f"INSERT INTO {name} VALUES (1, 'one', 10)")
        yield name, database
        async with conn.cursor() as cur:
            await cur.execute(f"DROP TABLE {name}")
    finally:
        conn.close()


async def _rows(conn: aiomysql.Connection, name: str) -> list[tuple]:
    async with conn.cursor() as cur:
        await cur.execute(f"SELECT id, k, v FROM {name} ORDER BY id")
        rows = list(await cur.fetchall())
    await conn.rollback()
    return rows


def _queue(writes: Writes, name: str, cas_from: int, new_key: str) -> None:
    """An insert guarded by the table's unique key, then a compare-and-set on row 1."""
    writes.add_rows(
        f"INSERT INTO {name} (id, k, v)",
        "(%s, %s, %s)",
        [(2, new_key, 20)],
        on_duplicate=Taken(new_key),
        duplicate_key=f"{name}_k",
    )
    writes.add(
        f"UPDATE {name} SET v = %s WHERE id = 1 AND v = %s",
        (cas_from + 1, cas_from),
        must_change_one=Missed("row 1 changed"),
    )


@pytest.mark.parametrize("together", [True, False])
async def test_every_write_commits_together(settings, table, together):
    name, database = table
    conn = await db.connect(settings, database)
    try:
        writes = Writes(await conn.cursor(), together=together)
        _queue(writes, name, cas_from=10, new_key="two")
        await writes.flush(commit=True)
        other = await db.connect(settings, database)
        try:
            assert await _rows(other, name) == [(1, "one", 11), (2, "two", 20)]
        finally:
            other.close()
    finally:
        conn.close()


@pytest.mark.parametrize("together", [True, False])
@pytest.mark.parametrize(
    ("cas_from", "new_key", "raised"),
    [(9, "two", Missed), (10, "one", Taken)],
    ids=["compare-and-set missed", "unique key hit"],
)
async def test_the_failed_write_raises_its_own_error_and_nothing_commits(
    settings, table, together, cas_from, new_key, raised
):
    name, database = table
    conn = await db.connect(settings, database)
    try:
        writes = Writes(await conn.cursor(), together=together)
        _queue(writes, name, cas_from=cas_from, new_key=new_key)
        with pytest.raises(raised):
            await writes.flush(commit=True)
        await conn.rollback()  # what the unit of work does on any error
        assert await _rows(conn, name) == [(1, "one", 10)]
    finally:
        conn.close()


async def test_a_unique_key_without_a_queued_error_raises_the_database_error(settings, table):
    name, database = table
    conn = await db.connect(settings, database)
    try:
        writes = Writes(await conn.cursor())
        writes.add(f"INSERT INTO {name} (id, k, v) VALUES (%s, %s, %s)", (1, "again", 0))
        with pytest.raises(pymysql.err.IntegrityError):
            await writes.flush(commit=True)
        await conn.rollback()
        assert await _rows(conn, name) == [(1, "one", 10)]
    finally:
        conn.close()
