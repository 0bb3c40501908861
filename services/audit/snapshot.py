"""One read-only connection per database, inside one consistent snapshot, read in key ranges.

Every query runs inside `START TRANSACTION WITH CONSISTENT SNAPSHOT`, so all pages of all
tables of one database show the same instant however long the audit takes.
"""

from collections.abc import AsyncIterator, Sequence
from typing import Any

import aiomysql

from shared import db
from shared.settings import ServiceSettings

Row = tuple[Any, ...]


class Snapshot:
    def __init__(self, conn: aiomysql.Connection, database: str) -> None:
        self.conn = conn
        self.database = database

    @classmethod
    async def open(cls, settings: ServiceSettings, database: str) -> "Snapshot":
        conn = await db.connect(settings, database)
        snapshot = cls(conn, database)
        try:
            await snapshot.rows("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            await snapshot.rows("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
        except BaseException:
            conn.close()
            raise
        return snapshot

    async def close(self) -> None:
        try:
            await self.conn.rollback()
        finally:
            self.conn.close()

    async def rows(self, sql: str, args: Sequence[Any] = ()) -> list[Row]:
        async with self.conn.cursor() as cur:
            await cur.execute(sql, tuple(args))
            return list(await cur.fetchall())

    async def pages(
        self, sql: str, batch: int, start: Any = ""
    ) -> AsyncIterator[tuple[list[Row], Any, Any]]:
        """Pages of `sql`, which orders by its first column and takes `(after, limit)`.

        Yields (rows, low, high): the page's key range, `low` excluded and `high` included;
        `high` is None on the last page, whose range runs to the end of the keys.
        """
        low = start
        while True:
            rows = await self.rows(sql, (low, batch))
            high = rows[-1][0] if len(rows) == batch else None
            yield rows, low, high
            if high is None:
                return
            low = high


def in_range(column: str, low: Any, high: Any) -> tuple[str, list[Any]]:
    """SQL for `low < column <= high` (no upper bound when `high` is None), and its args."""
    if high is None:
        return f"{column} > %s", [low]
    return f"{column} > %s AND {column} <= %s", [low, high]
